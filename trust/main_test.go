package trust

import (
	"testing"

	"go.uber.org/goleak"
)

// Watchers probe from goroutines of their own and pin/tftp transfers own
// sockets; every one must be gone when a test ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
