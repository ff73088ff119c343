package tests

// Cold boots across a WAN (issue 14): the phones are local to the
// gateway, the clusters' TFTP servers are 20 ms away (loadgen.DelayLink,
// 10 ms each way, in front of every backend). A storm of phones that
// nothing has cached yet boots, either straight from the remote TFTP
// server (what the phones did before the gateway) or through the
// gateway, against two kinds of backend:
//
//   - tftpd-hpa, which forks per transfer and never queues (the gateway
//     then allows itself backend.max_in_flight 50);
//   - a CUCM-like node: five transfers at a time, the rest queued without
//     an answer (CUCM's TFTP since 11.5), no RFC 7440, with the gateway's
//     defaults;
//   - ctftp's own engine with no cap and RFC 7440 windowsize, to measure
//     what backend.window_size buys where a backend has it.
//
// Two loads: a lone phone (10 phones one after another: what one cold
// boot costs, boot p50) and the storm (200 phones, 50 at a time). The
// benchmark reports, per configuration, phones/s, per-file p50/p99, boot
// p50/p99, errors, backend fetches and what prefetch did; nothing is
// asserted about time. One run per configuration, a fresh gateway each:
//
//	go test -run '^$' -bench WANColdBoot -benchtime 1x ./tests/
//	go test -run '^$' -bench 'WANColdBoot/tftpd/lone' -benchtime 1x ./tests/   # one phone at a time

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/cache"
	"github.com/ctftp/ctftp/internal/fleet"
	"github.com/ctftp/ctftp/internal/loadgen"
	"github.com/ctftp/ctftp/internal/tftptest"
	"github.com/ctftp/ctftp/proxy"
)

// WAN storm parameters: the RTT of the issue, its storm size and
// concurrency, and phones as the public captures show them (512-byte
// lock-step, 1 s retransmission timer, 5 retries: about 6 s of patience
// per file).
const (
	wanDelay       = 10 * time.Millisecond // each way: 20 ms RTT
	wanPhones      = 200
	wanConcurrency = 50
	wanLonePhones  = 10
)

// cucmNodeSlots is how many transfers a CUCM TFTP node serves at once.
const cucmNodeSlots = 5

// slotSource serves next's files at most n at a time, from Open until
// the Body is closed; other requests wait in Open, unanswered, as CUCM's
// TFTP service queues them. A phone's retransmitted request finds its
// transfer already waiting (the engine ignores it).
type slotSource struct {
	next  ctftp.Source
	slots chan struct{}
}

func (s *slotSource) Open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("cucm-like node: queued: %w", ctx.Err())
	}
	f, err := s.next.Open(ctx, req)
	if err != nil {
		<-s.slots
		return nil, err
	}
	f.Body = &slotBody{ReadCloser: f.Body, release: func() { <-s.slots }}
	return f, nil
}

// slotBody gives its slot back once, on Close. It keeps the Seeker the
// engine needs for tsize.
type slotBody struct {
	io.ReadCloser
	release func()
	once    sync.Once
}

func (b *slotBody) Seek(off int64, whence int) (int64, error) {
	return b.ReadCloser.(io.Seeker).Seek(off, whence)
}

func (b *slotBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// startEngineNode serves dir on a loopback port with ctftp's own TFTP
// engine (a real server over real sockets). slots > 0 makes it a
// CUCM-like node: that many transfers at a time, the rest queued, and no
// RFC 7440 windowsize (CUCM documents none). slots 0: no cap, windowsize
// up to 16, a backend that has RFC 7440.
func startEngineNode(tb testing.TB, dir string, slots int) netip.AddrPort {
	tb.Helper()
	o := proxy.DirOptions{Logger: slog.New(slog.DiscardHandler), Metrics: metrics.NewSet()}
	if slots > 0 {
		o.Tune = func(c *proxy.Config) { c.MaxWindowSize = 1 }
		o.Wrap = func(local ctftp.Source) ctftp.Source {
			return &slotSource{next: local, slots: make(chan struct{}, slots)}
		}
	}
	return serveDir(tb, dir, o)
}

// serveDir serves dir with ctftp's own engine (proxy.ServeDir) until the
// test ends.
func serveDir(tb testing.TB, dir string, o proxy.DirOptions) netip.AddrPort {
	tb.Helper()
	srv, err := proxy.ServeDir(dir, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			tb.Error(err)
		}
	})
	return srv.Addr()
}

// wanBackend starts the server for one tree of the world (a sub-cluster
// or the direct tree) and a DelayLink in front of it, returning the
// link's address.
func wanBackend(tb testing.TB, kind, dir string) netip.AddrPort {
	tb.Helper()
	var addr netip.AddrPort
	switch kind {
	case "cucm":
		addr = startEngineNode(tb, dir, cucmNodeSlots)
	case "rfc7440":
		addr = startEngineNode(tb, dir, 0)
	default:
		addr = netip.MustParseAddrPort(tftptest.StartTFTPD(tb, dir))
	}
	return startLink(tb, addr, wanDelay).Addr()
}

// wanGateway is the gateway's config for one run.
type wanGateway struct {
	blksize     int
	window      int // backend.window_size
	maxInFlight int
	rules       bool // device_file rules place every phone; else fan-out
	prefetch    bool
	// outage: the same phones booted once before, then the site lost
	// power for longer than cache.ttl.device: the gateway knows their
	// routes (learned) and the shared files, not their own files.
	outage bool
}

func (g wanGateway) config(dir string, links map[string]netip.AddrPort) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: [\"127.0.0.1:0\"]\nadmin_listen: \"127.0.0.1:0\"\nroot: %q\nsubclusters:\n", filepath.Join(dir, fleet.Root))
	for _, sc := range fleet.DefaultSubclusters() {
		fmt.Fprintf(&b, "  - {name: %s, version: \"14\", backends: [%q]}\n", sc, links[sc])
	}
	fmt.Fprintf(&b, "backend: {block_size: %d, window_size: %d, max_in_flight: %d, probe_interval: 0s, timeout: 2s}\n", g.blksize, g.window, g.maxInFlight)
	b.WriteString("routing:\n")
	if !g.prefetch {
		b.WriteString("  prefetch: []\n")
	}
	if g.rules {
		b.WriteString("  rules:\n")
		for _, sc := range fleet.DefaultSubclusters() {
			fmt.Fprintf(&b, "    - {device_file: %q, subcluster: %s}\n", fleet.DeviceFile(dir, sc), sc)
		}
	}
	return b.String()
}

func (g wanGateway) name() string {
	route := "fanout"
	switch {
	case g.rules:
		route = "rules"
	case g.outage:
		route = "learned-after-outage"
	}
	pre := "prefetch"
	if !g.prefetch {
		pre = "noprefetch"
	}
	return fmt.Sprintf("gateway/%s/%s/blksize=%d/window=%d/inflight=%d", route, pre, g.blksize, g.window, g.maxInFlight)
}

func BenchmarkWANColdBoot(b *testing.B) {
	macs, err := loadgen.MACs("00EE14", 0, wanPhones)
	if err != nil {
		b.Fatal(err)
	}
	w, err := fleet.Generate(context.Background(), fleet.Options{Phones: fleet.Spread(macs, fleet.DefaultSubclusters()), KeyBits: 1024})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := w.Write(dir); err != nil {
		b.Fatal(err)
	}
	// A lone phone (one at a time: what one phone's cold boot costs)
	// and the storm.
	loads := []struct {
		name        string
		phones      int
		concurrency int
	}{
		{"lone", wanLonePhones, 1},
		{"storm", wanPhones, wanConcurrency},
	}
	for _, kind := range []string{"tftpd", "cucm", "rfc7440"} {
		for _, load := range loads {
			b.Run(kind+"/"+load.name, func(b *testing.B) {
				cfg := loadgen.DefaultConfig()
				cfg.Concurrency = load.concurrency
				cfg.BootTimeout = 5 * time.Minute
				macs := w.MACs()[:load.phones]
				wanRuns(b, kind+"/"+load.name, kind, dir, cfg, macs, w)
			})
		}
	}
}

// wanRuns runs the storm cfg of macs straight against the remote server
// and through each gateway configuration.
func wanRuns(b *testing.B, label, kind, dir string, cfg loadgen.Config, macs []string, w *fleet.World) {
	// start returns where the phones ask, the gateway (nil when direct)
	// and its series before the measured storm.
	run := func(b *testing.B, name string, start func(b *testing.B) (netip.AddrPort, *gateway, wanBase)) {
		b.Run(name, func(b *testing.B) {
			var rep *loadgen.Report
			var gw *gateway
			var base wanBase
			for b.Loop() {
				var addr netip.AddrPort
				addr, gw, base = start(b)
				var err error
				rep, err = loadgen.Run(context.Background(), cfg, addr, loadgen.Options{Label: name, MACs: macs, Check: w.Check})
				if err != nil {
					b.Fatal(err)
				}
			}
			wanReport(b, label+"/"+name, rep, gw, base)
		})
	}
	run(b, "direct", func(b *testing.B) (netip.AddrPort, *gateway, wanBase) {
		return wanBackend(b, kind, filepath.Join(dir, fleet.Direct)), nil, wanBase{}
	})
	var gws []wanGateway
	switch kind {
	case "cucm":
		// The gateway's defaults: max_in_flight 5 is CUCM's.
		gws = []wanGateway{
			{blksize: 1428, window: 8, maxInFlight: 5, rules: true, prefetch: true},
			{blksize: 1428, window: 8, maxInFlight: 5, rules: true, prefetch: false},
			{blksize: 1428, window: 8, maxInFlight: 5, rules: false, prefetch: true},
			{blksize: 1428, window: 8, maxInFlight: 5, prefetch: true, outage: true},
		}
	case "rfc7440":
		// What windowsize buys where the backend has it, beside what a
		// larger block buys.
		gws = []wanGateway{
			{blksize: 1428, window: 1, maxInFlight: 50, rules: true, prefetch: true},
			{blksize: 1428, window: 8, maxInFlight: 50, rules: true, prefetch: true},
			{blksize: 1428, window: 8, maxInFlight: 50, rules: false, prefetch: true},
			{blksize: 1428, window: 8, maxInFlight: 50, prefetch: true, outage: true},
			{blksize: 8192, window: 1, maxInFlight: 50, rules: true, prefetch: true},
		}
	default:
		// tftpd-hpa ignores windowsize: the block size is what counts.
		gws = []wanGateway{
			{blksize: 1428, window: 8, maxInFlight: 50, rules: true, prefetch: true},
			{blksize: 1428, window: 8, maxInFlight: 50, rules: true, prefetch: false},
			{blksize: 1428, window: 8, maxInFlight: 50, rules: false, prefetch: true},
			{blksize: 1428, window: 8, maxInFlight: 50, prefetch: true, outage: true},
			{blksize: 1428, window: 8, maxInFlight: 5, rules: true, prefetch: true}, // the defaults
			{blksize: 512, window: 8, maxInFlight: 50, rules: true, prefetch: true},
			{blksize: 8192, window: 8, maxInFlight: 50, rules: true, prefetch: true},
			{blksize: 65464, window: 8, maxInFlight: 50, rules: true, prefetch: true},
		}
	}
	for _, g := range gws {
		run(b, g.name(), func(b *testing.B) (netip.AddrPort, *gateway, wanBase) {
			links := map[string]netip.AddrPort{}
			for _, sc := range fleet.DefaultSubclusters() {
				links[sc] = wanBackend(b, kind, filepath.Join(dir, sc))
			}
			gw := startGateway(b, g.config(dir, links), "CTFTP_LOG_LEVEL=info") // "listening" is an info line
			addr := netip.MustParseAddrPort(gw.TFTP[0])
			if g.outage {
				b.StopTimer()
				if _, err := loadgen.Run(context.Background(), cfg, addr, loadgen.Options{Label: "before the outage", MACs: macs, Check: w.Check}); err != nil {
					b.Fatal(err)
				}
				time.Sleep(cache.DefaultConfig().TTL.Device + time.Second)
				b.StartTimer()
			}
			return addr, gw, wanSnapshot(gw)
		})
	}
}

// wanBase is a gateway's /metrics before the measured storm: summed over
// labels (perfParse) and per series.
type wanBase struct {
	sum, series map[string]float64
}

func wanSnapshot(gw *gateway) wanBase {
	text := gw.adminGet("/metrics")
	return wanBase{sum: perfParse(text), series: parseExposition(text)}
}

// wanReport logs one run and reports its numbers as benchmark metrics.
func wanReport(b *testing.B, name string, rep *loadgen.Report, gw *gateway, base wanBase) {
	b.Helper()
	load, _ := os.ReadFile("/proc/loadavg")
	line := fmt.Sprintf("%-52s %7.1f phones/s  file p50 %6.1f ms  p99 %7.1f ms  booted %d/%d  errors %d",
		name, rep.PhonesPerSecond, ms(rep.Transfer.P50), ms(rep.Transfer.P99), rep.Booted, rep.Phones, rep.ErrorCount())
	b.ReportMetric(rep.PhonesPerSecond, "phones/s")
	b.ReportMetric(ms(rep.Transfer.P50), "file-p50-ms")
	b.ReportMetric(ms(rep.Transfer.P99), "file-p99-ms")
	b.ReportMetric(float64(rep.ErrorCount()), "errors")
	if gw != nil {
		m := perfWaitSeries(b, gw, 30*time.Second, "backend fetches to end", func(m map[string]float64) bool {
			return m["ctftp_backend_in_flight"] == 0 && m["ctftp_active_transfers"] == 0
		})
		d := func(series string) float64 { return m[series] - base.sum[series] }
		busy := `ctftp_cache_prefetch_skipped_total{reason="busy"}`
		line += fmt.Sprintf("  fetches %v  prefetch issued %v used %v wasted %v busy %v",
			d("ctftp_backend_fetches_total"), d("ctftp_cache_prefetch_issued_total"), d("ctftp_cache_prefetch_used_total"),
			d("ctftp_cache_prefetch_wasted_total"), gw.scrape()[busy]-base.series[busy])
		b.ReportMetric(d("ctftp_backend_fetches_total"), "fetches")
	}
	line += fmt.Sprintf("  boot p50 %.0f ms p99 %.0f ms max %.0f ms", ms(rep.Boot.P50), ms(rep.Boot.P99), ms(rep.Boot.Max))
	if rep.ErrorCount() > 0 {
		line += "  (" + rep.ErrorSummary() + ")\n" + strings.Join(rep.Examples, "\n")
		if gw != nil {
			// Why the gateway failed them, in its own words.
			n := 0
			for _, l := range gw.Lines("transfer") {
				if l["result"] == "error" && n < 3 {
					line += fmt.Sprintf("\n  gateway: %v: %v", l["file"], l["err"])
					n++
				}
			}
		}
	}
	b.Logf("%s  [loadavg %s]", line, strings.TrimSpace(string(load)))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
