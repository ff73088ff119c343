package cluster

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ctftp/ctftp"
)

type hostAnswer struct {
	addrs []netip.Addr
	ttl   time.Duration
	err   error
}

type srvAnswer struct {
	recs []SRV
	ttl  time.Duration
	err  error
}

// fakeResolver answers from maps and counts lookups; an unknown name has
// no addresses.
type fakeResolver struct {
	mu      sync.Mutex
	hosts   map[string]hostAnswer
	srvs    map[string]srvAnswer
	lookups map[string]int
}

func (r *fakeResolver) LookupHost(ctx context.Context, host string) ([]netip.Addr, time.Duration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count(host)
	a := r.hosts[host]
	return slices.Clone(a.addrs), a.ttl, a.err
}

func (r *fakeResolver) LookupSRV(ctx context.Context, name string) ([]SRV, time.Duration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count(name)
	a := r.srvs[name]
	return slices.Clone(a.recs), a.ttl, a.err
}

func (r *fakeResolver) count(name string) {
	if r.lookups == nil {
		r.lookups = map[string]int{}
	}
	r.lookups[name]++
}

func (r *fakeResolver) setHost(name string, a hostAnswer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hosts == nil {
		r.hosts = map[string]hostAnswer{}
	}
	r.hosts[name] = a
}

func (r *fakeResolver) setSRV(name string, a srvAnswer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srvs == nil {
		r.srvs = map[string]srvAnswer{}
	}
	r.srvs[name] = a
}

func (r *fakeResolver) lookupCount(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups[name]
}

// runFor runs s.Run for d of bubble time, then stops it and waits.
func runFor(t *testing.T, s *Set, d time.Duration, during func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	time.Sleep(d)
	synctest.Wait()
	if during != nil {
		during()
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}
}

func ips(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// Run looks a name up again when its TTL, clamped to [min_ttl, max_ttl],
// runs out; a failed lookup is retried after min_ttl.
func TestRunResolvesWithinTTLBounds(t *testing.T) {
	tests := []struct {
		name    string
		answer  hostAnswer
		lookups int // in 62 s, the first at 0
	}{
		{name: "TTL below min_ttl", answer: hostAnswer{addrs: ips("192.0.2.1"), ttl: time.Second}, lookups: 13},
		{name: "TTL within bounds", answer: hostAnswer{addrs: ips("192.0.2.1"), ttl: 20 * time.Second}, lookups: 4},
		{name: "TTL above max_ttl", answer: hostAnswer{addrs: ips("192.0.2.1"), ttl: time.Hour}, lookups: 3},
		{name: "failed lookup", answer: hostAnswer{err: errors.New("SERVFAIL")}, lookups: 13},
		{name: "no addresses, no TTL", answer: hostAnswer{}, lookups: 13},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := &fakeResolver{}
				r.setHost("tftp.east.test", tc.answer)
				cfg := testConfig("tftp.east.test")
				cfg.DNS.MinTTL = 5 * time.Second
				cfg.DNS.MaxTTL = 30 * time.Second
				s, _ := newTestSet(t, cfg, Options{Resolver: r})
				runFor(t, s, 62*time.Second, nil)
				if n := r.lookupCount("tftp.east.test"); n != tc.lookups {
					t.Errorf("%d lookups in 62s, want %d", n, tc.lookups)
				}
			})
		})
	}
}

// Addresses that stay keep their backend (health, failure count, slots);
// new ones start fresh; gone ones go; traffic follows after the TTL.
func TestReResolutionKeepsHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &fakeResolver{}
		r.setHost("tftp.east.test", hostAnswer{addrs: ips("192.0.2.1", "192.0.2.2"), ttl: 10 * time.Second})
		cfg := testConfig("tftp.east.test")
		cfg.Backend.MaxFails = 1
		s, _ := newTestSet(t, cfg, Options{Resolver: r})
		ff := &fakeFetcher{fetchFn: func(ctx context.Context, addr netip.AddrPort, name string) ([]byte, error) {
			return []byte(addr.String()), nil
		}}
		s.fetcher = ff
		if err := s.Resolve(context.Background()); err != nil {
			t.Fatal(err)
		}
		sc := s.byName["east"]
		first := *sc.backends.Load()
		if len(first) != 2 {
			t.Fatalf("%d backends", len(first))
		}
		kept := first[0]
		s.failed(sc, kept, ErrBackendUnavailable, false) // down (max_fails 1)
		if got, _ := s.Fetch(context.Background(), "east", "f"); string(got) != "192.0.2.2:69" {
			t.Fatalf("served by %s, want the healthy 192.0.2.2", got)
		}

		r.setHost("tftp.east.test", hostAnswer{addrs: ips("192.0.2.1", "192.0.2.3"), ttl: 10 * time.Second})
		runFor(t, s, 9*time.Second, func() {
			if got, _ := s.Fetch(context.Background(), "east", "f"); string(got) != "192.0.2.2:69" {
				t.Errorf("before the TTL ran out, served by %s", got)
			}
		})
		runFor(t, s, 2*time.Second, nil)

		now := *sc.backends.Load()
		if len(now) != 2 || now[0] != kept || now[1].addr.String() != "192.0.2.3:69" {
			t.Fatalf("backends after re-resolution: %v", now)
		}
		// Still down, its failures counted on (Run's background trials of
		// a down backend run even with probing off, and fail here).
		if st := backendStatus(t, s, "192.0.2.1:69"); st.Up || st.Fails < 1 {
			t.Errorf("the address that stayed lost its health: %+v", st)
		}
		if got, _ := s.Fetch(context.Background(), "east", "f"); string(got) != "192.0.2.3:69" {
			t.Errorf("after the TTL, served by %s, want the new 192.0.2.3", got)
		}
	})
}

func TestFailedLookupKeepsAddresses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &fakeResolver{}
		r.setHost("tftp.east.test", hostAnswer{addrs: ips("192.0.2.1"), ttl: time.Second})
		cfg := testConfig("tftp.east.test")
		cfg.DNS.MinTTL = time.Second
		s, set := newTestSet(t, cfg, Options{Resolver: r})
		s.fetcher = &fakeFetcher{fetchFn: func(context.Context, netip.AddrPort, string) ([]byte, error) { return []byte("ok"), nil }}
		if err := s.Resolve(context.Background()); err != nil {
			t.Fatal(err)
		}
		r.setHost("tftp.east.test", hostAnswer{err: errors.New("SERVFAIL")})
		runFor(t, s, 3*time.Second+time.Millisecond, nil)
		if got, err := s.Fetch(context.Background(), "east", "f"); err != nil || string(got) != "ok" {
			t.Fatalf("%q, %v", got, err)
		}
		if v := metricValue(t, set, `ctftp_dns_resolutions_total{result="error"}`); v != "3" {
			t.Errorf("errors counted %q, want 3", v)
		}
		// An authoritative "no such name" does empty the backend list.
		r.setHost("tftp.east.test", hostAnswer{})
		runFor(t, s, time.Second, nil)
		if _, err := s.Fetch(context.Background(), "east", "f"); !errors.Is(err, ErrNoBackends) {
			t.Fatalf("err = %v, want no backends", err)
		}
		if st := s.Status()[0].Backends; len(st) != 1 || st[0].Address != "" || st[0].LastError != "tftp.east.test has no addresses" {
			t.Errorf("status %+v", st)
		}
	})
}

func TestResolveReportsFailuresAndSRVOrder(t *testing.T) {
	r := &fakeResolver{}
	r.setSRV("_tftp._udp.east.test", srvAnswer{ttl: time.Minute, recs: []SRV{
		{Target: "b.east.test", Port: 1069, Priority: 10, Weight: 1},
		{Target: "a.east.test", Port: 69, Priority: 10, Weight: 5},
		{Target: "c.east.test", Port: 69, Priority: 5},
		{Target: "broken.east.test", Port: 69, Priority: 20},
	}})
	r.setHost("a.east.test", hostAnswer{addrs: ips("192.0.2.1"), ttl: time.Minute})
	r.setHost("b.east.test", hostAnswer{addrs: ips("192.0.2.2", "2001:db8::2"), ttl: time.Minute})
	r.setHost("c.east.test", hostAnswer{addrs: ips("192.0.2.3"), ttl: time.Minute})
	r.setHost("broken.east.test", hostAnswer{err: errors.New("timeout")})
	r.setHost("down.east.test", hostAnswer{err: errors.New("SERVFAIL")})
	cfg := testConfig("_tftp._udp.east.test", "down.east.test", "192.0.2.9")
	s, _ := newTestSet(t, cfg, Options{Resolver: r})
	err := s.Resolve(context.Background())
	if err == nil {
		t.Fatal("no error for the failed lookups")
	}
	for _, w := range []string{"subclusters[0].backends[0] (_tftp._udp.east.test): target broken.east.test: timeout",
		"subclusters[0].backends[1] (down.east.test): SERVFAIL"} {
		if !containsLine(err.Error(), w) {
			t.Errorf("no %q in %q", w, err)
		}
	}
	var got []string
	for _, b := range *s.byName["east"].backends.Load() {
		got = append(got, b.String())
	}
	want := []string{"192.0.2.3:69", "192.0.2.1:69", "192.0.2.2:1069", "[2001:db8::2]:1069", "192.0.2.9:69"}
	if !slices.Equal(got, want) {
		t.Errorf("try order %v, want %v", got, want)
	}
	st := s.Status()[0].Backends
	if last := st[len(st)-2]; last.Source != "down.east.test" || last.Address != "" || last.LastError == "" {
		t.Errorf("unresolved source status %+v", last)
	}
}

func containsLine(s, want string) bool {
	for _, l := range splitLines(s) {
		if l == "cluster: "+want {
			return true
		}
	}
	return false
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// At most one probe per backend is in flight: ticks that come while one
// runs skip that backend.
func TestRunProbesAtMostOncePerBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		inFlight, peak := 0, 0
		ff := &fakeFetcher{probeFn: func(ctx context.Context, addr netip.AddrPort) error {
			mu.Lock()
			inFlight++
			peak = max(peak, inFlight)
			mu.Unlock()
			defer func() {
				mu.Lock()
				inFlight--
				mu.Unlock()
			}()
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		}}
		cfg := testConfig(addrA.String(), addrB.String())
		cfg.Backend.ProbeInterval = 10 * time.Second
		s, _ := newTestSet(t, cfg, Options{})
		s.fetcher = ff
		runFor(t, s, 35*time.Second, func() {
			if a, b := ff.count(&ff.probes, addrA), ff.count(&ff.probes, addrB); a != 1 || b != 1 {
				t.Errorf("probes while the first still runs: a %d, b %d; want 1 each", a, b)
			}
			close(release)
			time.Sleep(10 * time.Second) // the tick at 40 s
			synctest.Wait()
			if a := ff.count(&ff.probes, addrA); a != 2 {
				t.Errorf("probes of a after the first ended: %d, want 2", a)
			}
		})
		if peak != 2 {
			t.Errorf("peak probes in flight %d, want 2 (one per backend)", peak)
		}
	})
}

// Probes find a silent death with no traffic: the first probe left
// unanswered marks the backend down at once. A down backend is then
// probed with backoff (probe_interval, doubling up to down_retry_max),
// and any TFTP answer, even an ERROR packet, brings it back.
func TestRunProbeHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var answer error = ErrBackendUnavailable
		ff := &fakeFetcher{probeFn: func(ctx context.Context, addr netip.AddrPort) error {
			mu.Lock()
			defer mu.Unlock()
			return answer
		}}
		cfg := testConfig(addrA.String())
		cfg.Backend.ProbeInterval = 10 * time.Second
		cfg.Backend.DownRetryMax = 40 * time.Second
		cfg.Backend.MaxFails = 2
		s, set := newTestSet(t, cfg, Options{})
		s.fetcher = ff
		runFor(t, s, 5*time.Second, nil) // the probe at 0 s
		if st := backendStatus(t, s, addrA.String()); st.Up || st.Fails != 1 {
			t.Fatalf("after one silent probe: %+v", st)
		}
		// Trials at 10 s, 30 s (+20), 70 s (+40), 110 s (+40, the cap).
		runFor(t, s, 115*time.Second, nil)
		if n := ff.count(&ff.probes, addrA); n != 5 {
			t.Errorf("%d probes in 120 s, want 5 (0, 10, 30, 70, 110 s)", n)
		}
		mu.Lock()
		answer = &TFTPError{Code: 1, Message: "File not found"}
		mu.Unlock()
		runFor(t, s, 45*time.Second, nil) // the next trial is due within 40 s
		if st := backendStatus(t, s, addrA.String()); !st.Up || st.Fails != 0 {
			t.Fatalf("after an ERROR answer: %+v", st)
		}
		if v := metricValue(t, set, `ctftp_backend_probes_total{subcluster="east",result="dead"}`); v != "5" {
			t.Errorf("dead probes %q, want 5", v)
		}
	})
}

// A probe takes a slot: a backend whose slots are all in use by fetches
// is not probed.
func TestProbeSkipsFullBackend(t *testing.T) {
	release := make(chan struct{})
	ff := &fakeFetcher{
		fetchFn: func(context.Context, netip.AddrPort, string) ([]byte, error) { <-release; return nil, nil },
		probeFn: func(context.Context, netip.AddrPort) error { return nil },
	}
	cfg := testConfig(addrA.String())
	cfg.Backend.MaxInFlight = 1
	s, _ := newTestSet(t, cfg, Options{})
	s.fetcher = ff
	var wg sync.WaitGroup
	wg.Go(func() { s.Fetch(context.Background(), "east", "f") })
	waitFor(t, "the fetch", func() bool { return ff.count(&ff.fetches, addrA) == 1 })
	res := s.ProbeAll(context.Background())
	close(release)
	wg.Wait()
	if len(res) != 1 || !errors.Is(res[0].Err, errProbeSkipped) || ff.count(&ff.probes, addrA) != 0 {
		t.Errorf("probe of a full backend: %+v, %d probes", res, ff.count(&ff.probes, addrA))
	}
}

// The fetch errors keep the root contract: every failure is
// ctftp.ErrUnavailable, never ctftp.ErrNotFound.
func TestOutageNeverReadsAsNotFound(t *testing.T) {
	errs := []error{ErrBackendUnavailable, &TFTPError{Code: 2}, &TFTPError{Code: 0}, ErrTooLarge}
	for _, e := range errs {
		ff := &fakeFetcher{fetchFn: func(context.Context, netip.AddrPort, string) ([]byte, error) { return nil, e }}
		s, _ := newTestSet(t, testConfig(addrA.String(), addrB.String()), Options{})
		s.fetcher = ff
		_, err := s.Fetch(context.Background(), "east", "f")
		if errors.Is(err, ctftp.ErrNotFound) || !errors.Is(err, ctftp.ErrUnavailable) {
			t.Errorf("%v -> %v", e, err)
		}
	}
}

// With active probing off (probe_interval 0), a backend marked down by
// fetches is still tried in the background, with backoff, so a
// sub-cluster whose backends all went down comes back by itself.
func TestTrialsWithoutProbing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var answer error = ErrBackendUnavailable
		ff := &fakeFetcher{probeFn: func(ctx context.Context, addr netip.AddrPort) error {
			mu.Lock()
			defer mu.Unlock()
			return answer
		}}
		cfg := testConfig(addrA.String())
		cfg.Backend.MaxFails = 1
		cfg.Backend.DownRetryMax = 4 * time.Second
		s, _ := newTestSet(t, cfg, Options{})
		s.fetcher = ff
		sc := s.byName["east"]
		s.failed(sc, (*sc.backends.Load())[0], ErrBackendUnavailable, false)
		if _, err := s.Fetch(context.Background(), "east", "f"); !errors.Is(err, ErrSubclusterDown) {
			t.Fatalf("all down: %v", err)
		}
		// Trials at 1 s, 3 s (+2), 7 s (+4, the cap), 11 s.
		runFor(t, s, 12*time.Second, nil)
		if n := ff.count(&ff.probes, addrA); n != 4 {
			t.Errorf("%d trials in 12 s, want 4", n)
		}
		mu.Lock()
		answer = nil
		mu.Unlock()
		runFor(t, s, 5*time.Second, nil)
		if st := backendStatus(t, s, addrA.String()); !st.Up {
			t.Fatalf("not back after an answered trial: %+v", st)
		}
	})
}
