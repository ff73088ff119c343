package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftptest"
)

// testConfig is one sub-cluster "east" with fast timeouts and no active
// probing.
func testConfig(backends ...string) Config {
	c := DefaultConfig()
	c.Backend.Timeout = 150 * time.Millisecond
	c.Backend.ProbeTimeout = 150 * time.Millisecond
	// A hedge only when a backend is silent for half a second: a loaded
	// test host must not turn a slow first answer into a hedge that
	// changes which backend serves. Tests of hedging set their own.
	c.Backend.HedgeMin = 500 * time.Millisecond
	c.Backend.Retries = 1
	c.Backend.ProbeInterval = 0
	c.Subclusters = []SubclusterConfig{{Name: "east", Version: "12.5", Backends: backends}}
	return c
}

func newTestSet(t *testing.T, cfg Config, opts Options) (*Set, *metrics.Set) {
	t.Helper()
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, opts.Metrics
}

func open(t *testing.T, s *Set, name string) (*ctftp.File, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := s.Open(ctx, ctftp.Request{Name: name, Subcluster: "east", Mode: "octet"})
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

func metricValue(t *testing.T, set *metrics.Set, series string) string {
	t.Helper()
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for _, l := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

func backendStatus(t *testing.T, s *Set, addr string) BackendStatus {
	t.Helper()
	for _, sc := range s.Status() {
		for _, b := range sc.Backends {
			if b.Address == addr {
				return b
			}
		}
	}
	t.Fatalf("no backend %s in %+v", addr, s.Status())
	return BackendStatus{}
}

func TestOpen(t *testing.T) {
	want := pattern(3000, 5)
	srv := tftptest.NewServer(t, map[string][]byte{"SEP001122334455.cnf.xml": want})
	s, set := newTestSet(t, testConfig(srv.Addr()), Options{})
	if b := backendStatus(t, s, srv.Addr()); !b.LastAnswer.IsZero() || b.AnswerSeconds != 0 {
		t.Errorf("before any answer: %+v", b)
	}

	before := time.Now()
	f, got, err := open(t, s, "SEP001122334455.cnf.xml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d", len(got), len(want))
	}
	if f.Size != int64(len(want)) || f.Origin != ctftp.OriginBackend || f.Subcluster != "east" || f.Backend != srv.Addr() {
		t.Errorf("file = %+v", f)
	}
	if _, ok := f.Body.(io.Seeker); !ok {
		t.Error("Body is not seekable: the front end cannot answer tsize")
	}
	if v := metricValue(t, set, `ctftp_backend_fetches_total{subcluster="east",result="ok"}`); v != "1" {
		t.Errorf("ok fetches = %q, want 1", v)
	}
	if v := metricValue(t, set, `ctftp_backend_up{subcluster="east",backend="`+srv.Addr()+`"}`); v != "1" {
		t.Errorf("up = %q, want 1", v)
	}
	if v := metricValue(t, set, `ctftp_backend_fetch_duration_seconds_count{subcluster="east"}`); v != "1" {
		t.Errorf("duration count = %q, want 1", v)
	}
	if b := backendStatus(t, s, srv.Addr()); b.LastAnswer.Before(before) || b.AnswerSeconds <= 0 {
		t.Errorf("after an answer: last answer %v (fetch started %v), %gs", b.LastAnswer, before, b.AnswerSeconds)
	}
	data, err := s.Fetch(context.Background(), "east", "SEP001122334455.cnf.xml")
	if err != nil || !bytes.Equal(data, want) {
		t.Fatalf("Fetch: %d bytes, %v", len(data), err)
	}
	if got := s.Names(); len(got) != 1 || got[0] != "east" {
		t.Errorf("Names = %v", got)
	}
}

func TestOpenOutcomes(t *testing.T) {
	good := tftptest.NewServer(t, map[string][]byte{"f": []byte("x")})
	refusing := tftptest.NewServer(t, nil, tftptest.Refuse(2, "File must have global read permissions"))
	silent := tftptest.NewServer(t, nil, tftptest.Silent())
	tests := []struct {
		name     string
		backends []string
		sub      string
		file     string
		is       []error
		isNot    []error
		result   string // the ctftp_backend_fetches_total result counted once
	}{
		{name: "not found", backends: []string{good.Addr()}, file: "nope",
			is: []error{ctftp.ErrNotFound}, isNot: []error{ctftp.ErrUnavailable}, result: resultNotFound},
		{name: "refused", backends: []string{refusing.Addr()}, file: "f",
			is: []error{ErrRefused, ctftp.ErrUnavailable}, isNot: []error{ctftp.ErrDenied, ctftp.ErrNotFound}, result: resultRefused},
		{name: "unavailable", backends: []string{silent.Addr()}, file: "f",
			is: []error{ErrBackendUnavailable, ctftp.ErrUnavailable}, isNot: []error{ctftp.ErrNotFound}, result: resultError},
		{name: "unknown sub-cluster", backends: []string{good.Addr()}, sub: "west", file: "f",
			is: []error{ErrUnknownSubcluster}, isNot: []error{ctftp.ErrNotFound, ctftp.ErrUnavailable}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, set := newTestSet(t, testConfig(tc.backends...), Options{})
			sub := "east"
			if tc.sub != "" {
				sub = tc.sub
			}
			_, err := s.Open(context.Background(), ctftp.Request{Name: tc.file, Subcluster: sub})
			for _, w := range tc.is {
				if !errors.Is(err, w) {
					t.Errorf("%v is not %v", err, w)
				}
			}
			for _, w := range tc.isNot {
				if errors.Is(err, w) {
					t.Errorf("%v is %v", err, w)
				}
			}
			if tc.result != "" {
				if v := metricValue(t, set, `ctftp_backend_fetches_total{subcluster="east",result="`+tc.result+`"}`); v != "1" {
					t.Errorf("result %s counted %q, want 1", tc.result, v)
				}
			}
		})
	}
}

// A killed backend's host answers ICMP port unreachable (the fetcher's
// socket reports it: IP_RECVERR): the fetch fails at once and the sibling
// answers, before any hedge delay (a second here, longer than the test
// takes); a is blamed; one probe marks it down, saying why.
func TestFailoverWhenBackendKilled(t *testing.T) {
	a := tftptest.NewServer(t, map[string][]byte{"f": []byte("from a")})
	b := tftptest.NewServer(t, map[string][]byte{"f": []byte("from b")})
	cfg := testConfig(a.Addr(), b.Addr())
	cfg.Backend.Timeout = 2 * time.Second
	cfg.Backend.HedgeMin, cfg.Backend.HedgeMax = time.Second, time.Second
	s, set := newTestSet(t, cfg, Options{})

	if f, got, err := open(t, s, "f"); err != nil || string(got) != "from a" || f.Backend != a.Addr() {
		t.Fatalf("before: %q, %v", got, err)
	}
	a.Close()
	f, got, err := open(t, s, "f")
	if err != nil || string(got) != "from b" || f.Backend != b.Addr() {
		t.Fatalf("after killing a: %q, %v", got, err)
	}
	if v := metricValue(t, set, `ctftp_backend_hedges_total{subcluster="east"}`); v != "0" {
		t.Errorf("hedges = %s, want 0: the killed backend failed at once", v)
	}
	if st := backendStatus(t, s, a.Addr()); st.Fails != 1 || !st.Up || !strings.Contains(st.LastError, "unreachable") {
		t.Errorf("a after one refused fetch (max_fails 2): %+v", st)
	}
	s.ProbeAll(context.Background())
	if st := backendStatus(t, s, a.Addr()); st.Up || !strings.Contains(st.LastError, "unreachable") {
		t.Errorf("a after one refused probe: %+v", st)
	}
	if f, got, err := open(t, s, "f"); err != nil || string(got) != "from b" || f.Backend != b.Addr() {
		t.Fatalf("after a is down: %q, %v", got, err)
	}
	if v := metricValue(t, set, `ctftp_backend_fetches_total{subcluster="east",result="error"}`); v != "1" {
		t.Errorf("failed fetches = %s after a is down, want still 1: a down backend is not asked", v)
	}
}

func TestRefusalFailsOverWithoutHurtingHealth(t *testing.T) {
	refusing := tftptest.NewServer(t, nil, tftptest.Refuse(2, "Access violation"))
	good := tftptest.NewServer(t, map[string][]byte{"f": []byte("ok")})
	s, _ := newTestSet(t, testConfig(refusing.Addr(), good.Addr()), Options{})
	for range 3 {
		if _, got, err := open(t, s, "f"); err != nil || string(got) != "ok" {
			t.Fatalf("%q, %v", got, err)
		}
	}
	st := backendStatus(t, s, refusing.Addr())
	if !st.Up || st.Fails != 0 || !strings.Contains(st.LastError, "Access violation") {
		t.Errorf("refusing backend: %+v", st)
	}
}

func TestNotFoundEndsTheSearch(t *testing.T) {
	a := tftptest.NewServer(t, nil)
	b := tftptest.NewServer(t, map[string][]byte{"f": []byte("b")})
	s, _ := newTestSet(t, testConfig(a.Addr(), b.Addr()), Options{})
	if _, _, err := open(t, s, "f"); !errors.Is(err, ctftp.ErrNotFound) {
		t.Fatalf("err = %v, want not found", err)
	}
	if n := b.TotalRequests(); n != 0 {
		t.Errorf("sibling asked %d times after a 'file not found'", n)
	}
}

// Without hedging, a silent backend (socket open, never answers) costs
// one timeout budget per fetch, the sibling answers, and after max_fails
// it is down and no longer asked.
func TestSilentBackendCostsOneTimeout(t *testing.T) {
	silent := tftptest.NewServer(t, nil, tftptest.Silent())
	good := tftptest.NewServer(t, map[string][]byte{"f": []byte("ok")})
	cfg := testConfig(silent.Addr(), good.Addr())
	cfg.Backend.HedgeMax = 0 // the cost without hedging; TestHedge has it with
	s, set := newTestSet(t, cfg, Options{})
	up := `ctftp_backend_up{subcluster="east",backend="` + silent.Addr() + `"}`
	attempts := cfg.Backend.Retries + 1

	for i := 1; i <= cfg.Backend.MaxFails; i++ {
		if _, got, err := open(t, s, "f"); err != nil || string(got) != "ok" {
			t.Fatalf("fetch %d: %q, %v", i, got, err)
		}
		// One timeout budget each: the request and its retransmissions.
		waitFor(t, "the silent backend's requests", func() bool { return silent.TotalRequests() == i*attempts })
	}
	if st := backendStatus(t, s, silent.Addr()); st.Up || st.Fails != cfg.Backend.MaxFails {
		t.Fatalf("silent backend after %d failures: %+v", cfg.Backend.MaxFails, st)
	}
	if v := metricValue(t, set, up); v != "0" {
		t.Errorf("%s = %q, want 0", up, v)
	}
	if _, got, err := open(t, s, "f"); err != nil || string(got) != "ok" {
		t.Fatalf("fetch after down: %q, %v", got, err)
	}
	errs := `ctftp_backend_fetches_total{subcluster="east",result="error"}`
	if v := metricValue(t, set, errs); v != strconv.Itoa(cfg.Backend.MaxFails) {
		t.Errorf("%s = %s: a down backend was asked before its healthy sibling", errs, v)
	}
}

// A sub-cluster whose backends are all down is not waited on: with
// all_down "fail" every fetch fails at once, counted as skipped; with
// "try" one fetch at a time goes through to the down backends as the
// trial.
func TestAllDown(t *testing.T) {
	tests := []struct {
		policy  string
		asked   bool
		wantIs  error
		skipped string
	}{
		{policy: AllDownTry, asked: true, wantIs: ErrBackendUnavailable, skipped: "0"},
		{policy: AllDownFail, asked: false, wantIs: ErrSubclusterDown, skipped: "1"},
	}
	for _, tc := range tests {
		t.Run(tc.policy, func(t *testing.T) {
			a := tftptest.NewServer(t, nil, tftptest.Silent())
			b := tftptest.NewServer(t, nil, tftptest.Silent())
			cfg := testConfig(a.Addr(), b.Addr())
			cfg.Backend.Retries = 0
			cfg.Backend.MaxFails = 1
			cfg.Backend.AllDown = tc.policy
			s, set := newTestSet(t, cfg, Options{})
			attempts := func() string {
				return metricValue(t, set, `ctftp_backend_fetches_total{subcluster="east",result="error"}`)
			}
			if _, _, err := open(t, s, "f"); !errors.Is(err, ErrBackendUnavailable) {
				t.Fatalf("first fetch: %v", err)
			}
			if n := attempts(); n != "2" {
				t.Fatalf("first fetch made %s attempts, want 2", n)
			}
			start := time.Now()
			_, _, err := open(t, s, "f")
			if !errors.Is(err, tc.wantIs) || !errors.Is(err, ctftp.ErrUnavailable) {
				t.Fatalf("err = %v, want %v", err, tc.wantIs)
			}
			if tc.policy == AllDownFail {
				if !errors.Is(err, ctftp.ErrNotAsked) {
					t.Errorf("err = %v, want ctftp.ErrNotAsked", err)
				}
				t.Logf("failed in %s without asking", time.Since(start))
			}
			if asked := attempts() != "2"; asked != tc.asked {
				t.Errorf("down backends asked: %v, want %v", asked, tc.asked)
			}
			if v := metricValue(t, set, `ctftp_backend_skipped_total{subcluster="east"}`); v != tc.skipped {
				t.Errorf("skipped = %s, want %s", v, tc.skipped)
			}
		})
	}
}

// The cap holds server-side: N concurrent fetches through a delaying
// backend never have more than max_in_flight transfers open at once, and
// all of them are served.
func TestPerBackendCap(t *testing.T) {
	srv := tftptest.NewServer(t, map[string][]byte{"f": []byte("ok")}, tftptest.WithDelay(30*time.Millisecond))
	cfg := testConfig(srv.Addr())
	cfg.Backend.Timeout = 5 * time.Second // no retransmissions: one request per fetch
	cfg.Backend.MaxInFlight = 2
	s, set := newTestSet(t, cfg, Options{})
	const n = 10
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, got, err := open(t, s, "f"); err != nil || string(got) != "ok" {
				t.Errorf("%q, %v", got, err)
			}
		})
	}
	wg.Wait()
	if p := srv.MaxConcurrent(); p < 1 || p > cfg.Backend.MaxInFlight {
		t.Errorf("backend had %d transfers open at once, cap is %d", p, cfg.Backend.MaxInFlight)
	}
	if r := srv.TotalRequests(); r != n {
		t.Errorf("backend saw %d requests, want %d", r, n)
	}
	for _, g := range []string{`ctftp_backend_in_flight{subcluster="east"}`, `ctftp_backend_waiting{subcluster="east"}`} {
		if v := metricValue(t, set, g); v != "0" {
			t.Errorf("%s = %q after all fetches, want 0", g, v)
		}
	}
}

// fakeFetcher answers from functions, counting calls; for tests that
// need exact control over timing.
type fakeFetcher struct {
	mu      sync.Mutex
	fetches map[netip.AddrPort]int
	probes  map[netip.AddrPort]int
	fetchFn func(ctx context.Context, addr netip.AddrPort, name string) ([]byte, error)
	probeFn func(ctx context.Context, addr netip.AddrPort) error
}

func (f *fakeFetcher) fetch(ctx context.Context, addr netip.AddrPort, name string, a attempt) ([]byte, error) {
	f.mu.Lock()
	if f.fetches == nil {
		f.fetches = map[netip.AddrPort]int{}
	}
	f.fetches[addr]++
	f.mu.Unlock()
	return f.fetchFn(ctx, addr, name)
}

func (f *fakeFetcher) probe(ctx context.Context, addr netip.AddrPort, name string, a attempt) error {
	f.mu.Lock()
	if f.probes == nil {
		f.probes = map[netip.AddrPort]int{}
	}
	f.probes[addr]++
	f.mu.Unlock()
	if f.probeFn == nil {
		// Run's trials of down backends probe even with probing off.
		return ErrBackendUnavailable
	}
	return f.probeFn(ctx, addr)
}

func (f *fakeFetcher) count(m *map[netip.AddrPort]int, addr netip.AddrPort) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return (*m)[addr]
}

var (
	addrA = netip.MustParseAddrPort("192.0.2.1:69")
	addrB = netip.MustParseAddrPort("192.0.2.2:69")
)

// A busy primary spills over to an idle sibling instead of queueing; when
// both are full, fetches wait for the primary.
func TestSpillOverToIdleSibling(t *testing.T) {
	release := make(chan struct{})
	ff := &fakeFetcher{fetchFn: func(ctx context.Context, addr netip.AddrPort, name string) ([]byte, error) {
		<-release
		return []byte(addr.String()), nil
	}}
	cfg := testConfig(addrA.String(), addrB.String())
	cfg.Backend.MaxInFlight = 1
	s, set := newTestSet(t, cfg, Options{})
	s.fetcher = ff

	results := make(chan string, 3)
	fetch := func() {
		data, err := s.Fetch(context.Background(), "east", "f")
		if err != nil {
			t.Error(err)
		}
		results <- string(data)
	}
	var wg sync.WaitGroup
	wg.Go(fetch)
	waitFor(t, "the first fetch on a", func() bool { return ff.count(&ff.fetches, addrA) == 1 })
	wg.Go(fetch)
	waitFor(t, "the second fetch on b", func() bool { return ff.count(&ff.fetches, addrB) == 1 })
	wg.Go(fetch)
	waitFor(t, "the third fetch to wait", func() bool {
		return metricValue(t, set, `ctftp_backend_waiting{subcluster="east"}`) == "1"
	})
	if st := backendStatus(t, s, addrA.String()); st.InFlight != 1 {
		t.Errorf("a in flight = %d, want 1", st.InFlight)
	}
	close(release)
	wg.Wait()
	close(results)
	got := map[string]int{}
	for r := range results {
		got[r]++
	}
	// The waiter takes the first slot freed on either (acquireAny).
	if got[addrA.String()] < 1 || got[addrB.String()] < 1 || got[addrA.String()]+got[addrB.String()] != 3 {
		t.Errorf("served by %v, want a and b once each and the waiter by either", got)
	}
}

func TestWaitingForSlotHonoursContext(t *testing.T) {
	release := make(chan struct{})
	ff := &fakeFetcher{fetchFn: func(ctx context.Context, addr netip.AddrPort, name string) ([]byte, error) {
		<-release
		return nil, nil
	}}
	cfg := testConfig(addrA.String())
	cfg.Backend.MaxInFlight = 1
	s, _ := newTestSet(t, cfg, Options{})
	s.fetcher = ff
	var wg sync.WaitGroup
	defer func() {
		close(release)
		wg.Wait()
	}()
	wg.Go(func() { s.Fetch(context.Background(), "east", "f") })
	waitFor(t, "the slot to be taken", func() bool { return ff.count(&ff.fetches, addrA) == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Fetch(ctx, "east", "f")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ctftp.ErrUnavailable) {
		t.Fatalf("err = %v, want cancelled and unavailable", err)
	}
}

// A caller's short deadline shortens the attempt, and the backend is not
// blamed for the caller's hurry.
func TestCallerDeadline(t *testing.T) {
	silent := tftptest.NewServer(t, nil, tftptest.Silent())
	cfg := testConfig(silent.Addr())
	cfg.Backend.Timeout = time.Hour
	cfg.Backend.MaxFails = 1
	s, _ := newTestSet(t, cfg, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := s.Fetch(ctx, "east", "f")
	if !errors.Is(err, ctftp.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if st := backendStatus(t, s, silent.Addr()); !st.Up || st.Fails != 0 {
		t.Errorf("backend blamed for the caller's deadline: %+v", st)
	}
	// Every retransmission fits the deadline.
	waitFor(t, "the retransmission", func() bool { return silent.TotalRequests() == cfg.Backend.Retries+1 })
}

// Under a short deadline a silent first backend does not eat the time:
// the sibling is asked after the hedge delay and answers, and the silent
// attempt is cancelled and blamed (it sent nothing meanwhile).
func TestCallerDeadlineLeavesTimeForSibling(t *testing.T) {
	silent := tftptest.NewServer(t, nil, tftptest.Silent())
	good := tftptest.NewServer(t, map[string][]byte{"f": []byte("ok")})
	cfg := testConfig(silent.Addr(), good.Addr())
	cfg.Backend.Timeout = time.Hour
	s, set := newTestSet(t, cfg, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if got, err := s.Fetch(ctx, "east", "f"); err != nil || string(got) != "ok" {
		t.Fatalf("%q, %v", got, err)
	}
	// Asked, then cancelled at the hedge's win (1 s, no answers seen
	// yet), usually before its retransmission at 1.5 s.
	if n := silent.TotalRequests(); n < 1 || n > cfg.Backend.Retries+1 {
		t.Errorf("silent backend asked %d times, want 1 or 2", n)
	}
	if v := metricValue(t, set, `ctftp_backend_hedges_total{subcluster="east"}`); v != "1" {
		t.Errorf("hedges = %s, want 1", v)
	}
	if st := backendStatus(t, s, silent.Addr()); st.Fails != 1 {
		t.Errorf("the silent loser: %+v, want one failure", st)
	}
}

// Without hedging, the share of the deadline is what protects the
// sibling: each backend left gets an equal part.
func TestCallerDeadlineSharedWithoutHedging(t *testing.T) {
	silent := tftptest.NewServer(t, nil, tftptest.Silent())
	good := tftptest.NewServer(t, map[string][]byte{"f": []byte("ok")})
	cfg := testConfig(silent.Addr(), good.Addr())
	cfg.Backend.Timeout = time.Hour
	cfg.Backend.HedgeMax = 0
	s, _ := newTestSet(t, cfg, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if got, err := s.Fetch(ctx, "east", "f"); err != nil || string(got) != "ok" {
		t.Fatalf("%q, %v", got, err)
	}
	waitFor(t, "the silent backend's requests", func() bool { return silent.TotalRequests() == cfg.Backend.Retries+1 })
}

func TestHealthComesBack(t *testing.T) {
	var mu sync.Mutex
	dead := true
	ff := &fakeFetcher{fetchFn: func(ctx context.Context, addr netip.AddrPort, name string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if dead {
			return nil, ErrBackendUnavailable
		}
		return []byte("ok"), nil
	}}
	cfg := testConfig(addrA.String())
	cfg.Backend.AllDown = AllDownTry
	s, _ := newTestSet(t, cfg, Options{})
	s.fetcher = ff
	for range cfg.Backend.MaxFails {
		s.Fetch(context.Background(), "east", "f")
	}
	if st := backendStatus(t, s, addrA.String()); st.Up {
		t.Fatalf("not down: %+v", st)
	}
	mu.Lock()
	dead = false
	mu.Unlock()
	// all_down "try": the only backend is still tried, and its answer
	// brings it back.
	if got, err := s.Fetch(context.Background(), "east", "f"); err != nil || string(got) != "ok" {
		t.Fatalf("%q, %v", got, err)
	}
	if st := backendStatus(t, s, addrA.String()); !st.Up || st.Fails != 0 {
		t.Errorf("after an answer: %+v", st)
	}
}

func TestProbeAll(t *testing.T) {
	withFile := tftptest.NewServer(t, map[string][]byte{"ITLFile.tlv": []byte("itl")})
	noFile := tftptest.NewServer(t, nil)
	silent := tftptest.NewServer(t, nil, tftptest.Silent())
	cfg := testConfig(withFile.Addr(), noFile.Addr(), silent.Addr())
	cfg.Backend.MaxFails = 1
	s, set := newTestSet(t, cfg, Options{})
	// Mark the file-less backend down first: a probe answered by an ERROR
	// packet must bring it back.
	sc := s.byName["east"]
	b := (*sc.backends.Load())[1]
	s.failed(sc, b, ErrBackendUnavailable, false)
	if backendStatus(t, s, noFile.Addr()).Up {
		t.Fatal("setup: not down")
	}

	res := s.ProbeAll(context.Background())
	if len(res) != 3 {
		t.Fatalf("%d results: %+v", len(res), res)
	}
	want := []struct {
		addr  string
		alive bool
		code  int
	}{{withFile.Addr(), true, -1}, {noFile.Addr(), true, 1}, {silent.Addr(), false, -1}}
	for i, w := range want {
		r := res[i]
		if r.Backend != w.addr || r.Source != w.addr || r.Subcluster != "east" || r.Alive != w.alive {
			t.Errorf("result %d = %+v, want %s alive=%v", i, r, w.addr, w.alive)
		}
		var te *TFTPError
		if w.code >= 0 && (!errors.As(r.Err, &te) || int(te.Code) != w.code) {
			t.Errorf("result %d err = %v, want TFTP error %d", i, r.Err, w.code)
		}
	}
	for _, w := range want {
		if st := backendStatus(t, s, w.addr); st.Up != w.alive {
			t.Errorf("%s up = %v after the probe, want %v", w.addr, st.Up, w.alive)
		}
	}
	if v := metricValue(t, set, `ctftp_backend_probes_total{subcluster="east",result="alive"}`); v != "2" {
		t.Errorf("alive probes = %q, want 2", v)
	}
	if v := metricValue(t, set, `ctftp_backend_probes_total{subcluster="east",result="dead"}`); v != "1" {
		t.Errorf("dead probes = %q, want 1", v)
	}
}

func TestLoopProtection(t *testing.T) {
	tests := []struct {
		name    string
		self    []string
		backend string
		loop    bool
	}{
		{name: "exact listen address", self: []string{"127.0.0.1:69"}, backend: "127.0.0.1:69", loop: true},
		{name: "wildcard IPv4 covers loopback", self: []string{"0.0.0.0:6969"}, backend: "127.0.0.1:6969", loop: true},
		{name: "wildcard covers all of 127/8", self: []string{"0.0.0.0:6969"}, backend: "127.1.2.3:6969", loop: true},
		{name: "wildcard IPv6 covers ::1", self: []string{"[::]:69"}, backend: "[::1]:69", loop: true},
		{name: "IPv4-mapped listen address", self: []string{"[::ffff:127.0.0.1]:69"}, backend: "127.0.0.1:69", loop: true},
		{name: "other port", self: []string{"0.0.0.0:69"}, backend: "127.0.0.1:1069", loop: false},
		{name: "other address", self: []string{"127.0.0.1:69"}, backend: "127.0.0.2:69", loop: false},
		{name: "no self addresses", backend: "127.0.0.1:69", loop: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var self []netip.AddrPort
			for _, a := range tc.self {
				self = append(self, netip.MustParseAddrPort(a))
			}
			_, err := New(testConfig(tc.backend), Options{SelfAddrs: self})
			if got := errors.Is(err, ErrLoop); got != tc.loop {
				t.Fatalf("err = %v, loop %v, want %v", err, got, tc.loop)
			}
			if tc.loop && !strings.Contains(err.Error(), "subclusters[0].backends[0]") {
				t.Errorf("err %q does not name the key", err)
			}
		})
	}
}

func TestSelfSetInterfaceAddresses(t *testing.T) {
	ifaces := func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("10.9.8.7"), netip.MustParseAddr("fe80::1%eth0")}, nil
	}
	s, err := newSelfSet([]netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:69")}, ifaces)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"10.9.8.7:69": true, "[fe80::1]:69": true, "10.9.8.7:70": false, "10.9.8.6:69": false} {
		if got := s.contains(netip.MustParseAddrPort(addr)); got != want {
			t.Errorf("contains(%s) = %v, want %v", addr, got, want)
		}
	}
}

// A name that resolves to the gateway itself is left out of service and
// reported, not fetched from.
func TestResolvedLoopRefused(t *testing.T) {
	r := &fakeResolver{hosts: map[string]hostAnswer{"tftp.east.test": {addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, ttl: time.Minute}}}
	s, _ := newTestSet(t, testConfig("tftp.east.test:6969"), Options{
		Resolver:  r,
		SelfAddrs: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:6969")},
	})
	ff := &fakeFetcher{fetchFn: func(context.Context, netip.AddrPort, string) ([]byte, error) { return []byte("loop!"), nil }}
	s.fetcher = ff
	if err := s.Resolve(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := s.Fetch(context.Background(), "east", "f")
	if !errors.Is(err, ErrNoBackends) || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("err = %v, want no backends (loop)", err)
	}
	st := s.Status()[0].Backends
	if len(st) != 1 || st[0].Address != "127.0.0.1:6969" || st[0].Up || !strings.Contains(st[0].LastError, "own listen") {
		t.Errorf("status %+v", st)
	}
	res := s.ProbeAll(context.Background())
	if len(res) != 1 || !errors.Is(res[0].Err, ErrLoop) || res[0].Alive {
		t.Errorf("probe %+v", res)
	}
	if n := ff.count(&ff.fetches, netip.MustParseAddrPort("127.0.0.1:6969")); n != 0 {
		t.Errorf("fetched from ourselves %d times", n)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := testConfig()
	_, err := New(cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "subclusters[0].backends: at least one") {
		t.Fatalf("err = %v", err)
	}
}

func TestSubclusterOverrides(t *testing.T) {
	cfg := testConfig(addrA.String())
	cfg.Subclusters[0].Timeout = 7 * time.Second
	cfg.Subclusters[0].Retries = 4
	cfg.Subclusters[0].MaxInFlight = 3
	s, _ := newTestSet(t, cfg, Options{})
	sc := s.byName["east"]
	if sc.att.timeout != 7*time.Second || sc.att.retries != 4 || sc.maxInFlight != 3 || (*sc.backends.Load())[0].slots.cap != 3 {
		t.Errorf("overrides not applied: %+v, cap %d", sc.att, sc.maxInFlight)
	}
	cfg.Subclusters[0] = SubclusterConfig{Name: "east", Version: "auto", Backends: []string{addrA.String()}}
	s, _ = newTestSet(t, cfg, Options{})
	sc = s.byName["east"]
	if sc.att.timeout != cfg.Backend.Timeout || sc.att.retries != cfg.Backend.Retries || sc.maxInFlight != cfg.Backend.MaxInFlight {
		t.Errorf("defaults not applied: %+v, cap %d", sc.att, sc.maxInFlight)
	}
}

// A real tftpd-hpa as a sub-cluster's first backend: files it serves come
// from it; a file it refuses (not world-readable: ERROR 2) comes from the
// sibling; a file it lacks is "not found" without asking the sibling.
func TestOpenWithTFTPD(t *testing.T) {
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	sf := newSignedFiles(t)
	sibConfig := slices.Clone(sf.cnf)
	for name, mode := range map[string]os.FileMode{"ITLSEP001122334455.tlv": 0o644, "SEP001122334455.cnf.xml.sgn": 0o600} {
		p := filepath.Join(root, name)
		content := sf.itl
		if strings.HasSuffix(name, ".sgn") {
			content = sf.cnf
		}
		if err := os.WriteFile(p, content, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	tftpd := tftptest.StartTFTPD(t, root)
	sibling := tftptest.NewServer(t, map[string][]byte{"SEP001122334455.cnf.xml.sgn": sibConfig})
	cfg := testConfig(tftpd, sibling.Addr())
	cfg.Backend.Timeout = time.Second
	s, set := newTestSet(t, cfg, Options{})

	tests := []struct {
		file, want, from string
		notFound         bool
	}{
		{file: "ITLSEP001122334455.tlv", want: string(sf.itl), from: tftpd},
		{file: "SEP001122334455.cnf.xml.sgn", want: string(sibConfig), from: sibling.Addr()},
		{file: "CTLSEP001122334455.tlv", notFound: true},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			f, got, err := open(t, s, tc.file)
			if tc.notFound {
				if !errors.Is(err, ctftp.ErrNotFound) {
					t.Fatalf("err = %v, want not found", err)
				}
				return
			}
			if err != nil || string(got) != tc.want || f.Backend != tc.from {
				t.Fatalf("got %d bytes from %v, %v; want %d bytes from %s", len(got), f, err, len(tc.want), tc.from)
			}
		})
	}
	if n := sibling.TotalRequests(); n != 1 {
		t.Errorf("sibling asked %d times, want once (for the refused file)", n)
	}
	if v := metricValue(t, set, `ctftp_backend_fetches_total{subcluster="east",result="refused"}`); v != "1" {
		t.Errorf("refused = %q, want 1", v)
	}
	if st := backendStatus(t, s, tftpd); !st.Up || !strings.Contains(st.LastError, "global read permissions") {
		t.Errorf("tftpd status %+v", st)
	}
}
