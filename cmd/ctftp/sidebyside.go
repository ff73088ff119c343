package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/ctftp/ctftp/internal/loadgen"
	"github.com/ctftp/ctftp/internal/sidebyside"
	"github.com/ctftp/ctftp/internal/tftpd"
)

// benchSideBySide runs `ctftp bench --side-by-side` (internal/sidebyside)
// with the flags' options and prints its result.
func benchSideBySide(ctx context.Context, f benchFlags, stdout, stderr io.Writer) int {
	macs, err := stormMACs(f)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: --macs: %v\n", err)
		return exitUsage
	}
	if _, err := tftpd.Find(); err != nil {
		fmt.Fprintf(stderr, "ctftp bench: --side-by-side runs tftpd-hpa: %v\n", err)
		return exitFailure
	}
	prog, term := progressTo(f, stderr)
	o := sidebyside.Options{
		Storm: f.storm, MACs: macs, Dir: f.keepDir,
		BackendBlksizes: f.backendBlksizes, BackendWindows: f.backendWindows, BackendInFlight: f.backendInFlight,
		BackendDelay: f.backendDelay, Backends: f.backends,
		Settle: f.settle, Passes: f.passes, InFlight: f.inFlight,
		CPUSplit: f.cpuSplit, CPUProfile: f.cpuprofile,
		Version: versionString(), Progress: prog, Terminal: term, Warnings: stderr,
		// The memory hold runs in a child process (this program's
		// `bench --hold`), so the holder's sockets are not counted.
		// Not finding this program fails only the memory hold (Start
		// returns Err; the result records it), not the whole run.
		Holder: func(server netip.AddrPort, n int, file string, hold time.Duration) *exec.Cmd {
			exe, err := os.Executable()
			if err != nil {
				return &exec.Cmd{Err: err}
			}
			return exec.Command(exe, "bench", "--server", server.String(), "--hold", strconv.Itoa(n),
				"--file", file, "--hold-for", hold.String(), "--quiet")
		},
		Warn: func(format string, a ...any) { fmt.Fprintf(stderr, "ctftp bench: "+format+"\n", a...) },
	}
	if !f.quiet {
		o.Note = o.Warn
	}
	res, err := sidebyside.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
		return exitFailure
	}
	if f.jsonOut {
		writeJSON(stdout, res)
	} else {
		writeSideBySide(stdout, res)
	}
	if res.Failed() {
		return exitFailure
	}
	return exitOK
}

func writeSideBySide(w io.Writer, s *sidebyside.Result) {
	fmt.Fprintf(w, "boot storm: %d phones, concurrency %d, phone blksize %s; %s backends; gateway backend blksize %d, window %d, max_in_flight %d",
		s.Phones, s.Concurrency, orNone(s.PhoneBlksize), s.Backends, s.BackendBlksize, s.BackendWindow, s.BackendInFlight)
	if s.BackendDelay > 0 {
		fmt.Fprintf(w, "\nemulated WAN: %s each way (%s round trip) between the phones' side and the backends; the direct runs cross it too",
			s.BackendDelay, 2*s.BackendDelay)
	}
	fmt.Fprintf(w, "\n%d CPUs; load average at start %s, at end %s (the end includes the bench's own threads)", s.CPUs, s.LoadStart, s.LoadEnd)
	if s.Settle != nil {
		fmt.Fprintf(w, "; before the first run it %s", s.Settle)
	}
	fmt.Fprintln(w)
	for i, p := range s.Passes {
		fmt.Fprintf(w, "\npass %d of %d (load average at its start %s)\n", i+1, len(s.Passes), p.Load)
		loadgen.WriteTable(w, p.Runs)
		fmt.Fprintf(w, "phones/s ratios:")
		for j, q := range sidebyside.Ratios() {
			sep := "  "
			if j == 4 {
				sep = "\n                "
			}
			fmt.Fprintf(w, "%s%s/%s %.2fx", sep, shortRun(q[1]), shortRun(q[2]), p.Ratios[q[0]])
		}
		fmt.Fprintf(w, "\nceiling: %.1f round trips per phone\n", p.CeilingRoundTrips)
		if i == 0 {
			fmt.Fprintf(w, "cpu/phone: this process's CPU time per phone: the generator's, plus the server's where it runs here (pin/tftp, the gateway, the ceiling's\n  responders); not tftpd-hpa's. It moves much less than phones/s when other work shares the machine.\n")
		}
		for _, b := range []struct {
			name string
			b    sidebyside.BackendFetches
		}{{"fan-out", p.Fanout}, {"device rules", p.Rules}} {
			fmt.Fprintf(w, "backend fetches, cold %s: %d for %d distinct (sub-cluster, file) answers = %.2f per file; %d requests shared another's fetch",
				b.name, b.b.ColdFetches, b.b.DistinctFiles, b.b.PerFile, b.b.FillShared)
			if b.name == "fan-out" {
				fmt.Fprintf(w, "; %d during the warm run", b.b.WarmFetches)
			}
			fmt.Fprintln(w)
		}
		for _, r := range p.Runs {
			writeFailures(w, r)
		}
	}
	if m := s.MedianRatios; m != nil {
		fmt.Fprintf(w, "\nphones/s ratios, median of %d passes:", len(s.Passes))
		for j, q := range sidebyside.Ratios() {
			sep := "  "
			if j == 4 {
				sep = "\n                "
			}
			fmt.Fprintf(w, "%s%s/%s %.2fx", sep, shortRun(q[1]), shortRun(q[2]), m[q[0]])
		}
		fmt.Fprintln(w)
	}
	if len(s.Sweep) > 0 {
		fmt.Fprintf(w, "\ncold fan-out by backend block size and window (pass 1; phones/s over tftpd-hpa direct):\n")
		rows := []*loadgen.Report{s.Passes[0].Report(sidebyside.RunCold)}
		for _, row := range s.Sweep {
			rows = append(rows, row.Run)
		}
		loadgen.WriteTable(w, rows)
		for _, r := range rows[1:] {
			writeFailures(w, r)
		}
	}
	if b := s.Best; b != nil && len(s.Sweep) > 0 {
		fmt.Fprintf(w, "fastest cold: backend blksize %d, window %d: %.1f phones/s = %.2fx tftpd-hpa direct; per file p50 %s, p99 %s\n",
			b.Blksize, b.Window, b.Run.PhonesPerSecond, b.OverDirect, b.Run.Transfer.P50.Round(time.Microsecond*10), b.Run.Transfer.P99.Round(time.Microsecond*10))
	}
	m := s.Memory
	fmt.Fprintf(w, "\nmemory: cache holds %d files, %s; live heap grew %s over the cold run = %.2f bytes per cached byte (entries, \"not found\" answers and learned routes included)\n",
		m.CachedFiles, humanBytes(float64(m.CachedBytes)), humanBytes(float64(m.HeapGrowth)), m.HeapPerCachedByte)
	if fl := m.InFlight; fl != nil {
		if fl.Error != "" {
			fmt.Fprintf(w, "memory per transfer in flight: not measured: %s\n", fl.Error)
		} else {
			fmt.Fprintf(w, "memory per transfer in flight (%d held transfers of %s, warm): %s RSS, %s heap, %s stack, %.2f goroutines, %.2f fds\n",
				fl.Transfers, fl.File, humanBytes(fl.RSSPerTransfer), humanBytes(fl.HeapPerTransfer), humanBytes(fl.StackPerTransfer),
				fl.GoroutinesPerTransfer, fl.FDsPerTransfer)
		}
	}
}

// writeFailures names a run's failed phones, with examples.
func writeFailures(w io.Writer, r *loadgen.Report) {
	if r.Failed == 0 {
		return
	}
	fmt.Fprintf(w, "%s: %d phones failed: %s\n", r.Label, r.Failed, r.ErrorSummary())
	for _, e := range r.Examples {
		fmt.Fprintf(w, "  e.g. %s\n", e)
	}
}

// shortRun names a run in the ratios line.
func shortRun(label string) string {
	switch label {
	case sidebyside.RunDirect:
		return "tftpd-hpa"
	case sidebyside.RunPin:
		return "pin"
	case sidebyside.RunCold:
		return "cold"
	case sidebyside.RunRules:
		return "cold-rules"
	case sidebyside.RunWarm:
		return "warm"
	case sidebyside.RunCeiling:
		return "ceiling"
	}
	return label
}

func humanBytes(n float64) string {
	switch a := max(n, -n); {
	case a >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case a >= 1<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f B", n)
}

func orNone(n int) string {
	if n == 0 {
		return "none"
	}
	return strconv.Itoa(n)
}
