package progress

import (
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Reports come while the operation runs; after stop returns there are
// none, and the final one came last when asked for.
func TestEvery(t *testing.T) {
	for _, final := range []bool{false, true} {
		var ticks, lasts atomic.Int32
		var lastWasLast atomic.Bool
		stop := Every(time.Millisecond, final, func(last bool) {
			if last {
				lasts.Add(1)
			} else {
				ticks.Add(1)
			}
			lastWasLast.Store(last)
		})
		for ticks.Load() < 3 {
			time.Sleep(time.Millisecond)
		}
		stop()
		n := ticks.Load() + lasts.Load()
		time.Sleep(10 * time.Millisecond)
		if ticks.Load()+lasts.Load() != n {
			t.Errorf("final=%v: a report after stop returned", final)
		}
		if final && (lasts.Load() != 1 || !lastWasLast.Load()) {
			t.Errorf("final report: %d, last call was it: %v", lasts.Load(), lastWasLast.Load())
		}
		if !final && lasts.Load() != 0 {
			t.Errorf("a final report when none was asked for")
		}
	}
}
