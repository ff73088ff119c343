package loadgen

import (
	"context"
	"crypto/sha256"
	"runtime/pprof"
	"sync"
	"testing"
)

// spin burns CPU for a fixed amount of work (not time).
func spin() {
	var sum [32]byte
	for range 300_000 {
		sum = sha256.Sum256(sum[:])
	}
}

// Work started under each side's label lands on that side, in goroutines
// the labelled one starts too; unlabelled work is Other.
func TestSplitCPU(t *testing.T) {
	split, prof, err := ProfileCPU(func() error {
		var wg sync.WaitGroup
		ServerLabels(context.Background(), func(context.Context) {
			wg.Go(spin) // inherits the label
		})
		wg.Wait()
		pprof.Do(context.Background(), pprof.Labels(SideLabel, SideGenerator), func(context.Context) { spin() })
		spin()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(prof) == 0 || split.Server <= 0 || split.Generator <= 0 || split.Other <= 0 {
		t.Fatalf("split %+v of a %d-byte profile: every side did work", split, len(prof))
	}
	if _, err := SplitCPU([]byte("not a profile")); err == nil {
		t.Fatal("garbage parsed as a profile")
	}
}
