package routing

import (
	"testing"
)

// TestDecideAllocs: the request path's routing decision (no Reason)
// allocates nothing, whether a rule, a learned route or a fan-out
// decides, for a file after which nothing is prefetched (the last of the
// boot set, or none of it); Route, which explains, may.
func TestDecideAllocs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rules = testRules()
	r := newTestRouter(t, cfg, Options{})
	r.Learn("AA0000000001", "south")
	for _, tc := range []struct {
		name string
		req  string
		kind Kind
	}{
		{"rule", "SEP00AABB000001.cnf.xml.sgn", RuleMatch},
		{"learned", "SEPAA0000000001.cnf.xml.sgn", Learned},
		{"fan-out", "SEPBB0000000001.cnf.xml.sgn", FanOut},
		{"no MAC", "CTLFile.tlv", FanOut},
	} {
		q := req(tc.req, "")
		if d := r.decide(q, false); d.Kind != tc.kind || len(d.Subclusters) == 0 {
			t.Fatalf("%s: %+v", tc.name, d)
		}
		if d, e := r.decide(q, false), r.Route(q); d.Kind != e.Kind || d.Subclusters[0] != e.Subclusters[0] || len(d.Subclusters) != len(e.Subclusters) || e.Reason == "" {
			t.Errorf("%s: decide %+v, Route %+v", tc.name, d, e)
		}
		if a := testing.AllocsPerRun(1000, func() { r.decide(q, false) }); a != 0 {
			t.Errorf("%s: %.1f allocations per decision, want 0", tc.name, a)
		}
	}
	if a := testing.AllocsPerRun(1000, func() { r.learnMAC("AA0000000001", "south") }); a != 0 {
		t.Errorf("confirming a learned route: %.1f allocations, want 0", a)
	}
}
