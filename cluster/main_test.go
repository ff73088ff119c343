package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

// Run, Resolve and ProbeAll start goroutines, and pin/tftp transfers own
// sockets; every one must be gone when a test ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
