package sidebyside

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/ctftp/ctftp/internal/fleet"
	"github.com/ctftp/ctftp/internal/loadgen"
	"github.com/ctftp/ctftp/internal/tftpd"
	"github.com/ctftp/ctftp/proxy"
)

// Run generates the fleet (internal/fleet) for the phones of two
// sub-clusters and runs the same storm, o.Passes times, against: (1)
// tftpd-hpa serving every file itself, (2) a plain pin/tftp server doing
// the same in this process, (3) the gateway in front of one backend per
// sub-cluster with an empty cache, finding phones by fan-out, (4) that
// gateway again, warm, (5) a fresh gateway whose routing rules name each
// sub-cluster's device list, cold, and (6) the loopback lock-step ceiling
// (loadgen.Ceiling: the same round trips, no server). Phones that failed
// are in the Result (Failed), not an error.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	dir := o.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "ctftp-bench-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	}
	o.note("generating PKI and signing files for %d phones in %s ...", len(o.MACs), dir)
	world, err := fleet.Generate(ctx, fleet.Options{Phones: fleet.Spread(o.MACs, fleet.DefaultSubclusters())})
	if err == nil {
		err = world.Write(dir)
	}
	if err != nil {
		return nil, err
	}
	r := &runner{f: o, ctx: ctx, dir: dir, world: world, macs: o.MACs}
	out := &Result{
		Phones: len(o.MACs), Concurrency: o.Storm.Concurrency, PhoneBlksize: o.Storm.BlockSize, CPUs: runtime.NumCPU(),
		BackendBlksize: o.BackendBlksizes[0], BackendWindow: o.BackendWindows[0], BackendInFlight: o.BackendInFlight,
		BackendDelay: o.BackendDelay, Backends: o.Backends,
	}
	if o.Settle > 0 {
		out.Settle = Settle(ctx, o.Settle, o.note)
		o.note("load average %s", out.Settle)
	}
	out.LoadStart = ReadLoadAvg()
	o.note("load average at start: %s", out.LoadStart)
	for pass := range o.Passes {
		load := ReadLoadAvg()
		p, err := r.pass(pass, &out.Memory)
		if err != nil {
			return nil, err
		}
		p.Load = load
		out.Passes = append(out.Passes, p)
		if pass == 0 {
			if out.Sweep, err = r.sweep(p); err != nil {
				return nil, err
			}
			out.Best = bestCold(p, out.Sweep, o)
		}
	}
	out.LoadEnd = ReadLoadAvg()
	out.MedianRatios = MedianRatios(out.Passes)
	return out, nil
}

// Failed reports whether any phone of any run failed.
func (s *Result) Failed() bool {
	for _, p := range s.Passes {
		for _, rep := range p.Runs {
			if rep.Failed > 0 {
				return true
			}
		}
	}
	for _, row := range s.Sweep {
		if row.Run.Failed > 0 {
			return true
		}
	}
	return false
}

// sweep runs the cold fan-out once for every other combination of
// backend block size and window size.
func (r *runner) sweep(p Pass) ([]SweepRow, error) {
	var rows []SweepRow
	if len(r.f.BackendBlksizes) == 1 && len(r.f.BackendWindows) == 1 {
		return nil, nil
	}
	backends, stop, err := r.startBackends()
	if err != nil {
		return nil, err
	}
	defer stop()
	for i, b := range r.f.BackendBlksizes {
		for j, w := range r.f.BackendWindows {
			if i == 0 && j == 0 {
				continue // the pass's own cold fan-out
			}
			gw, err := startBenchGateway(r.ctx, r.f, r.dir, r.world, backends, false, b, w)
			if err != nil {
				return nil, fmt.Errorf("gateway: %w", err)
			}
			rep, err := r.storm(fmt.Sprintf("%s, blksize %d, window %d", RunCold, b, w), gw.addr, nil)
			gw.stop()
			if err != nil {
				return nil, err
			}
			rows = append(rows, SweepRow{Blksize: b, Window: w, Run: rep, OverDirect: ratio(rep.PhonesPerSecond, p.Report(RunDirect).PhonesPerSecond)})
		}
	}
	return rows, nil
}

// bestCold is the fastest cold fan-out of the first pass and the sweep.
func bestCold(p Pass, sweep []SweepRow, f Options) *SweepRow {
	main := p.Report(RunCold)
	best := &SweepRow{Blksize: f.BackendBlksizes[0], Window: f.BackendWindows[0], Run: main, OverDirect: p.Ratios["cold_over_direct"]}
	for i := range sweep {
		if sweep[i].Run.PhonesPerSecond > best.Run.PhonesPerSecond {
			best = &sweep[i]
		}
	}
	return best
}

// Report returns the pass's run of that label (an empty one when the
// pass has none).
func (p Pass) Report(label string) *loadgen.Report {
	for _, r := range p.Runs {
		if r.Label == label {
			return r
		}
	}
	return &loadgen.Report{Label: label}
}

// runner holds what every pass of a side-by-side shares.
type runner struct {
	f     Options
	ctx   context.Context
	dir   string
	world *fleet.World
	macs  []string
	// lastProfile is the CPU profile of the last storm (--cpu-split).
	lastProfile []byte
}

func (r *runner) storm(label string, addr netip.AddrPort, get loadgen.GetFunc) (*loadgen.Report, error) {
	o := loadgen.Options{Label: label, MACs: r.macs, Progress: r.f.Progress, Terminal: r.f.Terminal, Get: get}
	if get == nil {
		o.Check = r.world.Check
	}
	var rep *loadgen.Report
	run := func() (err error) {
		rep, err = loadgen.Run(r.ctx, r.f.Storm, addr, o)
		return err
	}
	if !r.f.CPUSplit {
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
func (r *runner) pass(n int, mem *Memory) (Pass, error) {
	var p Pass
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
	rep, err := r.storm(RunDirect, addr, nil)
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
	rep, err = r.storm(RunPin, addr, nil)
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
	gw, err := startBenchGateway(r.ctx, r.f, r.dir, r.world, backends, false, r.f.BackendBlksizes[0], r.f.BackendWindows[0])
	if err != nil {
		return p, fmt.Errorf("gateway: %w", err)
	}
	defer gw.stop()
	before := heapLive()
	rep, err = r.storm(RunCold, gw.addr, nil)
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
	if r.f.CPUProfile != "" && n == 0 && r.f.CPUSplit {
		// Every run is profiled already: the warm run's profile is kept.
		stopProfile = func() {
			if werr := os.WriteFile(r.f.CPUProfile, r.lastProfile, 0o644); werr != nil && err == nil {
				err = fmt.Errorf("cpuprofile: %w", werr)
			}
		}
	} else if r.f.CPUProfile != "" && n == 0 {
		if stopProfile, err = loadgen.StartCPUProfile(r.f.CPUProfile); err != nil {
			return p, err
		}
	}
	rep, err = r.storm(RunWarm, gw.addr, nil)
	stopProfile()
	if err != nil {
		return p, err
	}
	add(rep)
	p.Fanout.WarmFetches = gw.settled(r.ctx).backendFetches() - coldFetches
	if n == 0 && r.f.InFlight > 0 {
		mem.InFlight = r.holdInFlight(gw)
	}
	gw.stop()

	// (5) a fresh gateway that knows every phone's sub-cluster.
	gwRules, err := startBenchGateway(r.ctx, r.f, r.dir, r.world, backends, true, r.f.BackendBlksizes[0], r.f.BackendWindows[0])
	if err != nil {
		return p, fmt.Errorf("gateway with device rules: %w", err)
	}
	defer gwRules.stop()
	rep, err = r.storm(RunRules, gwRules.addr, nil)
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
	rep, err = r.storm(RunCeiling, netip.MustParseAddrPort("127.0.0.1:9"), ceiling.Get)
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
	for _, q := range Ratios() {
		p.Ratios[q[0]] = ratio(byLabel[q[1]], byLabel[q[2]])
	}
	return p, nil
}

// acrossLink returns where to reach server: through a delay link of
// --backend-delay (the emulated WAN) when one is asked for, else server
// itself. unlink closes the link.
func (r *runner) acrossLink(server netip.AddrPort) (addr netip.AddrPort, unlink func(), err error) {
	if r.f.BackendDelay <= 0 {
		return server, func() {}, nil
	}
	link, err := loadgen.StartDelayLink(server, r.f.BackendDelay, 0)
	if err != nil {
		return server, nil, err
	}
	return link.Addr(), func() {
		// Datagrams still crossing (a phone's final ACK, sent as its
		// storm ended) are delivered first: dropped, they would leave
		// the server retransmitting until it gives up.
		time.Sleep(2*r.f.BackendDelay + 20*time.Millisecond)
		link.Close()
	}, nil
}

// startBackends starts one TFTP server per sub-cluster (--backends),
// each behind a delay link when --backend-delay asks for a WAN.
func (r *runner) startBackends() (addrs []string, stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	for _, sc := range r.world.Subclusters() {
		var addr netip.AddrPort
		if r.f.Backends == "ctftp" {
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
