package cluster

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/dnstest"
	"github.com/ctftp/ctftp/internal/tftptest"
)

func TestDNSResolver(t *testing.T) {
	d := dnstest.NewServer(t)
	d.SetA("tftp.east.test", 30, "127.0.0.2", "127.0.0.1")
	d.SetAAAA("tftp.east.test", 10, "::1")
	d.SetA("v4only.east.test", 7, "127.0.0.1")
	d.SetSRV("_tftp._udp.east.test", 20,
		dnstest.SRV{Target: "b.east.test", Port: 1069, Priority: 10, Weight: 1},
		dnstest.SRV{Target: "a.east.test", Port: 69, Priority: 10, Weight: 9},
		dnstest.SRV{Target: "c.east.test", Port: 69, Priority: 1})
	d.SetSRV("_tftp._udp.dot.test", 20, dnstest.SRV{Target: ".", Port: 69})

	cfg := DefaultConfig().DNS
	cfg.Servers = []string{d.Addr()}
	r, err := newDNSResolver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hosts := []struct {
		name  string
		host  string
		addrs []string
		ttl   time.Duration
	}{
		{name: "A and AAAA, sorted, smallest TTL", host: "tftp.east.test", addrs: []string{"127.0.0.1", "127.0.0.2", "::1"}, ttl: 10 * time.Second},
		// The empty AAAA answer counts: an AAAA record may appear once its
		// negative TTL (the SOA's, 1 s here) runs out.
		{name: "A only", host: "v4only.east.test", addrs: []string{"127.0.0.1"}, ttl: time.Second},
		{name: "no such name: empty, SOA TTL", host: "nope.east.test", addrs: nil, ttl: time.Second},
	}
	for _, tc := range hosts {
		t.Run(tc.name, func(t *testing.T) {
			addrs, ttl, err := r.LookupHost(context.Background(), tc.host)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range addrs {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tc.addrs) || ttl != tc.ttl {
				t.Errorf("got %v TTL %s, want %v TTL %s", got, ttl, tc.addrs, tc.ttl)
			}
		})
	}
	t.Run("SRV ordered by priority then weight", func(t *testing.T) {
		recs, ttl, err := r.LookupSRV(context.Background(), "_tftp._udp.east.test")
		if err != nil {
			t.Fatal(err)
		}
		want := []SRV{{"c.east.test", 69, 1, 0}, {"a.east.test", 69, 10, 9}, {"b.east.test", 1069, 10, 1}}
		if !slices.Equal(recs, want) || ttl != 20*time.Second {
			t.Errorf("got %v TTL %s, want %v", recs, ttl, want)
		}
	})
	t.Run("SRV target . means no service", func(t *testing.T) {
		recs, _, err := r.LookupSRV(context.Background(), "_tftp._udp.dot.test")
		if err != nil || len(recs) != 0 {
			t.Errorf("got %v, %v", recs, err)
		}
	})
	t.Run("SERVFAIL is an error", func(t *testing.T) {
		d.SetServfail(true)
		defer d.SetServfail(false)
		if _, _, err := r.LookupHost(context.Background(), "tftp.east.test"); err == nil {
			t.Error("no error")
		}
	})
}

func TestDNSResolverFailsOverToNextServer(t *testing.T) {
	bad := dnstest.NewServer(t)
	bad.SetServfail(true)
	good := dnstest.NewServer(t)
	good.SetA("tftp.east.test", 5, "127.0.0.1")
	cfg := DefaultConfig().DNS
	cfg.Servers = []string{bad.Addr(), good.Addr()}
	r, err := newDNSResolver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addrs, _, err := r.LookupHost(context.Background(), "tftp.east.test")
	if err != nil || len(addrs) != 1 {
		t.Fatalf("%v, %v", addrs, err)
	}
	if bad.TotalQueries() == 0 {
		t.Error("the first server was not asked")
	}
}

func TestResolvConf(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(p, []byte("search example.com\nnameserver 127.0.0.53\nnameserver ::1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := newDNSResolverFrom(DefaultConfig().DNS, p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.53:53", "[::1]:53"}; !slices.Equal(r.servers, want) {
		t.Errorf("servers %v, want %v", r.servers, want)
	}
	if _, err := newDNSResolverFrom(DefaultConfig().DNS, filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing resolv.conf was accepted")
	}
	empty := filepath.Join(dir, "empty.conf")
	os.WriteFile(empty, []byte("search x\n"), 0o644)
	if _, err := newDNSResolverFrom(DefaultConfig().DNS, empty); err == nil {
		t.Error("a resolv.conf without nameservers was accepted")
	}
}

// dnsConfig is testConfig resolving against d with TTLs honoured down
// to 100 ms.
func dnsConfig(d *dnstest.Server, backends ...string) Config {
	c := testConfig(backends...)
	c.DNS.Servers = []string{d.Addr()}
	c.DNS.Timeout = time.Second
	c.DNS.MinTTL = 100 * time.Millisecond
	return c
}

// startRun runs s.Run until the test ends.
func startRun(t *testing.T, s *Set) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

func fetchesFrom(s *Set, want string) func() bool {
	return func() bool {
		got, err := s.Fetch(context.Background(), "east", "f")
		return err == nil && string(got) == want
	}
}

func port(s *tftptest.Server) uint16 { return s.AddrPort().Port() }

// Changing an SRV record moves traffic to the new target once the TTL
// has run out.
func TestDNSSRVMovesTrafficAfterTTL(t *testing.T) {
	a := tftptest.NewServer(t, map[string][]byte{"f": []byte("a")})
	b := tftptest.NewServer(t, map[string][]byte{"f": []byte("b")})
	d := dnstest.NewServer(t)
	d.SetA("a.east.test", 1, "127.0.0.1")
	d.SetA("b.east.test", 1, "127.0.0.1")
	d.SetSRV("_tftp._udp.east.test", 1, dnstest.SRV{Target: "a.east.test", Port: port(a)})
	s, set := newTestSet(t, dnsConfig(d, "_tftp._udp.east.test"), Options{})
	if err := s.Resolve(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !fetchesFrom(s, "a")() {
		t.Fatal("not served by a")
	}
	startRun(t, s)
	d.SetSRV("_tftp._udp.east.test", 1, dnstest.SRV{Target: "b.east.test", Port: port(b)})
	waitFor(t, "traffic to move to b", fetchesFrom(s, "b"))
	if v := metricValue(t, set, `ctftp_dns_resolutions_total{result="ok"}`); v == "" || v == "0" || v == "1" {
		t.Errorf("ok resolutions = %q, want at least 2", v)
	}
	if v := metricValue(t, set, `ctftp_backend_up{subcluster="east",backend="_tftp._udp.east.test"}`); v != "1" {
		t.Errorf("up = %q", v)
	}
}

// sameServerPort starts one server on 127.0.0.1 and one on ::1 with the
// same port, so a host name can move between A and AAAA with one
// configured port.
func sameServerPort(t *testing.T) (v4, v6 *tftptest.Server) {
	t.Helper()
	if c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	for range 10 {
		v4 = tftptest.NewServer(t, map[string][]byte{"f": []byte("v4")})
		ap := netip.AddrPortFrom(netip.IPv6Loopback(), port(v4))
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		if err != nil {
			v4.Close()
			continue
		}
		c.Close()
		return v4, tftptest.NewServer(t, map[string][]byte{"f": []byte("v6")}, tftptest.ListenOn(ap))
	}
	t.Fatal("no port free on both 127.0.0.1 and ::1")
	return nil, nil
}

// A host name moves from its A record to its AAAA record.
func TestDNSHostMovesFromAToAAAA(t *testing.T) {
	v4, v6 := sameServerPort(t)
	d := dnstest.NewServer(t)
	d.SetA("tftp.east.test", 1, "127.0.0.1")
	backend := "tftp.east.test:" + strconv.Itoa(int(port(v4)))
	s, _ := newTestSet(t, dnsConfig(d, backend), Options{})
	if err := s.Resolve(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !fetchesFrom(s, "v4")() {
		t.Fatal("not served over IPv4")
	}
	startRun(t, s)
	d.SetAAAA("tftp.east.test", 1, "::1")
	d.SetA("tftp.east.test", 1)
	waitFor(t, "traffic to move to ::1", fetchesFrom(s, "v6"))
	if st := s.Status()[0].Backends; len(st) != 1 || st[0].Address != v6.Addr() || st[0].Source != backend {
		t.Errorf("status %+v", st)
	}
}

// Re-resolution keeps the health of the addresses that stay.
func TestDNSKeepsHealthOfAddressesThatStay(t *testing.T) {
	a := tftptest.NewServer(t, map[string][]byte{"f": []byte("a")})
	b := tftptest.NewServer(t, map[string][]byte{"f": []byte("b")})
	c := tftptest.NewServer(t, map[string][]byte{"f": []byte("c")})
	d := dnstest.NewServer(t)
	for _, h := range []string{"a.east.test", "b.east.test", "c.east.test"} {
		d.SetA(h, 1, "127.0.0.1")
	}
	d.SetSRV("_tftp._udp.east.test", 1,
		dnstest.SRV{Target: "a.east.test", Port: port(a), Priority: 1},
		dnstest.SRV{Target: "b.east.test", Port: port(b), Priority: 2})
	cfg := dnsConfig(d, "_tftp._udp.east.test")
	cfg.Backend.MaxFails = 3
	s, _ := newTestSet(t, cfg, Options{})
	if err := s.Resolve(context.Background()); err != nil {
		t.Fatal(err)
	}
	sc := s.byName["east"]
	kept := (*sc.backends.Load())[0]
	if kept.addr != a.AddrPort() {
		t.Fatalf("first backend %s, want a %s", kept, a.Addr())
	}
	s.failed(sc, kept, errors.New("one failure to remember"), false)

	startRun(t, s)
	d.SetSRV("_tftp._udp.east.test", 1,
		dnstest.SRV{Target: "a.east.test", Port: port(a), Priority: 1},
		dnstest.SRV{Target: "c.east.test", Port: port(c), Priority: 2})
	waitFor(t, "c to replace b", func() bool {
		st := s.Status()[0].Backends
		return len(st) == 2 && st[1].Address == c.Addr()
	})
	st := s.Status()[0].Backends
	if st[0].Address != a.Addr() || st[0].Fails != 1 || st[0].LastError != "one failure to remember" {
		t.Errorf("a lost its health: %+v", st[0])
	}
	if (*sc.backends.Load())[0] != kept {
		t.Error("a's backend was replaced")
	}
}

// A resolver outage keeps the addresses in use.
func TestDNSOutageKeepsAddresses(t *testing.T) {
	a := tftptest.NewServer(t, map[string][]byte{"f": []byte("a")})
	d := dnstest.NewServer(t)
	d.SetA("tftp.east.test", 1, "127.0.0.1")
	s, set := newTestSet(t, dnsConfig(d, "tftp.east.test:"+strconv.Itoa(int(port(a)))), Options{})
	if err := s.Resolve(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.SetServfail(true)
	startRun(t, s)
	waitFor(t, "a failed lookup", func() bool {
		v := metricValue(t, set, `ctftp_dns_resolutions_total{result="error"}`)
		return v != "" && v != "0"
	})
	if !fetchesFrom(s, "a")() {
		t.Error("the backend went away with the resolver")
	}
}
