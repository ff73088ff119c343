package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/internal/loadgen"
)

// benchFlags are the parsed flags of `ctftp bench`.
type benchFlags struct {
	server     string
	sideBySide bool
	storm      loadgen.Config
	macsFile   string
	jsonOut    bool
	quiet      bool
	cpuprofile string
	cpuSplit   bool
	keepDir    string

	// side-by-side only: how the gateway reaches its backends.
	backendBlksizes []int  // the first is the main runs'; the others are swept
	backendWindows  []int  // likewise
	blksizeList     string // --backend-blksize as given
	windowList      string // --backend-window as given
	backendInFlight int
	backendDelay    time.Duration
	backends        string // tftpd-hpa or ctftp
	passes          int
	settle          time.Duration
	inFlight        int

	// hold mode
	hold     int
	holdFile string
	holdFor  time.Duration
	admin    string
}

// runBench is `ctftp bench`: a boot storm against a running server
// (--server), a side-by-side comparison of tftpd-hpa and the gateway cold
// and warm, all on loopback (--side-by-side), or transfers held open to
// measure memory per transfer in flight (--hold).
func runBench(ctx context.Context, f benchFlags, set func(string) bool, pos []string, stdout, stderr io.Writer) int {
	if code := checkBenchFlags(&f, set, pos, stderr); code != exitOK {
		return code
	}
	if f.cpuprofile != "" && !f.sideBySide {
		stop, err := loadgen.StartCPUProfile(f.cpuprofile)
		if err != nil {
			fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
			return exitFailure
		}
		defer stop()
	}
	switch {
	case f.hold > 0:
		return benchHold(ctx, f, stdout, stderr)
	case f.sideBySide:
		return benchSideBySide(ctx, f, stdout, stderr)
	}
	return benchServer(ctx, f, stdout, stderr)
}

func benchCmd(a *cli) *cobra.Command {
	def := loadgen.DefaultConfig()
	f := benchFlags{storm: def}
	c := &cobra.Command{
		Use:   "bench --server HOST:PORT | --side-by-side [--phones N] [--concurrency C] [--json]",
		Short: "boot-storm load generator with progress and a report",
		Long: `A boot storm against a TFTP server (--server: a running ctftp, tftpd-hpa,
CUCM), or --side-by-side, in one run on loopback: tftpd-hpa and a plain
pin/tftp server serving the files directly, the gateway in front of
tftpd-hpa backends cold (fan-out, then device rules) and warm, and the
loopback lock-step ceiling, with ratios, the load average at start and end,
heap per cached byte and memory per transfer in flight; --backend-delay puts
an emulated WAN in front of the backends and the direct runs. --hold N keeps
N transfers in flight instead. Reports phones/s, transfers/s, per-file
p50/p99/max, errors, bytes and CPU per phone; --json for all of it.`,
		RunE: func(c *cobra.Command, args []string) error {
			return exit(runBench(c.Context(), f, c.Flags().Changed, args, a.stdout, a.stderr))
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.server, "server", "", "TFTP server `HOST:PORT` to storm (a running ctftp, tftpd-hpa, CUCM)")
	fs.BoolVar(&f.sideBySide, "side-by-side", false, "self-contained comparison on loopback, one run: tftpd-hpa and a plain pin/tftp server serving the files directly, the gateway in front of tftpd-hpa backends cold (fan-out, then device rules) and warm, and the loopback lock-step ceiling")
	fs.IntVar(&f.storm.Phones, "phones", def.Phones, "phones that boot")
	fs.IntVar(&f.storm.Concurrency, "concurrency", def.Concurrency, "phones booting at the same time")
	fs.IntVar(&f.storm.BlockSize, "blksize", 0, "RFC 2348 blksize the phones ask for (0 = none, 512-byte lock-step as real phones)")
	fs.IntVar(&f.storm.WindowSize, "windowsize", 0, "RFC 7440 windowsize the phones ask for (0 = none)")
	fs.StringVar(&f.macsFile, "macs", "", "read the phones' MACs from `FILE` (one per line, # comments); --phones is then its length")
	fs.StringVar(&f.storm.MACPrefix, "mac-prefix", def.MACPrefix, "`HEX` the generated MACs start with (a counter fills the rest)")
	fs.DurationVar(&f.storm.Timeout, "timeout", def.Timeout, "a phone's retransmission timeout")
	fs.IntVar(&f.storm.Retries, "retries", def.Retries, "timeouts in a row before a phone gives up a file")
	fs.DurationVar(&f.storm.BootTimeout, "boot-timeout", def.BootTimeout, "bound on one phone's whole boot")
	fs.BoolVar(&f.jsonOut, "json", false, "print the report as JSON on stdout")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress on stderr")
	fs.BoolVar(&f.cpuSplit, "cpu-split", false, "side-by-side: profile every run in this process and split its CPU per phone between the server (pin/tftp, the gateway, the ceiling's responders), the generator, and the Go runtime")
	fs.StringVar(&f.cpuprofile, "cpuprofile", "", "write a CPU profile of this process to `FILE`; side by side, of the warm run only (the gateway in process and the generator)")
	fs.StringVar(&f.keepDir, "dir", "", "side-by-side: write the generated files under `DIR` and keep them (default: a temp dir removed at exit)")
	fs.StringVar(&f.blksizeList, "backend-blksize", strconv.Itoa(cluster.DefaultConfig().Backend.BlockSize), "side-by-side: the gateway's backend.block_size; a comma-separated `LIST` also runs the cold fan-out with each other one (and each --backend-window)")
	fs.StringVar(&f.windowList, "backend-window", strconv.Itoa(cluster.DefaultConfig().Backend.WindowSize), "side-by-side: the gateway's backend.window_size (RFC 7440; tftpd-hpa ignores it); a `LIST` as for --backend-blksize")
	fs.IntVar(&f.backendInFlight, "backend-max-in-flight", cluster.DefaultConfig().Backend.MaxInFlight, "side-by-side: the gateway's backend.max_in_flight")
	fs.DurationVar(&f.backendDelay, "backend-delay", 0, "side-by-side: put a link delaying every datagram by `D` each way between the phones' side and the backends (an emulated WAN): the gateway reaches its backends across it, and the direct runs reach their server across it too")
	fs.StringVar(&f.backends, "backends", "tftpd-hpa", "side-by-side: the sub-clusters' TFTP servers: tftpd-hpa, or ctftp (this program's own engine, which has RFC 7440 windowsize)")
	fs.DurationVar(&f.settle, "settle", 0, "side-by-side: before the first run, wait up to `D` for the 1-minute load average to fall below 0.5, and report whether it did (0 = do not wait)")
	fs.IntVar(&f.passes, "passes", 1, "side-by-side: run every configuration `N` times, in turn (each pass's ratios come from that pass)")
	fs.IntVar(&f.inFlight, "in-flight", 1000, "side-by-side: hold `N` transfers open on the warm gateway to measure its memory per transfer in flight (0 = skip)")
	fs.IntVar(&f.hold, "hold", 0, "instead of a storm, open `N` transfers of --file on --server and hold them (memory per transfer in flight)")
	fs.StringVar(&f.holdFile, "file", "", "hold: the file to ask for")
	fs.DurationVar(&f.holdFor, "hold-for", 2*time.Second, "hold: how long to keep the transfers open before releasing them")
	fs.StringVar(&f.admin, "admin", "", "hold: the server's admin endpoint `HOST:PORT`, to read its RSS, goroutines and open files")
	c.MarkFlagFilename("macs")
	c.MarkFlagDirname("dir")
	return c
}

// checkBenchFlags reports every problem with the flags at once; set says
// whether a flag was given.
func checkBenchFlags(f *benchFlags, set func(string) bool, pos []string, stderr io.Writer) int {

	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if len(pos) > 0 {
		bad("unexpected argument %q", pos[0])
	}
	switch {
	case f.sideBySide && f.server != "":
		bad("--server and --side-by-side exclude each other: side by side starts its own servers")
	case !f.sideBySide && f.server == "":
		bad("--server HOST:PORT or --side-by-side is required")
	case f.server != "":
		if _, _, err := net.SplitHostPort(f.server); err != nil {
			bad("--server: %q: want HOST:PORT", f.server)
		}
	}
	if f.macsFile != "" && set("phones") {
		bad("--macs and --phones exclude each other: the file says how many phones there are")
	}
	if f.macsFile != "" && set("mac-prefix") {
		bad("--macs and --mac-prefix exclude each other")
	}
	if f.hold < 0 {
		bad("--hold: must not be negative, got %d", f.hold)
	}
	if f.hold > 0 {
		if f.sideBySide {
			bad("--hold needs --server (run it against `ctftp serve`, whose /metrics reports its own memory)")
		}
		if f.holdFile == "" {
			bad("--hold needs --file NAME, a file the server has")
		}
		if f.holdFor < 0 {
			bad("--hold-for: must not be negative, got %s", f.holdFor)
		}
	} else if set("file") || set("hold-for") || set("admin") {
		bad("--file, --hold-for and --admin only apply to --hold")
	}
	if !f.sideBySide {
		for _, name := range []string{"dir", "backend-blksize", "backend-window", "backends", "backend-max-in-flight", "backend-delay", "passes", "in-flight", "settle", "cpu-split"} {
			if set(name) {
				bad("--%s only applies to --side-by-side", name)
			}
		}
	}
	var err error
	if f.backendBlksizes, err = intList(f.blksizeList, 512, 65464); err != nil {
		bad("--backend-blksize: %v", err)
	}
	if f.backendWindows, err = intList(f.windowList, 1, 64); err != nil {
		bad("--backend-window: %v", err)
	}
	if f.backends != "tftpd-hpa" && f.backends != "ctftp" {
		bad("--backends: want tftpd-hpa or ctftp, got %q", f.backends)
	}
	if f.settle < 0 {
		bad("--settle: must not be negative, got %s", f.settle)
	}
	if f.passes < 1 || f.passes > 100 {
		bad("--passes: must be between 1 and 100, got %d", f.passes)
	}
	if f.inFlight < 0 {
		bad("--in-flight: must not be negative, got %d", f.inFlight)
	}
	if f.backendInFlight < 1 {
		bad("--backend-max-in-flight: must be at least 1, got %d", f.backendInFlight)
	}
	if f.backendDelay < 0 {
		bad("--backend-delay: must not be negative, got %s", f.backendDelay)
	}
	if f.hold == 0 {
		if err := f.storm.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				bad("%s", flagName(line))
			}
		}
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, "ctftp bench: "+p)
		}
		return exitUsage
	}
	return exitOK
}

// intList parses a comma-separated list of integers in [lo, hi], without
// repeats.
func intList(s string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		switch {
		case err != nil:
			return nil, fmt.Errorf("%q: not a number", f)
		case n < lo || n > hi:
			return nil, fmt.Errorf("must be between %d and %d, got %d", lo, hi, n)
		case slices.Contains(out, n):
			return nil, fmt.Errorf("%d listed twice", n)
		}
		out = append(out, n)
	}
	return out, nil
}

// flagName rewrites a loadgen.Config problem ("boot_timeout: ...") with
// the flag a user types ("--boot-timeout: ...").
func flagName(problem string) string {
	key, rest, ok := strings.Cut(problem, ": ")
	if !ok {
		return problem
	}
	return "--" + strings.ReplaceAll(key, "_", "-") + ": " + rest
}

// stormMACs returns the phones' MACs: from --macs, else generated.
func stormMACs(f benchFlags) ([]string, error) {
	if f.macsFile == "" {
		return loadgen.MACs(f.storm.MACPrefix, 0, f.storm.Phones)
	}
	file, err := os.Open(f.macsFile)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	macs, err := loadgen.ReadMACs(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.macsFile, err)
	}
	return macs, nil
}

// progressTo says where progress goes: stderr, redrawn as a bar only when
// it is a terminal (logs and CI get plain lines).
func progressTo(f benchFlags, stderr io.Writer) (io.Writer, bool) {
	if f.quiet {
		return nil, false
	}
	return stderr, isTerminal(stderr)
}

func isTerminal(w io.Writer) bool {
	file, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := file.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// benchServer storms a running server.
func benchServer(ctx context.Context, f benchFlags, stdout, stderr io.Writer) int {
	macs, err := stormMACs(f)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: --macs: %v\n", err)
		return exitUsage
	}
	server, err := resolveServer(ctx, f.server)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
		return exitFailure
	}
	prog, term := progressTo(f, stderr)
	rep, err := loadgen.Run(ctx, f.storm, server, loadgen.Options{
		Label: "bench " + f.server, MACs: macs, Progress: prog, Terminal: term,
	})
	if rep == nil {
		fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
		return exitFailure
	}
	if f.jsonOut {
		writeJSON(stdout, rep)
	} else {
		rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
		return exitFailure
	}
	if rep.Failed > 0 {
		return exitFailure
	}
	return exitOK
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// holdSample is the server's state at one moment of a hold, from its
// /metrics.
type holdSample struct {
	Active     float64 `json:"active_transfers"`
	Goroutines float64 `json:"goroutines"`
	RSS        float64 `json:"rss_bytes"`
	OpenFDs    float64 `json:"open_fds"`
	HeapInuse  float64 `json:"heap_inuse_bytes"`
}

func (s holdSample) String() string {
	return fmt.Sprintf("%6.0f active  %7.0f goroutines  %8.1f MiB RSS  %8.1f MiB heap in use  %6.0f open fds",
		s.Active, s.Goroutines, s.RSS/(1<<20), s.HeapInuse/(1<<20), s.OpenFDs)
}

// benchHold opens --hold transfers and keeps them open for --hold-for,
// reading the server's memory before, during and after.
func benchHold(ctx context.Context, f benchFlags, stdout, stderr io.Writer) int {
	server, err := resolveServer(ctx, f.server)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
		return exitFailure
	}
	sample := func() (*holdSample, error) {
		if f.admin == "" {
			return nil, nil
		}
		return scrapeHold(ctx, f.admin)
	}
	out := struct {
		Transfers int           `json:"transfers"`
		Open      time.Duration `json:"open_ns"`
		Before    *holdSample   `json:"before,omitempty"`
		During    *holdSample   `json:"during,omitempty"`
		After     *holdSample   `json:"after,omitempty"`
	}{Transfers: f.hold}
	if out.Before, err = sample(); err != nil {
		fmt.Fprintf(stderr, "ctftp bench: --admin: %v\n", err)
		return exitFailure
	}
	start := time.Now()
	h, err := loadgen.StartHold(ctx, server, f.holdFile, f.hold, loadgen.HoldOptions{})
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
		return exitFailure
	}
	out.Open = time.Since(start)
	select {
	case <-time.After(f.holdFor):
	case <-ctx.Done():
	}
	out.During, err = sample()
	if rerr := h.Release(); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
		return exitFailure
	}
	// The server needs a moment to see the ERRORs and end the transfers.
	if f.admin != "" {
		for deadline := time.Now().Add(30 * time.Second); ; {
			if out.After, err = sample(); err != nil {
				fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
				return exitFailure
			}
			if out.After.Active <= out.Before.Active || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if f.jsonOut {
		writeJSON(stdout, out)
		return exitOK
	}
	fmt.Fprintf(stdout, "held %d transfers of %s on %s (opened in %s)\n", f.hold, f.holdFile, f.server, out.Open.Round(time.Millisecond))
	if out.Before != nil {
		fmt.Fprintf(stdout, "  before  %s\n  during  %s\n  after   %s\n", out.Before, out.During, out.After)
		if d := out.During.Active - out.Before.Active; d > 0 {
			fmt.Fprintf(stdout, "  per transfer in flight: %.1f KiB RSS, %.2f goroutines, %.2f fds\n",
				(out.During.RSS-out.Before.RSS)/d/1024, (out.During.Goroutines-out.Before.Goroutines)/d, (out.During.OpenFDs-out.Before.OpenFDs)/d)
		}
	}
	return exitOK
}

// scrapeHold reads the series a hold reports from an admin /metrics.
func scrapeHold(ctx context.Context, admin string) (*holdSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var b strings.Builder
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	text := b.String()
	return &holdSample{
		Active:     loadgen.SumSeries(text, "ctftp_active_transfers"),
		Goroutines: loadgen.SumSeries(text, "go_goroutines"),
		RSS:        loadgen.SumSeries(text, "process_resident_memory_bytes"),
		OpenFDs:    loadgen.SumSeries(text, "process_open_fds"),
		HeapInuse:  loadgen.SumSeries(text, "go_memstats_heap_inuse_bytes"),
	}, nil
}
