package loadgen

import (
	"testing"

	"go.uber.org/goleak"
)

// Run, StartHold and DelayLink start goroutines; every one must be gone
// when a test ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
