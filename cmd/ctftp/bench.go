package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/spf13/cobra"

	"github.com/ctftp/ctftp/cache"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/internal/fleet"
	"github.com/ctftp/ctftp/internal/loadgen"
	"github.com/ctftp/ctftp/internal/tftpd"
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
func runBench(ctx context.Context, f benchFlags, set func(string) bool, pos []string, stdout, stderr io.Writer) int {
	if code := checkBenchFlags(f, set, pos, stderr); code != exitOK {
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

func benchCmd(a *cli) *cobra.Command {
	def := loadgen.DefaultConfig()
	f := benchFlags{storm: def}
	c := &cobra.Command{
		Use:   "bench --server HOST:PORT | --side-by-side [--phones N] [--concurrency C] [--json]",
		Short: "boot-storm load generator with progress and a report",
		Long: `A boot storm against a TFTP server (--server: a running ctftp, tftpd-hpa,
CUCM), or --side-by-side: tftpd-hpa serving the files directly, then the
gateway in front of tftpd-hpa backends, cold and warm, in one run. --hold N
keeps N transfers in flight instead. Reports phones/s, transfers/s,
p50/p99/max, errors and bytes; --json for all of it.`,
		RunE: func(c *cobra.Command, args []string) error {
			return exit(runBench(c.Context(), f, c.Flags().Changed, args, a.stdout, a.stderr))
		},
	}
	fs := c.Flags()
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
	c.MarkFlagFilename("macs")
	c.MarkFlagDirname("dir")
	return c
}

// checkBenchFlags reports every problem with the flags at once; set says
// whether a flag was given.
func checkBenchFlags(f benchFlags, set func(string) bool, pos []string, stderr io.Writer) int {

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
		for _, name := range []string{"dir", "backend-blksize", "backend-max-in-flight", "backend-delay", "route-by-mac"} {
			if set(name) {
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
		return exitUsage
	}
	return exitOK
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
	if _, err := tftpd.Find(); err != nil {
		fmt.Fprintf(stderr, "ctftp bench: --side-by-side runs tftpd-hpa: %v\n", err)
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
	world, err := fleet.Generate(ctx, fleet.Options{Phones: fleet.Spread(macs, fleet.DefaultSubclusters())})
	if err == nil {
		err = world.Write(dir)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
		return exitFailure
	}
	prog, term := progressTo(f, stderr)
	storm := func(label string, addr netip.AddrPort) (*loadgen.Report, error) {
		rep, err := loadgen.Run(ctx, f.storm, addr, loadgen.Options{
			Label: label, MACs: macs, Check: world.Check, Progress: prog, Terminal: term,
		})
		if err != nil {
			return nil, err
		}
		return rep, nil
	}

	// (a) tftpd-hpa serving every file itself.
	direct, err := tftpd.Start(ctx, filepath.Join(dir, fleet.Direct))
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
		return exitFailure
	}
	rDirect, err := storm("direct tftpd-hpa", direct.Addr())
	direct.Stop()
	if err != nil {
		fmt.Fprintf(stderr, "ctftp bench: direct: %v\n", err)
		return exitFailure
	}

	// (b), (c): the gateway in front of one tftpd-hpa per sub-cluster.
	var backends []string
	for _, sc := range world.Subclusters() {
		d, err := tftpd.Start(ctx, filepath.Join(dir, sc))
		if err != nil {
			fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
			return exitFailure
		}
		defer d.Stop()
		addr := d.Addr()
		if f.backendDelay > 0 {
			link, err := loadgen.StartDelayLink(addr, f.backendDelay, 0)
			if err != nil {
				fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
				return exitFailure
			}
			defer link.Close()
			addr = link.Addr()
		}
		backends = append(backends, addr.String())
	}
	gw, err := startBenchGateway(ctx, f, filepath.Join(dir, fleet.Root), world, backends, stderr)
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
func startBenchGateway(ctx context.Context, f benchFlags, root string, world *fleet.World, backends []string, stderr io.Writer) (*benchGateway, error) {
	tcfg := proxy.DefaultConfig()
	tcfg.Listen = []string{"127.0.0.1:0"}
	tcfg.ShutdownGrace = 2 * time.Second
	cc := cluster.DefaultConfig()
	cc.Backend.BlockSize = f.backendBlksize
	cc.Backend.MaxInFlight = f.backendInFlight
	for i, sc := range world.Subclusters() {
		cc.Subclusters = append(cc.Subclusters, cluster.SubclusterConfig{Name: sc, Version: "14", Backends: []string{backends[i]}})
	}
	kc := cache.DefaultConfig()
	kc.TTL = cache.TTLConfig{Device: time.Hour, Trust: time.Hour, Config: time.Hour, Firmware: time.Hour, Other: time.Hour}
	kc.NegativeTTL = time.Hour
	rc := routing.DefaultConfig()
	if f.routeByMAC {
		for _, sc := range world.Subclusters() {
			rc.Rules = append(rc.Rules, routing.Rule{Subcluster: sc, MAC: world.DeviceList(sc)})
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
