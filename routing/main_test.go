package routing

import (
	"testing"

	"go.uber.org/goleak"
)

// A parallel fan-out starts goroutines; every one must be gone when Open
// returns, so the whole package runs under goleak.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
