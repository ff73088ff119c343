package sidebyside

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/pin/tftp/v3"

	"github.com/ctftp/ctftp/cache"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/internal/fleet"
	"github.com/ctftp/ctftp/internal/loadgen"
	"github.com/ctftp/ctftp/proxy"
	"github.com/ctftp/ctftp/routing"
)

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
func startBenchGateway(ctx context.Context, f Options, dir string, world *fleet.World, backends []string, rules bool, blksize, window int) (*benchGateway, error) {
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
	cc.Backend.MaxInFlight = f.BackendInFlight
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
		TFTP: tcfg, Root: filepath.Join(dir, fleet.Root), Cluster: cc, Routing: rc, Cache: kc, Version: f.Version,
	}
	set := metrics.NewSet()
	// Warnings to Options.Warnings; and every transfer's Info line formatted, as
	// `ctftp serve` logs them, then dropped: its cost is part of a
	// transfer's.
	logger := slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(f.warnings(), &slog.HandlerOptions{Level: slog.LevelWarn}),
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
	return loadgen.SumSeries(buf.String(), name)
}

// backendFetches sums ctftp_backend_fetches_total over its labels.
func (b *benchGateway) backendFetches() int64 {
	return int64(b.series("ctftp_backend_fetches_total"))
}

// fetches reports the backend fetches so far against the distinct
// answers the cache holds.
func (b *benchGateway) fetches() BackendFetches {
	st := b.gw.Cache().Stats()
	out := BackendFetches{
		ColdFetches:   b.backendFetches(),
		DistinctFiles: int64(st.Entries + st.NegEntries + st.TooBigEntries),
		FillShared:    st.FillShared,
	}
	out.PerFile = ratio(float64(out.ColdFetches), float64(out.DistinctFiles))
	return out
}
