package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/pin/tftp/v3"

	"github.com/ctftp/ctftp/cache"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/internal/fleet"
	"github.com/ctftp/ctftp/internal/loadgen"
	"github.com/ctftp/ctftp/internal/tftpd"
	"github.com/ctftp/ctftp/proxy"
	"github.com/ctftp/ctftp/routing"
)

// The runs of a side-by-side pass, in the order they run.
const (
	runDirect  = "tftpd-hpa direct"
	runPin     = "pin/tftp direct"
	runCold    = "gateway cold, fan-out"
	runWarm    = "gateway warm"
	runRules   = "gateway cold, device rules"
	runCeiling = "loopback lock-step ceiling"
)

// sbsRatios are the ratios of phones/s a pass reports: key, numerator,
// denominator, in print order. A function, so nobody can change them.
func sbsRatios() [7][3]string {
	return [...][3]string{
		{"warm_over_ceiling", runWarm, runCeiling},
		{"warm_over_pin", runWarm, runPin},
		{"warm_over_direct", runWarm, runDirect},
		{"pin_over_direct", runPin, runDirect},
		{"cold_over_direct", runCold, runDirect},
		{"cold_rules_over_direct", runRules, runDirect},
		{"direct_over_ceiling", runDirect, runCeiling},
	}
}

// sideBySide is the JSON form of a side-by-side run.
type sideBySide struct {
	Phones          int `json:"phones"`
	Concurrency     int `json:"concurrency"`
	PhoneBlksize    int `json:"phone_blksize,omitempty"`
	CPUs            int `json:"cpus"`
	BackendBlksize  int `json:"backend_blksize"`
	BackendWindow   int `json:"backend_window"`
	BackendInFlight int `json:"backend_max_in_flight"`
	// BackendDelay is the emulated WAN's delay each way; the direct runs
	// cross the same link when it is set.
	BackendDelay time.Duration `json:"backend_delay_ns"`
	// Backends is the sub-clusters' server: tftpd-hpa or ctftp.
	Backends string `json:"backends"`
	// LoadStart and LoadEnd are /proc/loadavg before the first run and
	// after the last: a loaded machine shows itself.
	LoadStart *loadAvg `json:"load_start,omitempty"`
	LoadEnd   *loadAvg `json:"load_end,omitempty"`
	// Settle is the wait for a quiet machine before the first run
	// (--settle); nil when none was asked for.
	Settle *settleResult `json:"settle,omitempty"`
	Passes []sbsPass     `json:"passes"`
	// MedianRatios are each ratio's median over the passes (2 or more).
	MedianRatios map[string]float64 `json:"median_ratios,omitempty"`
	Memory       sbsMemory          `json:"memory"`
	// Sweep is the cold fan-out run again, in the first pass, with every
	// other combination of --backend-blksize and --backend-window; Best
	// is the fastest cold fan-out of all, the main one included.
	Sweep []sbsSweepRow `json:"backend_sweep,omitempty"`
	Best  *sbsSweepRow  `json:"best_cold,omitempty"`
}

// sbsSweepRow is one cold fan-out run with one backend block size and
// window size.
type sbsSweepRow struct {
	Blksize int             `json:"backend_blksize"`
	Window  int             `json:"backend_window"`
	Run     *loadgen.Report `json:"run"`
	// OverDirect compares phones/s with the pass's tftpd-hpa direct run.
	OverDirect float64 `json:"over_direct"`
}

// settleResult is how the wait for a quiet machine went.
type settleResult struct {
	// Below is the 1-minute load average waited for.
	Below   float64       `json:"below"`
	Waited  time.Duration `json:"waited_ns"`
	Settled bool          `json:"settled"`
	Load    *loadAvg      `json:"load"`
}

// quietLoad is the 1-minute load average --settle waits for: below it,
// a 2-core machine is running nothing of note besides the bench.
const quietLoad = 0.5

// settle waits up to max for the 1-minute load average to fall below
// quietLoad, noting progress every 15 s: a run on a busy machine starves
// the fork-per-transfer tftpd-hpa far more than the other servers and
// flatters every ratio against it.
func settle(ctx context.Context, max time.Duration, note func(string, ...any)) *settleResult {
	res := &settleResult{Below: quietLoad}
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastNote := start
	for {
		res.Load = readLoadAvg()
		res.Waited = time.Since(start).Round(time.Second)
		if res.Load == nil {
			return res // no /proc/loadavg: nothing to wait for
		}
		if res.Load.One < quietLoad {
			res.Settled = true
			return res
		}
		if res.Waited >= max {
			return res
		}
		if time.Since(lastNote) >= 15*time.Second {
			note("waiting for the load average to fall below %.1f: %s after %s", quietLoad, res.Load, res.Waited)
			lastNote = time.Now()
		}
		select {
		case <-ctx.Done():
			return res
		case <-tick.C:
		}
	}
}

func (s *settleResult) String() string {
	if s.Settled {
		return fmt.Sprintf("settled below %.1f after %s", s.Below, s.Waited)
	}
	return fmt.Sprintf("did NOT settle below %.1f in %s: a loaded reading", s.Below, s.Waited)
}

// medianRatios is each ratio's median over the passes.
func medianRatios(passes []sbsPass) map[string]float64 {
	if len(passes) < 2 {
		return nil
	}
	m := map[string]float64{}
	for _, q := range sbsRatios() {
		var v []float64
		for _, p := range passes {
			v = append(v, p.Ratios[q[0]])
		}
		slices.Sort(v)
		if n := len(v); n%2 == 1 {
			m[q[0]] = v[n/2]
		} else {
			m[q[0]] = (v[n/2-1] + v[n/2]) / 2
		}
	}
	return m
}

// sbsPass is one pass over every configuration.
type sbsPass struct {
	// Load is the load average when the pass began.
	Load *loadAvg          `json:"load_start,omitempty"`
	Runs []*loadgen.Report `json:"runs"`
	// Ratios compare phones/s of this pass's runs (sbsRatios).
	Ratios map[string]float64 `json:"ratios"`
	// CeilingRoundTrips is the ceiling's round trips per phone: what
	// each phone of the other runs makes too.
	CeilingRoundTrips float64        `json:"ceiling_round_trips_per_phone"`
	Fanout            backendFetches `json:"cold_fanout_backend"`
	Rules             backendFetches `json:"cold_rules_backend"`
}

// backendFetches is what a gateway asked of its backends, from its own
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
	// file is within its TTL (fan-out gateway only).
	WarmFetches int64 `json:"warm_fetches"`
}

// sbsMemory is the warm gateway's memory, measured in the first pass.
type sbsMemory struct {
	// CachedFiles and CachedBytes are what the cold run left in the
	// cache; HeapGrowth is the live heap after it minus before it (after
	// a GC each time), so it includes the cache's entries, remembered
	// "not found" answers and learned routes, not only file bytes.
	CachedFiles       int     `json:"cached_files"`
	CachedBytes       int64   `json:"cached_bytes"`
	HeapGrowth        int64   `json:"heap_growth_bytes"`
	HeapPerCachedByte float64 `json:"heap_per_cached_byte"`
	// InFlight is the cost of transfers held open on the warm gateway
	// (nil with --in-flight 0).
	InFlight *inFlightMemory `json:"in_flight,omitempty"`
}

// inFlightMemory is the gateway process's growth per transfer held in
// flight by a separate process (so the client's sockets are not
// counted): each transfer has sent its OACK and waits for the ACK.
type inFlightMemory struct {
	Transfers             int     `json:"transfers"`
	File                  string  `json:"file"`
	RSSPerTransfer        float64 `json:"rss_bytes_per_transfer"`
	HeapPerTransfer       float64 `json:"heap_inuse_bytes_per_transfer"`
	StackPerTransfer      float64 `json:"stack_inuse_bytes_per_transfer"`
	GoroutinesPerTransfer float64 `json:"goroutines_per_transfer"`
	FDsPerTransfer        float64 `json:"fds_per_transfer"`
	Error                 string  `json:"error,omitempty"`
}

// loadAvg is /proc/loadavg's first three fields.
type loadAvg struct {
	One     float64 `json:"1m"`
	Five    float64 `json:"5m"`
	Fifteen float64 `json:"15m"`
}

func (l *loadAvg) String() string {
	if l == nil {
		return "unknown"
	}
	return fmt.Sprintf("%.2f %.2f %.2f", l.One, l.Five, l.Fifteen)
}

// readLoadAvg returns the load average, nil where /proc has none.
func readLoadAvg() *loadAvg {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	var l loadAvg
	if _, err := fmt.Sscanf(string(b), "%g %g %g", &l.One, &l.Five, &l.Fifteen); err != nil {
		return nil
	}
	return &l
}

// benchSideBySide generates the fleet (internal/fleet) for the phones of
// two sub-clusters and runs the same storm, --passes times, against: (1)
// tftpd-hpa serving every file itself, (2) a plain pin/tftp server doing
// the same in this process, (3) the gateway in front of one tftpd-hpa per
// sub-cluster with an empty cache, finding phones by fan-out, (4) that
// gateway again, warm, (5) a fresh gateway whose routing rules name each
// sub-cluster's device list, cold, and (6) the loopback lock-step ceiling
// (loadgen.Ceiling: the same round trips, no server).
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
	r := &sbsRunner{f: f, ctx: ctx, dir: dir, world: world, macs: macs, stderr: stderr}
	r.prog, r.term = progressTo(f, stderr)
	out := sideBySide{
		Phones: len(macs), Concurrency: f.storm.Concurrency, PhoneBlksize: f.storm.BlockSize, CPUs: runtime.NumCPU(),
		BackendBlksize: f.backendBlksizes[0], BackendWindow: f.backendWindows[0], BackendInFlight: f.backendInFlight,
		BackendDelay: f.backendDelay, Backends: f.backends,
	}
	if f.settle > 0 {
		out.Settle = settle(ctx, f.settle, note)
		note("load average %s", out.Settle)
	}
	out.LoadStart = readLoadAvg()
	note("load average at start: %s", out.LoadStart)
	for pass := range f.passes {
		load := readLoadAvg()
		p, err := r.pass(pass, &out.Memory)
		if err != nil {
			fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
			return exitFailure
		}
		p.Load = load
		out.Passes = append(out.Passes, p)
		if pass == 0 {
			if out.Sweep, err = r.sweep(p); err != nil {
				fmt.Fprintf(stderr, "ctftp bench: %v\n", err)
				return exitFailure
			}
			out.Best = bestCold(p, out.Sweep, f)
		}
	}
	out.LoadEnd = readLoadAvg()
	out.MedianRatios = medianRatios(out.Passes)
	if f.jsonOut {
		writeJSON(stdout, out)
	} else {
		writeSideBySide(stdout, out)
	}
	for _, p := range out.Passes {
		for _, rep := range p.Runs {
			if rep.Failed > 0 {
				return exitFailure
			}
		}
	}
	for _, row := range out.Sweep {
		if row.Run.Failed > 0 {
			return exitFailure
		}
	}
	return exitOK
}

// sweep runs the cold fan-out once for every other combination of
// backend block size and window size.
func (r *sbsRunner) sweep(p sbsPass) ([]sbsSweepRow, error) {
	var rows []sbsSweepRow
	if len(r.f.backendBlksizes) == 1 && len(r.f.backendWindows) == 1 {
		return nil, nil
	}
	backends, stop, err := r.startBackends()
	if err != nil {
		return nil, err
	}
	defer stop()
	for i, b := range r.f.backendBlksizes {
		for j, w := range r.f.backendWindows {
			if i == 0 && j == 0 {
				continue // the pass's own cold fan-out
			}
			gw, err := startBenchGateway(r.ctx, r.f, r.dir, r.world, backends, false, b, w, r.stderr)
			if err != nil {
				return nil, fmt.Errorf("gateway: %w", err)
			}
			rep, err := r.storm(fmt.Sprintf("%s, blksize %d, window %d", runCold, b, w), gw.addr, nil)
			gw.stop()
			if err != nil {
				return nil, err
			}
			rows = append(rows, sbsSweepRow{Blksize: b, Window: w, Run: rep, OverDirect: ratio(rep.PhonesPerSecond, p.run(runDirect).PhonesPerSecond)})
		}
	}
	return rows, nil
}

// bestCold is the fastest cold fan-out of the first pass and the sweep.
func bestCold(p sbsPass, sweep []sbsSweepRow, f benchFlags) *sbsSweepRow {
	main := p.run(runCold)
	best := &sbsSweepRow{Blksize: f.backendBlksizes[0], Window: f.backendWindows[0], Run: main, OverDirect: p.Ratios["cold_over_direct"]}
	for i := range sweep {
		if sweep[i].Run.PhonesPerSecond > best.Run.PhonesPerSecond {
			best = &sweep[i]
		}
	}
	return best
}

// run returns the pass's run of that label.
func (p sbsPass) run(label string) *loadgen.Report {
	for _, r := range p.Runs {
		if r.Label == label {
			return r
		}
	}
	return &loadgen.Report{Label: label}
}

// sbsRunner holds what every pass of a side-by-side shares.
type sbsRunner struct {
	f      benchFlags
	ctx    context.Context
	dir    string
	world  *fleet.World
	macs   []string
	stderr io.Writer
	prog   io.Writer
	term   bool
	// lastProfile is the CPU profile of the last storm (--cpu-split).
	lastProfile []byte
}

func (r *sbsRunner) storm(label string, addr netip.AddrPort, get loadgen.GetFunc) (*loadgen.Report, error) {
	o := loadgen.Options{Label: label, MACs: r.macs, Progress: r.prog, Terminal: r.term, Get: get}
	if get == nil {
		o.Check = r.world.Check
	}
	var rep *loadgen.Report
	run := func() (err error) {
		rep, err = loadgen.Run(r.ctx, r.f.storm, addr, o)
		return err
	}
	if !r.f.cpuSplit {
		if err := run(); err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		return rep, nil
	}
	split, prof, err := loadgen.ProfileCPU(run)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	rep.CPUSplit = &split
	r.lastProfile = prof
	return rep, nil
}

// pass runs every configuration once; the first pass also measures mem.
func (r *sbsRunner) pass(n int, mem *sbsMemory) (sbsPass, error) {
	var p sbsPass
	add := func(rep *loadgen.Report) { p.Runs = append(p.Runs, rep) }

	// (1) tftpd-hpa serving every file itself.
	direct, err := tftpd.Start(r.ctx, filepath.Join(r.dir, fleet.Direct))
	if err != nil {
		return p, err
	}
	addr, unlink, err := r.acrossLink(direct.Addr())
	if err != nil {
		direct.Stop()
		return p, err
	}
	rep, err := r.storm(runDirect, addr, nil)
	unlink()
	direct.Stop()
	if err != nil {
		return p, err
	}
	add(rep)

	// (2) a plain pin/tftp server, in this process like the gateway.
	pin, err := startPinServer(r.world.Files(fleet.Direct))
	if err != nil {
		return p, err
	}
	if addr, unlink, err = r.acrossLink(pin.addr); err != nil {
		pin.stop()
		return p, err
	}
	rep, err = r.storm(runPin, addr, nil)
	unlink()
	pin.stop()
	if err != nil {
		return p, err
	}
	add(rep)

	// The sub-clusters' backends, shared by both gateways.
	backends, stopBackends, err := r.startBackends()
	if err != nil {
		return p, err
	}
	defer stopBackends()

	// (3), (4): one gateway, fan-out for unknown phones, cold then warm.
	gw, err := startBenchGateway(r.ctx, r.f, r.dir, r.world, backends, false, r.f.backendBlksizes[0], r.f.backendWindows[0], r.stderr)
	if err != nil {
		return p, fmt.Errorf("gateway: %w", err)
	}
	defer gw.stop()
	before := heapLive()
	rep, err = r.storm(runCold, gw.addr, nil)
	if err != nil {
		return p, err
	}
	add(rep)
	gw.settle(r.ctx)
	p.Fanout = gw.fetches()
	coldFetches := p.Fanout.ColdFetches
	if n == 0 {
		st := gw.gw.Cache().Stats()
		mem.CachedFiles, mem.CachedBytes = st.Entries, st.Bytes
		mem.HeapGrowth = int64(heapLive()) - int64(before)
		mem.HeapPerCachedByte = ratio(float64(mem.HeapGrowth), float64(st.Bytes))
	}
	stopProfile := func() {}
	if r.f.cpuprofile != "" && n == 0 && r.f.cpuSplit {
		// Every run is profiled already: the warm run's profile is kept.
		stopProfile = func() {
			if werr := os.WriteFile(r.f.cpuprofile, r.lastProfile, 0o644); werr != nil && err == nil {
				err = fmt.Errorf("cpuprofile: %w", werr)
			}
		}
	} else if r.f.cpuprofile != "" && n == 0 {
		if stopProfile, err = startCPUProfile(r.f.cpuprofile); err != nil {
			return p, err
		}
	}
	rep, err = r.storm(runWarm, gw.addr, nil)
	stopProfile()
	if err != nil {
		return p, err
	}
	add(rep)
	p.Fanout.WarmFetches = gw.settled(r.ctx).backendFetches() - coldFetches
	if n == 0 && r.f.inFlight > 0 {
		mem.InFlight = r.holdInFlight(gw)
	}
	gw.stop()

	// (5) a fresh gateway that knows every phone's sub-cluster.
	gwRules, err := startBenchGateway(r.ctx, r.f, r.dir, r.world, backends, true, r.f.backendBlksizes[0], r.f.backendWindows[0], r.stderr)
	if err != nil {
		return p, fmt.Errorf("gateway with device rules: %w", err)
	}
	defer gwRules.stop()
	rep, err = r.storm(runRules, gwRules.addr, nil)
	if err != nil {
		return p, err
	}
	add(rep)
	p.Rules = gwRules.settled(r.ctx).fetches()
	gwRules.stop()

	// (6) the ceiling: the same round trips between two sockets.
	ceiling := loadgen.NewCeiling(func(name string) (int, bool) {
		b, ok := r.world.PhoneFile(name)
		return len(b), ok
	})
	rep, err = r.storm(runCeiling, netip.MustParseAddrPort("127.0.0.1:9"), ceiling.Get)
	ceiling.Close()
	if err != nil {
		return p, err
	}
	rep.Server = "two loopback sockets"
	add(rep)
	p.CeilingRoundTrips = ratio(float64(ceiling.RoundTrips()), float64(rep.Phones))

	p.Ratios = map[string]float64{}
	byLabel := map[string]float64{}
	for _, rep := range p.Runs {
		byLabel[rep.Label] = rep.PhonesPerSecond
	}
	for _, q := range sbsRatios() {
		p.Ratios[q[0]] = ratio(byLabel[q[1]], byLabel[q[2]])
	}
	return p, nil
}

// acrossLink returns where to reach server: through a delay link of
// --backend-delay (the emulated WAN) when one is asked for, else server
// itself. unlink closes the link.
func (r *sbsRunner) acrossLink(server netip.AddrPort) (addr netip.AddrPort, unlink func(), err error) {
	if r.f.backendDelay <= 0 {
		return server, func() {}, nil
	}
	link, err := loadgen.StartDelayLink(server, r.f.backendDelay, 0)
	if err != nil {
		return server, nil, err
	}
	return link.Addr(), func() {
		// Datagrams still crossing (a phone's final ACK, sent as its
		// storm ended) are delivered first: dropped, they would leave
		// the server retransmitting until it gives up.
		time.Sleep(2*r.f.backendDelay + 20*time.Millisecond)
		link.Close()
	}, nil
}

// startBackends starts one TFTP server per sub-cluster (--backends),
// each behind a delay link when --backend-delay asks for a WAN.
func (r *sbsRunner) startBackends() (addrs []string, stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	for _, sc := range r.world.Subclusters() {
		var addr netip.AddrPort
		if r.f.backends == "ctftp" {
			// This program's own engine, as `ctftp demo` runs its
			// sub-clusters: a backend with RFC 7440 windowsize.
			srv, err := proxy.ServeDir(filepath.Join(r.dir, sc), proxy.DirOptions{})
			if err != nil {
				stop()
				return nil, nil, fmt.Errorf("backend: %w", err)
			}
			stops = append(stops, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Close(ctx)
			})
			addr = srv.Addr()
		} else {
			d, err := tftpd.Start(r.ctx, filepath.Join(r.dir, sc))
			if err != nil {
				stop()
				return nil, nil, err
			}
			stops = append(stops, d.Stop)
			addr = d.Addr()
		}
		addr, unlink, err := r.acrossLink(addr)
		if err != nil {
			stop()
			return nil, nil, err
		}
		stops = append(stops, unlink)
		addrs = append(addrs, addr.String())
	}
	return addrs, stop, nil
}

// heapLive is the live heap after a full collection.
func heapLive() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// procSample is this process's footprint at one moment.
type procSample struct {
	rss, heapInuse, stackInuse uint64
	goroutines, fds            int
}

func sampleProcess() procSample {
	// Collect and hand free pages back first, so RSS is what is live
	// (plus the runtime's own), not garbage of the storm before.
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := procSample{heapInuse: ms.HeapInuse, stackInuse: ms.StackInuse, goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			s.rss = pages * uint64(os.Getpagesize())
		}
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.fds = len(ents)
	}
	return s
}

// holdInFlight has a child process (this program's `bench --hold`) open
// --in-flight transfers of a cached file on the warm gateway and leave
// them unacknowledged, and measures what this process grew by meanwhile.
// The holder is another process so that its own sockets are not counted.
func (r *sbsRunner) holdInFlight(gw *benchGateway) *inFlightMemory {
	const file = "CTLFile.tlv"
	m := &inFlightMemory{File: file}
	fail := func(err error) *inFlightMemory {
		m.Error = err.Error()
		fmt.Fprintf(r.stderr, "ctftp bench: memory in flight: %v\n", err)
		return m
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	before := sampleProcess()
	baseActive, baseIdle := gw.series("ctftp_active_transfers"), gw.series("ctftp_transfer_sockets_idle")
	var childOut bytes.Buffer
	cmd := exec.Command(exe, "bench", "--server", gw.addr.String(), "--hold", strconv.Itoa(r.f.inFlight),
		"--file", file, "--hold-for", "10m", "--quiet")
	cmd.Stdout, cmd.Stderr = &childOut, &childOut
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	want := baseActive + float64(r.f.inFlight)
	for deadline := time.Now().Add(2 * time.Minute); gw.series("ctftp_active_transfers") < want; {
		select {
		case err := <-exited:
			exited <- err
			return fail(fmt.Errorf("holder exited (%v): %s", err, strings.TrimSpace(childOut.String())))
		case <-r.ctx.Done():
			return fail(r.ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("only %.0f of %d transfers open after 2 minutes", gw.series("ctftp_active_transfers")-baseActive, r.f.inFlight))
		}
	}
	during := sampleProcess()
	// Sockets idle before (kept for reuse) that held transfers took are
	// theirs too.
	reused := baseIdle - gw.series("ctftp_transfer_sockets_idle")
	n := float64(r.f.inFlight)
	m.Transfers = r.f.inFlight
	m.RSSPerTransfer = (float64(during.rss) - float64(before.rss)) / n
	m.HeapPerTransfer = (float64(during.heapInuse) - float64(before.heapInuse)) / n
	m.StackPerTransfer = (float64(during.stackInuse) - float64(before.stackInuse)) / n
	m.GoroutinesPerTransfer = float64(during.goroutines-before.goroutines) / n
	m.FDsPerTransfer = (float64(during.fds-before.fds) + reused) / n
	return m
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func writeSideBySide(w io.Writer, s sideBySide) {
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
		for j, q := range sbsRatios() {
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
			b    backendFetches
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
		for j, q := range sbsRatios() {
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
		rows := []*loadgen.Report{s.Passes[0].run(runCold)}
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
	case runDirect:
		return "tftpd-hpa"
	case runPin:
		return "pin"
	case runCold:
		return "cold"
	case runRules:
		return "cold-rules"
	case runWarm:
		return "warm"
	case runCeiling:
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

// pinServer is a plain pin/tftp server serving files from memory: what
// a Go TFTP server does with no gateway behind it.
type pinServer struct {
	srv  *tftp.Server
	addr netip.AddrPort
	done chan struct{}
}

func startPinServer(files map[string][]byte) (*pinServer, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("pin/tftp server: %w", err)
	}
	srv := tftp.NewServer(func(name string, rf io.ReaderFrom) error {
		b, ok := files[name]
		if !ok {
			return os.ErrNotExist
		}
		if ot, ok := rf.(tftp.OutgoingTransfer); ok {
			ot.SetSize(int64(len(b)))
		}
		_, err := rf.ReadFrom(bytes.NewReader(b))
		return err
	}, nil)
	// Honour the phones' blksize on loopback, as the gateway does; time
	// out as the gateway does (1 s), not after pin/tftp's default 5 s,
	// so a transfer whose final ACK went astray does not hold stop for
	// half a minute.
	srv.SetBlockSizeNegotiation(false)
	srv.SetTimeout(time.Second)
	srv.SetRetries(5)
	p := &pinServer{srv: srv, addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), done: make(chan struct{})}
	go loadgen.ServerLabels(context.Background(), func(context.Context) {
		defer close(p.done)
		srv.Serve(conn)
	})
	return p, nil
}

func (p *pinServer) stop() {
	p.srv.Shutdown()
	<-p.done
}

// benchGateway is an in-process gateway of a side-by-side run.
type benchGateway struct {
	gw      *proxy.Gateway
	set     *metrics.Set
	addr    netip.AddrPort
	cancel  context.CancelFunc
	stopped chan error
	done    bool
}

// startBenchGateway runs the gateway as `ctftp serve` would, with TTLs
// long enough that the warm run stays warm (per-device files and the
// negative TTL too: the CTLSEP misses are most of the cold run's backend
// traffic). With the default cache.ttl.device of seconds a phone's own
// files are fetched again at each boot; the warm run measures the path
// that serves cached files, which is also how prefetched ones are
// served. With rules,
// each sub-cluster's device list (the fleet's devices/<name>.txt) routes
// its phones, as a deployment with device lists does; without, unknown
// phones are found by fan-out.
func startBenchGateway(ctx context.Context, f benchFlags, dir string, world *fleet.World, backends []string, rules bool, blksize, window int, stderr io.Writer) (*benchGateway, error) {
	tcfg := proxy.DefaultConfig()
	tcfg.Listen = []string{"127.0.0.1:0"}
	tcfg.ShutdownGrace = 2 * time.Second
	// Phones of a storm each have an address of their own, but the
	// memory hold opens --in-flight transfers from one: per-client
	// limits (abuse resistance, not under test here) are off.
	tcfg.ClientRate, tcfg.MaxTransfersPerClient = 0, 0
	cc := cluster.DefaultConfig()
	cc.Backend.BlockSize = blksize
	cc.Backend.WindowSize = window
	cc.Backend.MaxInFlight = f.backendInFlight
	for i, sc := range world.Subclusters() {
		cc.Subclusters = append(cc.Subclusters, cluster.SubclusterConfig{Name: sc, Version: "14", Backends: []string{backends[i]}})
	}
	kc := cache.DefaultConfig()
	// Every class an hour, per-device files included (their default
	// burst window is seconds): warm means every file in the cache.
	kc.TTL = cache.TTLConfig{Device: time.Hour, Trust: time.Hour, Config: time.Hour, Firmware: time.Hour, Other: time.Hour}
	kc.NegativeTTL = time.Hour
	rc := routing.DefaultConfig()
	if rules {
		for _, sc := range world.Subclusters() {
			rc.Rules = append(rc.Rules, routing.Rule{Subcluster: sc, DeviceFile: fleet.DeviceFile(dir, sc)})
		}
	}
	gc := proxy.GatewayConfig{
		TFTP: tcfg, Root: filepath.Join(dir, fleet.Root), Cluster: cc, Routing: rc, Cache: kc, Version: versionString(),
	}
	set := metrics.NewSet()
	// Warnings to stderr; and every transfer's Info line formatted, as
	// `ctftp serve` logs them, then dropped: its cost is part of a
	// transfer's.
	logger := slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}),
		slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})))
	gw, err := proxy.NewGateway(gc, logger, set)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	// Under the server's profiler label, which its goroutines inherit
	// (--cpu-split).
	loadgen.ServerLabels(ctx, func(ctx context.Context) { err = gw.Start(ctx) })
	if err != nil {
		cancel()
		return nil, err
	}
	b := &benchGateway{gw: gw, set: set, addr: gw.TFTPAddrs()[0], cancel: cancel, stopped: make(chan error, 1)}
	go loadgen.ServerLabels(ctx, func(ctx context.Context) { b.stopped <- gw.Run(ctx) })
	return b, nil
}

// stop ends the gateway and waits for it; it may be called again.
func (b *benchGateway) stop() {
	if b.done {
		return
	}
	b.done = true
	b.cancel()
	<-b.stopped
}

// settle waits (up to 10 s) until no backend fetch is running or
// waiting: a fan-out's losing fetch may outlive the phone's transfer,
// and counts read before it ends would not add up.
func (b *benchGateway) settle(ctx context.Context) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		if b.series("ctftp_backend_in_flight")+b.series("ctftp_backend_waiting") == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (b *benchGateway) settled(ctx context.Context) *benchGateway {
	b.settle(ctx)
	return b
}

// series sums a metric of the gateway over its labels.
func (b *benchGateway) series(name string) float64 {
	var buf bytes.Buffer
	b.set.WritePrometheus(&buf)
	return sumSeries(buf.String(), name)
}

// backendFetches sums ctftp_backend_fetches_total over its labels.
func (b *benchGateway) backendFetches() int64 {
	return int64(b.series("ctftp_backend_fetches_total"))
}

// fetches reports the backend fetches so far against the distinct
// answers the cache holds.
func (b *benchGateway) fetches() backendFetches {
	st := b.gw.Cache().Stats()
	out := backendFetches{
		ColdFetches:   b.backendFetches(),
		DistinctFiles: int64(st.Entries + st.NegEntries + st.TooBigEntries),
		FillShared:    st.FillShared,
	}
	out.PerFile = ratio(float64(out.ColdFetches), float64(out.DistinctFiles))
	return out
}
