package sidebyside

import (
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"time"

	"github.com/ctftp/ctftp/internal/loadgen"
)

// Options say what a side-by-side run compares and how. Plain data; the
// command line fills it from its flags.
type Options struct {
	// Storm is every run's storm; MACs are its phones, which the fleet
	// is generated for.
	Storm loadgen.Config
	MACs  []string
	// Dir is where the fleet's files are written and kept; "" = a
	// temporary directory removed at the end.
	Dir string
	// BackendBlksizes and BackendWindows are the gateway's backend block
	// and window sizes: the first of each for every pass, the others in a
	// sweep of the cold fan-out (first pass). Neither may be empty.
	BackendBlksizes []int
	BackendWindows  []int
	BackendInFlight int
	// BackendDelay puts an emulated WAN of that delay each way between
	// the phones' side and the backends; the direct runs cross it too.
	BackendDelay time.Duration
	// Backends is the sub-clusters' server: "tftpd-hpa", or "ctftp" (the
	// gateway's own engine, with RFC 7440 windowsize).
	Backends string
	// Settle waits up to that long for a quiet machine before the first
	// run (0 = no wait).
	Settle time.Duration
	// Passes is how many times every configuration runs (at least 1).
	Passes int
	// InFlight transfers are held open on the warm gateway by a child
	// process (Holder) to measure memory per transfer in flight; 0 = skip.
	InFlight int
	// Holder returns the command that holds n transfers of file open on
	// server for hold and then releases them (`ctftp bench --hold`); it
	// must stop on SIGTERM.
	Holder func(server netip.AddrPort, n int, file string, hold time.Duration) *exec.Cmd
	// CPUSplit profiles every run and splits its CPU between server,
	// generator and runtime; CPUProfile, when set, receives the first
	// pass's warm run's profile.
	CPUSplit   bool
	CPUProfile string
	// Version is the gateway's version string, as `ctftp serve` reports it.
	Version string
	// Progress and Terminal are the storms' progress (loadgen.Options).
	Progress io.Writer
	Terminal bool
	// Note receives what the run is doing (nil = quiet); Warn what went
	// wrong without ending it (nil = dropped); Warnings the gateways' own
	// warning log lines (nil = dropped).
	Note     func(format string, a ...any)
	Warn     func(format string, a ...any)
	Warnings io.Writer
}

func (o Options) note(format string, a ...any) {
	if o.Note != nil {
		o.Note(format, a...)
	}
}

func (o Options) warn(format string, a ...any) {
	if o.Warn != nil {
		o.Warn(format, a...)
	}
}

func (o Options) warnings() io.Writer {
	if o.Warnings == nil {
		return io.Discard
	}
	return o.Warnings
}

func (o Options) check() error {
	switch {
	case len(o.MACs) == 0:
		return fmt.Errorf("side by side: no phones")
	case len(o.BackendBlksizes) == 0 || len(o.BackendWindows) == 0:
		return fmt.Errorf("side by side: no backend block size or window size")
	case o.Passes < 1:
		return fmt.Errorf("side by side: %d passes, want at least 1", o.Passes)
	}
	return nil
}
