package routing

import (
	"fmt"
	"maps"
	"testing"
	"time"
)

func TestLearnedRoutesSnapshot(t *testing.T) {
	clock := newFakeClock()
	cfg := DefaultConfig()
	cfg.LearnTTL = time.Hour
	r := newTestRouter(t, cfg, Options{Now: clock.Now})
	if got := r.LearnedRoutes(5); got.Total != 0 || len(got.Recent) != 0 {
		t.Errorf("empty table: %+v", got)
	}
	r.Learn("0011215A1AE1", "east")
	clock.Advance(time.Minute)
	r.Learn("0011215A1AE2", "west")
	clock.Advance(time.Minute)
	r.Learn("0011215A1AE3", "west")
	clock.Advance(58 * time.Minute) // the first has expired

	got := r.LearnedRoutes(1)
	if got.Total != 2 || !maps.Equal(got.BySubcluster, map[string]int{"west": 2}) {
		t.Errorf("snapshot %+v", got)
	}
	if len(got.Recent) != 1 || got.Recent[0].MAC != "0011215A1AE3" || got.Recent[0].Subcluster != "west" ||
		!got.Recent[0].At.Equal(clock.Now().Add(-58*time.Minute)) {
		t.Errorf("recent %+v", got.Recent)
	}

	// Moves and forgets keep the per-sub-cluster counts.
	r.Learn("0011215A1AE2", "east")
	r.Forget("0011215A1AE3")
	if got := r.LearnedRoutes(0); got.Total != 1 || !maps.Equal(got.BySubcluster, map[string]int{"east": 1}) || got.Recent != nil {
		t.Errorf("after a move and a forget: %+v", got)
	}

	cfg.LearnTTL = 0
	if got := newTestRouter(t, cfg, Options{}).LearnedRoutes(5); got.Total != 0 || got.BySubcluster != nil {
		t.Errorf("learning off: %+v", got)
	}
}

// BenchmarkLearnedRoutes: what one /status (or a status page refresh)
// costs with a full table of learn_max's default size.
func BenchmarkLearnedRoutes(b *testing.B) {
	cfg := DefaultConfig()
	r, err := New(cfg, testSubclusters, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range cfg.LearnMax {
		r.Learn(fmt.Sprintf("%012X", i), testSubclusters[i%len(testSubclusters)])
	}
	b.ResetTimer()
	for b.Loop() {
		if lr := r.LearnedRoutes(20); lr.Total != cfg.LearnMax {
			b.Fatalf("total %d", lr.Total)
		}
	}
}
