package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/cache"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/internal/tftptest"
	"github.com/ctftp/ctftp/routing"
	"github.com/ctftp/ctftp/trust"
)

// gatewayRoot is a root directory holding itlBytes as ITLFile.tlv (none
// when nil).
func gatewayRoot(t *testing.T, itlBytes []byte) string {
	t.Helper()
	root := t.TempDir()
	if itlBytes != nil {
		if err := os.WriteFile(filepath.Join(root, trust.ITLFileName), itlBytes, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// sub is a sub-cluster of one backend, probed ("auto").
func sub(name string, srv *tftptest.Server) cluster.SubclusterConfig {
	return cluster.SubclusterConfig{Name: name, Version: trust.VersionAuto, Backends: []string{srv.Addr()}}
}

// testGatewayConfig is fast to fail and probes only at start and reload.
func testGatewayConfig(root string, subs ...cluster.SubclusterConfig) GatewayConfig {
	cc := cluster.DefaultConfig()
	cc.Backend.Timeout = 500 * time.Millisecond
	cc.Backend.Retries = 1
	cc.Backend.ProbeInterval = 0
	cc.Subclusters = subs
	trust := trust.DefaultConfig()
	trust.ProbeInterval = 0
	return GatewayConfig{TFTP: testConfig(), Root: root, Cluster: cc, Routing: routing.DefaultConfig(), Cache: cache.DefaultConfig(), Trust: trust}
}

type testGateway struct {
	*Gateway
	set  *metrics.Set
	logs *logSink
}

// startGateway starts cfg and runs it until the test ends.
func startGateway(t *testing.T, cfg GatewayConfig) *testGateway {
	t.Helper()
	tg, err := tryGateway(t, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tg.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return tg
}

func tryGateway(t *testing.T, cfg GatewayConfig) (*testGateway, error) {
	t.Helper()
	sink := &logSink{}
	set := metrics.NewSet()
	g, err := NewGateway(cfg, slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug})), set)
	if err != nil {
		t.Fatal(err)
	}
	return &testGateway{Gateway: g, set: set, logs: sink}, g.Start(context.Background())
}

func (tg *testGateway) get(t *testing.T, name string) (*ctftp.File, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := tg.Source().Open(ctx, ctftp.Request{Name: name, Mode: "octet"})
	if err != nil {
		return nil, nil, err
	}
	defer f.Body.Close()
	b, err := io.ReadAll(f.Body)
	if err != nil {
		t.Fatal(err)
	}
	return f, b, nil
}

func (tg *testGateway) metric(t *testing.T, series string) string {
	t.Helper()
	var b bytes.Buffer
	tg.set.WritePrometheus(&b)
	for _, l := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

func TestGatewayRefusesMixedEras(t *testing.T) {
	east := newTrustPKI(t, "east")
	e := tftptest.NewServer(t, map[string][]byte{trust.ITLFileName: east.itl(t, false)})
	w := tftptest.NewServer(t, map[string][]byte{"SEP00AABB000001.cnf.xml": []byte("west")})
	tg, err := tryGateway(t, testGatewayConfig(gatewayRoot(t, nil), sub("east", e), sub("west", w)))
	var te *TrustError
	if !errors.As(err, &te) {
		t.Fatalf("Start: %v, want a *TrustError", err)
	}
	if te.Report.Verdict != trust.VerdictMixed || !strings.Contains(err.Error(), "mixed ITL eras") {
		t.Errorf("report %v: %v", te.Report.Verdict, err)
	}
	// Nothing is left bound.
	addr := tg.TFTPAddrs()[0]
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("the refused gateway still holds %s: %v", addr, err)
	}
	c.Close()
}

func TestGatewayRefusesBrokenRootITL(t *testing.T) {
	_, err := tryGateway(t, testGatewayConfig(gatewayRoot(t, []byte("not an ITL"))))
	var te *TrustError
	if !errors.As(err, &te) || !te.Report.Has(trust.ProblemRoot) {
		t.Fatalf("Start: %v", err)
	}
}

func TestGatewayRunsMixedWithRollbackEverywhere(t *testing.T) {
	central, east := newTrustPKI(t, "central"), newTrustPKI(t, "east")
	e := tftptest.NewServer(t, map[string][]byte{trust.ITLFileName: east.itl(t, true), "SEP001122334455.cnf.xml.sgn": east.sign(t, "SEP001122334455.cnf.xml.sgn", []byte("x"))})
	w := tftptest.NewServer(t, map[string][]byte{})
	tg := startGateway(t, testGatewayConfig(gatewayRoot(t, central.itl(t, true)), sub("east", e), sub("west", w)))
	if got := tg.metric(t, "ctftp_homogeneous"); got != "0" {
		t.Errorf("ctftp_homogeneous = %q", got)
	}
	st := tg.Status()
	if st.Trust.Verdict != trust.VerdictMixedRollback || st.Config.Generation != 1 {
		t.Errorf("status: trust %v, generation %d", st.Trust.Verdict, st.Config.Generation)
	}
	if len(tg.logs.records(t, "trust: pre-8.0 and 8.x+ clusters are mixed; this runs only because every 8.x+ side publishes a blank (rollback) ITL: ITL security is off, and secured phone URLs must use HTTP")) != 1 {
		t.Error("no warning logged")
	}
	if _, _, err := tg.get(t, "SEP001122334455.cnf.xml.sgn"); err != nil {
		t.Errorf("forwarding: %v", err)
	}
}

func TestGatewayReload(t *testing.T) {
	central, east := newTrustPKI(t, "central"), newTrustPKI(t, "east")
	const name = "SEP001122334455.cnf.xml"
	a := tftptest.NewServer(t, map[string][]byte{trust.ITLFileName: east.itl(t, false), name: []byte("from A")})
	b := tftptest.NewServer(t, map[string][]byte{trust.ITLFileName: east.itl(t, false), name: []byte("from B")})
	pre := tftptest.NewServer(t, map[string][]byte{name: []byte("from a pre-8.0 cluster")})
	root := gatewayRoot(t, central.itl(t, false))
	cfg1 := testGatewayConfig(root, sub("east", a))
	cfg1.ConfigSHA256 = "1111"
	tg := startGateway(t, cfg1)
	ctx := context.Background()
	if got := tg.metric(t, `ctftp_config_info{sha256="1111"}`); got != "1" || tg.Status().Config.SHA256 != "1111" {
		t.Errorf("gen 1: ctftp_config_info = %q, /status sha256 %q", got, tg.Status().Config.SHA256)
	}

	if _, got, err := tg.get(t, name); err != nil || string(got) != "from A" {
		t.Fatalf("gen 1: %q %v", got, err)
	}
	firstCache := tg.Cache()

	// A config that does not even load: the loader's problems, one per line.
	res := tg.Reload(ctx, func() (GatewayConfig, error) {
		return GatewayConfig{}, errors.New("cache.max_bytes: bad size\nsubclusters[0].name: missing")
	})
	if res.OK || res.Generation != 1 || !slices.Equal(res.Problems, []string{"cache.max_bytes: bad size", "subclusters[0].name: missing"}) {
		t.Errorf("invalid reload: %+v", res)
	}
	// A config the trust guard refuses: east moved to a pre-8.0 cluster.
	res = tg.Reload(ctx, func() (GatewayConfig, error) {
		c := testGatewayConfig(root, sub("east", pre))
		c.ConfigSHA256 = "2222"
		return c, nil
	})
	if res.SHA256 != "2222" || tg.Status().Config.SHA256 != "1111" || tg.metric(t, `ctftp_config_info{sha256="1111"}`) != "1" {
		t.Errorf("a refused config must not change the sha256 in force: tried %q, status %q", res.SHA256, tg.Status().Config.SHA256)
	}
	if res.OK || res.Trust == nil || res.Trust.Verdict != trust.VerdictMixed || !strings.Contains(strings.Join(res.Problems, "\n"), "mixed ITL eras") {
		t.Errorf("mixed reload: %+v", res)
	}
	if _, got, err := tg.get(t, name); err != nil || string(got) != "from A" {
		t.Errorf("after failed reloads: %q %v", got, err)
	}
	st := tg.Status()
	if st.Config.Generation != 1 || st.Config.LastReload == nil || st.Config.LastReload.OK {
		t.Errorf("status after failed reloads: %+v", st.Config)
	}

	// A valid one, with a TFTP engine setting that cannot change live.
	cfg2 := testGatewayConfig(root, sub("east", b))
	cfg2.TFTP.MaxWindowSize = 4
	cfg2.ConfigSHA256 = "3333"
	res = tg.Reload(ctx, func() (GatewayConfig, error) { return cfg2, nil })
	if !res.OK || res.Generation != 2 || !slices.Equal(res.RestartNeeded, []string{"tftp.max_windowsize"}) {
		t.Fatalf("valid reload: %+v", res)
	}
	if _, got, err := tg.get(t, name); err != nil || string(got) != "from B" {
		t.Errorf("gen 2 serves %q %v; east's cached answer from A must be gone", got, err)
	}
	if tg.Cache() != firstCache {
		t.Error("the cache was rebuilt although its config did not change")
	}
	if st := tg.Status(); st.Config.SHA256 != "3333" || res.SHA256 != "3333" {
		t.Errorf("sha256 after reload: status %q, result %q", st.Config.SHA256, res.SHA256)
	}
	for series, want := range map[string]string{
		"ctftp_config_generation":                     "2",
		`ctftp_config_info{sha256="3333"}`:            "1",
		`ctftp_config_info{sha256="1111"}`:            "", // gone, not 0: one series names the config in force
		`ctftp_config_reloads_total{result="ok"}`:     "1",
		`ctftp_config_reloads_total{result="failed"}`: "2",
	} {
		if got := tg.metric(t, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}

	// A new cache config builds a new cache; its series stay exported.
	cfg3 := testGatewayConfig(root, sub("east", b))
	cfg3.Cache.NegativeTTL = time.Second
	if res := tg.Reload(ctx, func() (GatewayConfig, error) { return cfg3, nil }); !res.OK {
		t.Fatalf("reload with a new cache config: %+v", res)
	}
	if tg.Cache() == firstCache {
		t.Error("the cache config changed but the cache was kept")
	}
	tg.get(t, name)
	if got := tg.metric(t, "ctftp_cache_misses_total"); got != "1" {
		t.Errorf("the new cache's misses: %q", got)
	}
}

func TestGatewayReloadLetsRequestsInFlightFinish(t *testing.T) {
	central, east := newTrustPKI(t, "central"), newTrustPKI(t, "east")
	const name = "SEP001122334455.cnf.xml"
	slow := tftptest.NewServer(t, map[string][]byte{trust.ITLFileName: east.itl(t, false), name: []byte("old")}, tftptest.WithDelay(300*time.Millisecond))
	fresh := tftptest.NewServer(t, map[string][]byte{trust.ITLFileName: east.itl(t, false), name: []byte("new")})
	root := gatewayRoot(t, central.itl(t, false))
	tg := startGateway(t, testGatewayConfig(root, sub("east", slow)))

	var wg sync.WaitGroup
	var got []byte
	var gotErr error
	wg.Go(func() { _, got, gotErr = tg.get(t, name) })
	waitFor(t, "the request to reach the old backend", func() bool { return slow.Requests(name) > 0 })
	res := tg.Reload(context.Background(), func() (GatewayConfig, error) { return testGatewayConfig(root, sub("east", fresh)), nil })
	if !res.OK {
		t.Fatalf("reload: %+v", res)
	}
	if _, now, err := tg.get(t, name); err != nil || string(now) != "new" {
		t.Errorf("after the swap: %q %v", now, err)
	}
	wg.Wait()
	if gotErr != nil || string(got) != "old" {
		t.Errorf("the request in flight during the swap got %q, %v", got, gotErr)
	}
}

func TestGatewaySignerChange(t *testing.T) {
	central, east, regenerated := newTrustPKI(t, "central"), newTrustPKI(t, "east"), newTrustPKI(t, "east-regenerated")
	const name = "SEP001122334455.cnf.xml.sgn"
	e := tftptest.NewServer(t, map[string][]byte{trust.ITLFileName: east.itl(t, false), name: east.sign(t, name, []byte("<device/>"))})
	root := gatewayRoot(t, central.itl(t, false))
	cfg := testGatewayConfig(root, sub("east", e))
	cfg.Trust.ProbeInterval = time.Second
	cfg.Trust.OnChange = trust.PolicyRefuse
	tg := startGateway(t, cfg)
	if _, _, err := tg.get(t, name); err != nil {
		t.Fatal(err)
	}
	if f, _, _ := tg.get(t, name); f == nil || f.Origin != ctftp.OriginCache {
		t.Fatal("the second request was not a cache hit")
	}

	e.SetFile(trust.ITLFileName, regenerated.itl(t, false))
	waitFor(t, "the signer change to be reported", func() bool {
		return strings.Contains(strings.Join(tg.readiness(), "\n"), "ITL signer changed")
	})
	if n := tg.Cache().Stats().Entries; n != 0 {
		t.Errorf("%d cache entries left for the sub-cluster whose signer changed", n)
	}
	if _, _, err := tg.get(t, name); !errors.Is(err, trust.ErrAlarmed) || !errors.Is(err, ctftp.ErrUnavailable) {
		t.Errorf("under on_change refuse: %v", err)
	}
	if got := tg.metric(t, `ctftp_trust_signer_changes_total{subcluster="east"}`); got != "1" {
		t.Errorf("signer changes: %q", got)
	}

	// A reload acknowledges it.
	if res := tg.Reload(context.Background(), func() (GatewayConfig, error) { return cfg, nil }); !res.OK {
		t.Fatalf("reload: %+v", res)
	}
	if r := tg.readiness(); len(r) != 0 {
		t.Errorf("not ready after the reload: %q", r)
	}
	if f, _, err := tg.get(t, name); err != nil || f.Origin != ctftp.OriginBackend {
		t.Errorf("after the reload: %v %v", f, err)
	}
}

func TestGatewayReloadDropsAndRestoresSubclusters(t *testing.T) {
	central, east := newTrustPKI(t, "central"), newTrustPKI(t, "east")
	const name = "SEP001122334455.cnf.xml"
	e := tftptest.NewServer(t, map[string][]byte{trust.ITLFileName: east.itl(t, false), name: []byte("east")})
	root := gatewayRoot(t, central.itl(t, false))
	cfg := testGatewayConfig(root, sub("east", e))
	tg := startGateway(t, cfg)
	ctx := context.Background()

	if res := tg.Reload(ctx, func() (GatewayConfig, error) { return testGatewayConfig(root), nil }); !res.OK {
		t.Fatalf("reload to no sub-clusters: %+v", res)
	}
	if tg.Cache() != nil {
		t.Error("a cache without sub-clusters")
	}
	if _, _, err := tg.get(t, name); !errors.Is(err, ctftp.ErrNotFound) {
		t.Errorf("only the root serves now: %v", err)
	}
	if res := tg.Reload(ctx, func() (GatewayConfig, error) { return cfg, nil }); !res.OK {
		t.Fatalf("reload back to east: %+v", res)
	}
	if _, got, err := tg.get(t, name); err != nil || string(got) != "east" {
		t.Errorf("east again: %q %v", got, err)
	}
	if got := tg.metric(t, "ctftp_cache_misses_total"); got != "1" {
		t.Errorf("the third cache's misses: %q", got)
	}
}
