package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sync/errgroup"

	"github.com/ctftp/ctftp/cache"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/internal/loadgen"
	"github.com/ctftp/ctftp/itl"
	"github.com/ctftp/ctftp/proxy"
	"github.com/ctftp/ctftp/routing"
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
	keepDir    string

	// side-by-side only: how the gateway reaches its backends.
	backendBlksize  int
	backendInFlight int
	backendDelay    time.Duration
	routeByMAC      bool

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
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, code := parseBenchFlags(args, stderr)
	if code != exitOK {
		return code
	}
	if f.cpuprofile != "" && !f.sideBySide {
		stop, err := startCPUProfile(f.cpuprofile)
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

// startCPUProfile profiles this process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	pf, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		pf.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		pf.Close()
	}, nil
}

func parseBenchFlags(args []string, stderr io.Writer) (benchFlags, int) {
	def := loadgen.DefaultConfig()
	f := benchFlags{storm: def}
	fs := newFlagSet("bench", stderr)
	fs.StringVar(&f.server, "server", "", "TFTP server `HOST:PORT` to storm (a running ctftp, tftpd-hpa, CUCM)")
	fs.BoolVar(&f.sideBySide, "side-by-side", false, "self-contained comparison on loopback: tftpd-hpa serving the files directly, then the gateway in front of tftpd-hpa backends, cold and warm")
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
	fs.StringVar(&f.cpuprofile, "cpuprofile", "", "write a CPU profile of this process to `FILE`; side by side, of the warm run only (the gateway in process and the generator)")
	fs.StringVar(&f.keepDir, "dir", "", "side-by-side: write the generated files under `DIR` and keep them (default: a temp dir removed at exit)")
	fs.IntVar(&f.backendBlksize, "backend-blksize", cluster.DefaultConfig().Backend.BlockSize, "side-by-side: the gateway's backend.block_size")
	fs.IntVar(&f.backendInFlight, "backend-max-in-flight", cluster.DefaultConfig().Backend.MaxInFlight, "side-by-side: the gateway's backend.max_in_flight")
	fs.DurationVar(&f.backendDelay, "backend-delay", 0, "side-by-side: delay every datagram between the gateway and its backends by `D` each way (an emulated WAN; the direct run is not delayed)")
	fs.BoolVar(&f.routeByMAC, "route-by-mac", false, "side-by-side: give the gateway a routing rule listing each sub-cluster's MACs, as a deployment with device lists has, instead of letting it fan out for unknown phones")
	fs.IntVar(&f.hold, "hold", 0, "instead of a storm, open `N` transfers of --file on --server and hold them (memory per transfer in flight)")
	fs.StringVar(&f.holdFile, "file", "", "hold: the file to ask for")
	fs.DurationVar(&f.holdFor, "hold-for", 2*time.Second, "hold: how long to keep the transfers open before releasing them")
	fs.StringVar(&f.admin, "admin", "", "hold: the server's admin endpoint `HOST:PORT`, to read its RSS, goroutines and open files")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return f, exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })

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
	if f.macsFile != "" && set["phones"] {
		bad("--macs and --phones exclude each other: the file says how many phones there are")
	}
	if f.macsFile != "" && set["mac-prefix"] {
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
	} else if set["file"] || set["hold-for"] || set["admin"] {
		bad("--file, --hold-for and --admin only apply to --hold")
	}
	if !f.sideBySide {
		for _, name := range []string{"dir", "backend-blksize", "backend-max-in-flight", "backend-delay", "route-by-mac"} {
			if set[name] {
				bad("--%s only applies to --side-by-side", name)
			}
		}
	}
	if f.backendBlksize < 512 || f.backendBlksize > 65464 {
		bad("--backend-blksize: must be between 512 and 65464, got %d", f.backendBlksize)
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
		return f, exitUsage
	}
	return f, exitOK
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

// sideBySide is the JSON form of a side-by-side run.
type sideBySide struct {
	Runs []*loadgen.Report `json:"runs"`
	// WarmOverDirect and ColdOverDirect compare phones/s.
	WarmOverDirect float64        `json:"warm_over_direct"`
	ColdOverDirect float64        `json:"cold_over_direct"`
	Backend        backendFetches `json:"backend"`
	BackendBlksize int            `json:"backend_blksize"`
	BackendDelay   time.Duration  `json:"backend_delay_ns"`
	RouteByMAC     bool           `json:"route_by_mac"`
}

// backendFetches is what the gateway asked of its backends, from its own
// metrics and cache statistics.
type backendFetches struct {
	// ColdFetches are backend fetch attempts during the cold run
	// (ctftp_backend_fetches_total); DistinctFiles the distinct
	// (sub-cluster, file) answers the cache then held, positive and
	// negative. Their ratio is 1 when every file was fetched once.
	ColdFetches   int64   `json:"cold_fetches"`
	DistinctFiles int64   `json:"distinct_files"`
	PerFile       float64 `json:"fetches_per_file"`
	// FillShared counts requests that waited for another request's
	// fetch instead of starting one (ctftp_cache_fill_shared_total).
	FillShared uint64 `json:"fill_shared"`
	// WarmFetches are backend fetches during the warm run: 0 while every
	// file is within its TTL.
	WarmFetches int64 `json:"warm_fetches"`
}

// benchSideBySide generates signed files for the phones of two
// sub-clusters and runs the same storm against (a) tftpd-hpa serving all
// of them directly, (b) the gateway in front of one tftpd-hpa per
// sub-cluster with an empty cache, (c) the same gateway again, warm.
func benchSideBySide(ctx context.Context, f benchFlags, stdout, stderr io.Writer) int {
	macs, err := stormMACs(f)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: --macs: %v\n", err)
		return exitUsage
	}
	tftpd, err := findTFTPD()
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
		return exitFailure
	}
	dir := f.keepDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "ctftp-bench-"); err != nil {
			fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
			return exitFailure
		}
		defer os.RemoveAll(dir)
	}
	note := func(format string, a ...any) {
		if !f.quiet {
			fmt.Fprintf(stderr, "ctftp bench: "+format+"\n", a...)
		}
	}
	note("generating PKI and signing files for %d phones in %s ...", len(macs), dir)
	fleet, err := writeBenchFleet(ctx, dir, macs)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
		return exitFailure
	}
	prog, term := progressTo(f, stderr)
	storm := func(label string, addr netip.AddrPort) (*loadgen.Report, error) {
		rep, err := loadgen.Run(ctx, f.storm, addr, loadgen.Options{
			Label: label, MACs: macs, Check: fleet.check, Progress: prog, Terminal: term,
		})
		if err != nil {
			return nil, err
		}
		return rep, nil
	}

	// (a) tftpd-hpa serving every file itself.
	direct, err := startTFTPD(ctx, tftpd, filepath.Join(dir, "direct"))
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
		return exitFailure
	}
	rDirect, err := storm("direct tftpd-hpa", direct.addr)
	direct.stop()
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: direct: %v\n", err)
		return exitFailure
	}

	// (b), (c): the gateway in front of one tftpd-hpa per sub-cluster.
	var backends []string
	for _, sc := range benchSubclusters() {
		d, err := startTFTPD(ctx, tftpd, filepath.Join(dir, sc))
		if err != nil {
			fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
			return exitFailure
		}
		defer d.stop()
		addr := d.addr
		if f.backendDelay > 0 {
			link, err := loadgen.StartDelayLink(d.addr, f.backendDelay, 0)
			if err != nil {
				fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
				return exitFailure
			}
			defer link.Close()
			addr = link.Addr()
		}
		backends = append(backends, addr.String())
	}
	gw, err := startBenchGateway(ctx, f, filepath.Join(dir, "root"), backends, macs, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: gateway: %v\n", err)
		return exitFailure
	}
	defer gw.stop()
	rCold, err := storm("gateway cold", gw.addr)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: gateway cold: %v\n", err)
		return exitFailure
	}
	gw.settle(ctx)
	coldFetches := gw.backendFetches()
	st := gw.gw.Cache().Stats()
	stopProfile := func() {}
	if f.cpuprofile != "" {
		if stopProfile, err = startCPUProfile(f.cpuprofile); err != nil {
			fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
			return exitFailure
		}
	}
	rWarm, err := storm("gateway warm", gw.addr)
	stopProfile()
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: gateway warm: %v\n", err)
		return exitFailure
	}
	out := sideBySide{
		Runs:           []*loadgen.Report{rDirect, rCold, rWarm},
		WarmOverDirect: ratio(rWarm.PhonesPerSecond, rDirect.PhonesPerSecond),
		ColdOverDirect: ratio(rCold.PhonesPerSecond, rDirect.PhonesPerSecond),
		Backend: backendFetches{
			ColdFetches:   coldFetches,
			DistinctFiles: int64(st.Entries + st.NegEntries + st.TooBigEntries),
			FillShared:    st.FillShared,
			WarmFetches:   gw.settled(ctx).backendFetches() - coldFetches,
		},
		BackendBlksize: f.backendBlksize,
		BackendDelay:   f.backendDelay,
		RouteByMAC:     f.routeByMAC,
	}
	out.Backend.PerFile = ratio(float64(out.Backend.ColdFetches), float64(out.Backend.DistinctFiles))
	if f.jsonOut {
		writeJSON(stdout, out)
	} else {
		writeSideBySide(stdout, f, len(macs), out)
	}
	for _, r := range out.Runs {
		if r.Failed > 0 {
			return exitFailure
		}
	}
	return exitOK
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func writeSideBySide(w io.Writer, f benchFlags, phones int, s sideBySide) {
	fmt.Fprintf(w, "boot storm: %d phones, concurrency %d, phone blksize %s; gateway backend blksize %d, max_in_flight %d",
		phones, f.storm.Concurrency, orNone(f.storm.BlockSize), f.backendBlksize, f.backendInFlight)
	if f.backendDelay > 0 {
		fmt.Fprintf(w, ", backend link delay %s each way", f.backendDelay)
	}
	if f.routeByMAC {
		fmt.Fprintf(w, ", phones routed by MAC rules")
	}
	fmt.Fprintf(w, "\n\n")
	loadgen.WriteTable(w, s.Runs)
	fmt.Fprintf(w, "\nwarm/direct %.2fx   cold/direct %.2fx   (phones/s)\n", s.WarmOverDirect, s.ColdOverDirect)
	b := s.Backend
	fmt.Fprintf(w, "backend fetches: %d during the cold run for %d distinct (sub-cluster, file) answers = %.2f per file; %d requests shared another's fetch; %d fetches during the warm run\n",
		b.ColdFetches, b.DistinctFiles, b.PerFile, b.FillShared, b.WarmFetches)
	for _, r := range s.Runs {
		if r.Failed > 0 {
			fmt.Fprintf(w, "\n%s: %d phones failed: %s\n", r.Label, r.Failed, r.ErrorSummary())
			for _, e := range r.Examples {
				fmt.Fprintf(w, "  e.g. %s\n", e)
			}
		}
	}
}

func orNone(n int) string {
	if n == 0 {
		return "none"
	}
	return strconv.Itoa(n)
}

// benchGateway is the in-process gateway of a side-by-side run.
type benchGateway struct {
	gw      *proxy.Gateway
	set     *metrics.Set
	addr    netip.AddrPort
	cancel  context.CancelFunc
	stopped chan error
}

// startBenchGateway runs the gateway as `ctftp serve` would, with TTLs
// long enough that the warm run stays warm (the phones' own files and the
// negative TTL too: the CTLSEP misses are most of the cold run's backend
// traffic).
func startBenchGateway(ctx context.Context, f benchFlags, root string, backends, macs []string, stderr io.Writer) (*benchGateway, error) {
	tcfg := proxy.DefaultConfig()
	tcfg.Listen = []string{"127.0.0.1:0"}
	tcfg.ShutdownGrace = 2 * time.Second
	cc := cluster.DefaultConfig()
	cc.Backend.BlockSize = f.backendBlksize
	cc.Backend.MaxInFlight = f.backendInFlight
	for i, sc := range benchSubclusters() {
		cc.Subclusters = append(cc.Subclusters, cluster.SubclusterConfig{Name: sc, Version: "14", Backends: []string{backends[i]}})
	}
	kc := cache.DefaultConfig()
	kc.TTL = cache.TTLConfig{Device: time.Hour, Trust: time.Hour, Config: time.Hour, Firmware: time.Hour, Other: time.Hour}
	kc.NegativeTTL = time.Hour
	rc := routing.DefaultConfig()
	if f.routeByMAC {
		// Phone i lives in sub-cluster i mod 2, as writeBenchFleet put it.
		for j, sc := range benchSubclusters() {
			r := routing.Rule{Subcluster: sc}
			for i := j; i < len(macs); i += len(benchSubclusters()) {
				r.MAC = append(r.MAC, macs[i])
			}
			rc.Rules = append(rc.Rules, r)
		}
	}
	gc := proxy.GatewayConfig{
		TFTP: tcfg, Root: root, Cluster: cc, Routing: rc, Cache: kc, Version: versionString(),
	}
	set := metrics.NewSet()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	gw, err := proxy.NewGateway(gc, logger, set)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	if err := gw.Start(ctx); err != nil {
		cancel()
		return nil, err
	}
	b := &benchGateway{gw: gw, set: set, addr: gw.TFTPAddrs()[0], cancel: cancel, stopped: make(chan error, 1)}
	go func() { b.stopped <- gw.Run(ctx) }()
	return b, nil
}

func (b *benchGateway) stop() {
	b.cancel()
	<-b.stopped
}

// settle waits (up to 10 s) until no backend fetch is running or
// waiting: a fan-out's losing fetch may outlive the phone's transfer,
// and counts read before it ends would not add up.
func (b *benchGateway) settle(ctx context.Context) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		var buf bytes.Buffer
		b.set.WritePrometheus(&buf)
		if sumSeries(buf.String(), "ctftp_backend_in_flight")+sumSeries(buf.String(), "ctftp_backend_waiting") == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (b *benchGateway) settled(ctx context.Context) *benchGateway {
	b.settle(ctx)
	return b
}

// backendFetches sums ctftp_backend_fetches_total over its labels.
func (b *benchGateway) backendFetches() int64 {
	var buf bytes.Buffer
	b.set.WritePrometheus(&buf)
	return int64(sumSeries(buf.String(), "ctftp_backend_fetches_total"))
}

// sumSeries adds up every sample of the metric name in a Prometheus text
// exposition, whatever its labels.
func sumSeries(exposition, name string) float64 {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		if v, err := strconv.ParseFloat(rest[i+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// benchSubclusters returns the side-by-side's sub-clusters, in priority
// order; phone i lives in number i mod 2. A function, so no caller can
// change what the others see.
func benchSubclusters() []string { return []string{"east", "west"} }

// benchFleet is the generated world of a side-by-side run: what each
// server serves, and what every phone must receive.
type benchFleet struct {
	// files maps each name a phone may receive to its bytes.
	files map[string][]byte
}

// check is the storm's content check: every file must be exactly what
// was generated.
func (fl *benchFleet) check(name string, body []byte) error {
	want, ok := fl.files[name]
	if !ok {
		return fmt.Errorf("not a generated file")
	}
	if !bytes.Equal(body, want) {
		return fmt.Errorf("got %d bytes, generated %d (content differs)", len(body), len(want))
	}
	return nil
}

// writeBenchFleet lays out, under dir:
//
//	direct/  what tftpd-hpa serves alone: every phone's files
//	east/    sub-cluster east: its phones' files, its ITLFile.tlv
//	west/    the same for west
//	root/    the gateway's own files: only its ITLFile.tlv (a central
//	         server has one; phones with an ITLSEP file never ask for
//	         it), so every request of the storm is a miss
//
// Phones alternate between east and west. Nobody has a CTLSEP<MAC>.tlv
// (the common case, so every phone's first request is a miss);
// CTLFile.tlv is the same everywhere, so which sub-cluster answers it does
// not matter. Sizes are near the phone logs of the project's domain notes
// (CTL 4.7 KB, ITL 5.4 KB, signed config 7.6 KB): here the CTL is about
// 6.7 KB, the ITLs 5.9 KB, the configs 7.2 KB. Signing uses every CPU;
// the keys are fresh 2048-bit RSA.
func writeBenchFleet(ctx context.Context, dir string, macs []string) (*benchFleet, error) {
	type pki struct{ sast, ccm, tvs *itl.Signer }
	newPKI := func(name string) (pki, error) {
		var p pki
		var err error
		if p.sast, err = itl.NewSigner("ITLRecovery_"+name, 2048); err != nil {
			return p, err
		}
		if p.ccm, err = itl.NewSigner("cucm-"+name+".example.com", 2048); err != nil {
			return p, err
		}
		p.tvs, err = itl.NewSigner("tvs-"+name+".example.com", 2048)
		return p, err
	}
	pkis := map[string]pki{}
	for _, name := range append([]string{"central"}, benchSubclusters()...) {
		p, err := newPKI(name)
		if err != nil {
			return nil, fmt.Errorf("pki %s: %w", name, err)
		}
		pkis[name] = p
	}
	ctl, err := itl.Build(itl.BuildOptions{
		Kind:   itl.KindCTL,
		Signer: pkis["central"].sast,
		Records: []itl.RecordSpec{
			{Role: itl.RoleSAST, Cert: pkis["east"].sast.Cert},
			{Role: itl.RoleCCMTFTP, Cert: pkis["east"].ccm.Cert, DNSName: "cucm-east.example.com"},
			{Role: itl.RoleCCMTFTP, Cert: pkis["west"].ccm.Cert, DNSName: "cucm-west.example.com"},
			{Role: itl.RoleCAPF, Cert: pkis["central"].tvs.Cert, HashOnly: true},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("CTLFile.tlv: %w", err)
	}
	itls := map[string][]byte{}
	for _, sc := range append([]string{"central"}, benchSubclusters()...) {
		p := pkis[sc]
		itls[sc], err = itl.Build(itl.BuildOptions{
			Signer: p.sast,
			Records: []itl.RecordSpec{
				{Role: itl.RoleCCMTFTP, Cert: p.ccm.Cert, DNSName: "cucm-" + sc + ".example.com"},
				{Role: itl.RoleTVS, Cert: p.tvs.Cert, DNSName: "tvs-" + sc + ".example.com"},
				{Role: itl.RoleCAPF, Cert: p.ccm.Cert, HashOnly: true},
				{Role: itl.RoleTVS, Cert: pkis["central"].tvs.Cert, HashOnly: true},
			},
		})
		if err != nil {
			return nil, fmt.Errorf("ITLFile.tlv of %s: %w", sc, err)
		}
	}

	fl := &benchFleet{files: map[string][]byte{"CTLFile.tlv": ctl}}
	type dirFile struct {
		dirs []string
		name string
		body []byte
	}
	files := []dirFile{
		{[]string{"direct", "east", "west"}, "CTLFile.tlv", ctl},
		{[]string{"direct", "root"}, "ITLFile.tlv", itls["central"]},
		{[]string{"east"}, "ITLFile.tlv", itls["east"]},
		{[]string{"west"}, "ITLFile.tlv", itls["west"]},
	}
	sgns := make([][]byte, len(macs))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(runtime.GOMAXPROCS(0))
	for i, mac := range macs {
		sc := benchSubclusters()[i%2]
		eg.Go(func() error {
			if err := ectx.Err(); err != nil {
				return err
			}
			name := "SEP" + mac + ".cnf.xml"
			sgn, err := itl.Sign(name, benchConfigXML(mac, sc), pkis[sc].ccm, itl.SHA1)
			if err != nil {
				return fmt.Errorf("sign %s: %w", name, err)
			}
			sgns[i] = sgn
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	for i, mac := range macs {
		sc := benchSubclusters()[i%2]
		itlName, cnfName := "ITLSEP"+mac+".tlv", "SEP"+mac+".cnf.xml.sgn"
		files = append(files,
			dirFile{[]string{"direct", sc}, itlName, itls[sc]},
			dirFile{[]string{"direct", sc}, cnfName, sgns[i]})
		fl.files[itlName], fl.files[cnfName] = itls[sc], sgns[i]
	}
	for _, d := range []string{"direct", "east", "west", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	for _, df := range files {
		for _, d := range df.dirs {
			// World-readable: tftpd-hpa serves nothing else.
			if err := os.WriteFile(filepath.Join(dir, d, df.name), df.body, 0o644); err != nil {
				return nil, err
			}
		}
	}
	return fl, nil
}

// benchConfigXML is the demo's phone configuration, grown with line and
// softkey entries to the 7.6 KB (signed) of a real phone's config.
func benchConfigXML(mac, sc string) []byte {
	base := string(demoConfigXML(demoPhone{mac: mac, subcluster: sc, model: "Cisco 8845"}, sc))
	var b strings.Builder
	b.WriteString("  <sipProfile>\n    <sipLines>\n")
	for i := 1; b.Len() < 6000; i++ {
		fmt.Fprintf(&b, `      <line button="%d" lineIndex="%d">
        <featureID>9</featureID><featureLabel>%04d</featureLabel><proxy>USECALLMANAGER</proxy><port>5060</port>
        <name>%04d</name><displayName>Desk %s line %d</displayName><autoAnswer><autoAnswerEnabled>2</autoAnswerEnabled></autoAnswer>
        <callWaiting>3</callWaiting><sharedLine>false</sharedLine><messageWaitingLampPolicy>3</messageWaitingLampPolicy>
      </line>
`, i, i, 1000+i, 1000+i, mac, i)
	}
	b.WriteString("    </sipLines>\n  </sipProfile>\n")
	return []byte(strings.Replace(base, "</device>", b.String()+"</device>", 1))
}

// findTFTPD locates tftpd-hpa's daemon. It must run as root: it chroots
// into the directory it serves.
func findTFTPD() (string, error) {
	bin := "/usr/sbin/in.tftpd"
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("in.tftpd")
		if lerr != nil {
			return "", errors.New("--side-by-side needs tftpd-hpa's in.tftpd (apt-get install tftpd-hpa)")
		}
		bin = p
	}
	if os.Geteuid() != 0 {
		return "", errors.New("--side-by-side runs in.tftpd, which must start as root (it chroots into the directory it serves)")
	}
	return bin, nil
}

// tftpdProc is one in.tftpd serving a directory on a loopback port.
type tftpdProc struct {
	cmd    *exec.Cmd
	addr   netip.AddrPort
	exited chan struct{}
}

// startTFTPD starts in.tftpd on 127.0.0.1 and a free port, and returns
// once it answers. The port is picked by binding and closing a socket,
// so another program may take it first; that is retried.
func startTFTPD(ctx context.Context, bin, dir string) (*tftpdProc, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var lastOut string
	for range 5 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		addr := c.LocalAddr().(*net.UDPAddr).AddrPort()
		c.Close()
		var out bytes.Buffer
		// -L: stay in the foreground; -s: chroot; -u root: the files
		// need not be readable by "nobody".
		cmd := exec.Command(bin, "-L", "-s", "-u", "root", "-a", addr.String(), abs)
		cmd.Stdout, cmd.Stderr = &out, &out
		// Its own process group, so stop also kills the children it
		// forks per transfer.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", bin, err)
		}
		p := &tftpdProc{cmd: cmd, addr: addr, exited: make(chan struct{})}
		go func() {
			cmd.Wait()
			close(p.exited)
		}()
		if tftpAnswers(ctx, addr, p.exited) {
			return p, nil
		}
		p.stop()
		lastOut = out.String()
	}
	return nil, fmt.Errorf("in.tftpd did not answer on 127.0.0.1 after 5 tries; its output: %q", lastOut)
}

func (p *tftpdProc) stop() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// tftpAnswers asks addr for a made-up file until any TFTP packet comes
// back, the process exits, ctx ends or 10 s pass.
func tftpAnswers(ctx context.Context, addr netip.AddrPort, exited <-chan struct{}) bool {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return false
	}
	defer c.Close()
	rrq := binary.BigEndian.AppendUint16(nil, 1)
	rrq = append(append(rrq, "ctftp-bench-readiness-check\x00"...), "octet\x00"...)
	buf := make([]byte, 600)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		select {
		case <-exited:
			return false
		default:
		}
		c.WriteToUDPAddrPort(rrq, addr)
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, _, err := c.ReadFromUDPAddrPort(buf); err == nil && n >= 4 {
			return true
		}
	}
	return false
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
		Active:     sumSeries(text, "ctftp_active_transfers"),
		Goroutines: sumSeries(text, "go_goroutines"),
		RSS:        sumSeries(text, "process_resident_memory_bytes"),
		OpenFDs:    sumSeries(text, "process_open_fds"),
		HeapInuse:  sumSeries(text, "go_memstats_heap_inuse_bytes"),
	}, nil
}
