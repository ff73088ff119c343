package routing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
)

// answerSpec is how the fake next Source answers for one sub-cluster,
// or for one file in it (key "sub-cluster name").
type answerSpec struct {
	delay time.Duration // after which it answers
	err   error         // nil: a file whose body is the sub-cluster's name
	hang  bool          // never answers; returns only when cancelled
}

var (
	found       = func(d time.Duration) answerSpec { return answerSpec{delay: d} }
	notFound    = func(d time.Duration) answerSpec { return answerSpec{delay: d, err: ctftp.ErrNotFound} }
	unavailable = func(d time.Duration) answerSpec { return answerSpec{delay: d, err: ctftp.ErrUnavailable} }
	hang        = answerSpec{hang: true}
)

// trackedBody records whether it was closed.
type trackedBody struct {
	io.Reader
	subcluster string
	closes     atomic.Int32
}

func (b *trackedBody) Close() error {
	b.closes.Add(1)
	return nil
}

// fakeNext stands for the cache in front of the backends: it answers
// per sub-cluster as told, honours cancellation, and records calls,
// bodies and how many calls are in flight.
type fakeNext struct {
	inflight atomic.Int32

	mu     sync.Mutex
	specs  map[string]answerSpec
	calls  []string
	bodies []*trackedBody
}

func newFakeNext(specs map[string]answerSpec) *fakeNext {
	return &fakeNext{specs: specs}
}

func (n *fakeNext) set(sc string, s answerSpec) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.specs[sc] = s
}

func (n *fakeNext) Open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	n.inflight.Add(1)
	defer n.inflight.Add(-1)
	n.mu.Lock()
	s, ok := n.specs[req.Subcluster+" "+req.Name] // a per-file answer first
	if !ok {
		s, ok = n.specs[req.Subcluster]
	}
	n.calls = append(n.calls, req.Subcluster)
	n.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("fake: no answer for sub-cluster %q", req.Subcluster)
	}
	var wait <-chan time.Time
	if !s.hang {
		t := time.NewTimer(s.delay)
		defer t.Stop()
		wait = t.C
	}
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, fmt.Errorf("fake %s: %w", req.Subcluster, ctx.Err())
	}
	if s.err != nil {
		return nil, fmt.Errorf("fake %s: %w", req.Subcluster, s.err)
	}
	b := &trackedBody{Reader: strings.NewReader(req.Subcluster + ":" + req.Name), subcluster: req.Subcluster}
	n.mu.Lock()
	n.bodies = append(n.bodies, b)
	n.mu.Unlock()
	return &ctftp.File{Body: b, Size: -1, Origin: ctftp.OriginBackend}, nil
}

func (n *fakeNext) takeCalls() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.calls
	n.calls = nil
	return c
}

// checkBodies verifies that every body but the one returned was closed
// exactly once, and the returned one not at all.
func (n *fakeNext) checkBodies(t *testing.T, returned *ctftp.File) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, b := range n.bodies {
		want := int32(1)
		if returned != nil && returned.Body == io.ReadCloser(b) {
			want = 0
		}
		if got := b.closes.Load(); got != want {
			t.Errorf("body from %s closed %d times, want %d", b.subcluster, got, want)
		}
	}
}

type harness struct {
	r    *Router
	next *fakeNext
	src  ctftp.Source
	set  *metrics.Set
	log  *bytes.Buffer
}

func newHarness(t *testing.T, cfg Config, specs map[string]answerSpec) *harness {
	t.Helper()
	h := &harness{next: newFakeNext(specs), set: metrics.NewSet(), log: new(bytes.Buffer)}
	opts := Options{Logger: slog.New(slog.NewTextHandler(h.log, nil)), Metrics: h.set}
	h.r = newTestRouter(t, cfg, opts)
	h.src = NewForwarder(h.r, h.next, opts)
	return h
}

// open runs one request and checks what must hold after every Open:
// nothing in flight below, every unreturned body closed.
func (h *harness) open(t *testing.T, name string) (*ctftp.File, error, time.Duration) {
	t.Helper()
	start := time.Now()
	f, err := h.src.Open(t.Context(), ctftp.Request{Name: name, Mode: "octet"})
	elapsed := time.Since(start)
	if n := h.next.inflight.Load(); n != 0 {
		t.Errorf("Open returned with %d calls to next still running", n)
	}
	h.next.checkBodies(t, f)
	if (f == nil) == (err == nil) {
		t.Errorf("Open = %v, %v: want exactly one of file and error", f, err)
	}
	return f, err, elapsed
}

func (h *harness) counter(name string) uint64 { return h.set.GetOrCreateCounter(name).Get() }

// servedBy reads the file and returns the sub-cluster it came from,
// checking the File says the same.
func servedBy(t *testing.T, f *ctftp.File, name string) string {
	t.Helper()
	defer f.Body.Close()
	b, err := io.ReadAll(f.Body)
	if err != nil {
		t.Fatal(err)
	}
	sc, gotName, _ := strings.Cut(string(b), ":")
	if gotName != name {
		t.Errorf("body is for %q, want %q", gotName, name)
	}
	if f.Subcluster != sc {
		t.Errorf("File.Subcluster = %q, but the body came from %q", f.Subcluster, sc)
	}
	return sc
}

const macFile = "SEP0011215A1AE3.cnf.xml.sgn"

func TestParallelFanOut(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name      string
		file      string
		grace     time.Duration
		east      answerSpec
		west      answerSpec
		south     answerSpec
		want      string // winning sub-cluster, "" for an error
		wantErr   error
		notErr    error
		elapsed   time.Duration
		wantDupes uint64
	}{
		{name: "higher priority within grace wins", file: macFile, grace: 20 * ms,
			east: found(15 * ms), west: found(1 * ms), south: notFound(1 * ms),
			want: "east", elapsed: 15 * ms, wantDupes: 1},
		{name: "higher priority beyond grace loses", file: macFile, grace: 20 * ms,
			east: found(50 * ms), west: found(1 * ms), south: notFound(1 * ms),
			want: "west", elapsed: 21 * ms},
		{name: "grace zero takes the first positive", file: macFile, grace: 0,
			east: found(15 * ms), west: found(1 * ms), south: notFound(1 * ms),
			want: "west", elapsed: 1 * ms},
		{name: "not found above ends the wait early", file: macFile, grace: 20 * ms,
			east: notFound(5 * ms), west: found(1 * ms), south: hang,
			want: "west", elapsed: 5 * ms},
		{name: "failure above ends the wait early", file: macFile, grace: 20 * ms,
			east: unavailable(5 * ms), west: found(1 * ms), south: found(2 * ms),
			want: "west", elapsed: 5 * ms, wantDupes: 1},
		{name: "hung higher priority costs only grace", file: macFile, grace: 20 * ms,
			east: hang, west: found(3 * ms), south: notFound(1 * ms),
			want: "west", elapsed: 23 * ms},
		{name: "slow lower priority does not delay the answer", file: macFile, grace: 20 * ms,
			east: found(2 * ms), west: unavailable(5 * time.Second), south: hang,
			want: "east", elapsed: 2 * ms},
		{name: "highest priority first is served at once", file: macFile, grace: 20 * ms,
			east: found(1 * ms), west: found(2 * ms), south: found(3 * ms),
			want: "east", elapsed: 1 * ms},
		{name: "three-way duplicate", file: macFile, grace: 20 * ms,
			east: found(3 * ms), west: found(1 * ms), south: found(2 * ms),
			want: "east", elapsed: 3 * ms, wantDupes: 1},
		{name: "shared file in every sub-cluster is no duplicate", file: "SIP88xx.12-8-1-0001-455.loads", grace: 20 * ms,
			east: found(3 * ms), west: found(1 * ms), south: found(2 * ms),
			want: "east", elapsed: 3 * ms},
		{name: "not found anywhere answers when the last says so", file: macFile, grace: 20 * ms,
			east: notFound(1 * ms), west: notFound(7 * ms), south: notFound(3 * ms),
			wantErr: ctftp.ErrNotFound, notErr: ctftp.ErrUnavailable, elapsed: 7 * ms},
		{name: "a sub-cluster timing out waits its timeout, then is an outage", file: macFile, grace: 20 * ms,
			east: notFound(1 * ms), west: unavailable(2 * time.Second), south: notFound(3 * ms),
			wantErr: ctftp.ErrUnavailable, notErr: ctftp.ErrNotFound, elapsed: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := DefaultConfig()
				cfg.Grace = tt.grace
				h := newHarness(t, cfg, map[string]answerSpec{"east": tt.east, "west": tt.west, "south": tt.south})
				f, err, elapsed := h.open(t, tt.file)
				if tt.want != "" {
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					if got := servedBy(t, f, tt.file); got != tt.want {
						t.Errorf("served by %s, want %s", got, tt.want)
					}
				} else {
					if !errors.Is(err, tt.wantErr) || errors.Is(err, tt.notErr) {
						t.Errorf("Open error = %v; want errors.Is %v and not %v", err, tt.wantErr, tt.notErr)
					}
				}
				if elapsed != tt.elapsed {
					t.Errorf("answered after %v, want %v", elapsed, tt.elapsed)
				}
				if got := h.counter(metricDuplicates); got != tt.wantDupes {
					t.Errorf("%s = %d, want %d", metricDuplicates, got, tt.wantDupes)
				}
				if calls := h.next.takeCalls(); len(calls) != 3 {
					t.Errorf("next called for %v, want every sub-cluster once", calls)
				}
			})
		})
	}
}

func TestSequentialFanOut(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name      string
		east      answerSpec
		west      answerSpec
		south     answerSpec
		want      string
		wantErr   error
		notErr    error
		wantCalls []string
		elapsed   time.Duration
	}{
		{name: "stops at the first positive", east: notFound(1 * ms), west: found(2 * ms), south: found(1 * ms),
			want: "west", wantCalls: []string{"east", "west"}, elapsed: 3 * ms},
		{name: "priority over speed", east: found(10 * ms), west: found(1 * ms), south: found(1 * ms),
			want: "east", wantCalls: []string{"east"}, elapsed: 10 * ms},
		{name: "a failure moves on like an alternate file location", east: unavailable(5 * ms), west: notFound(1 * ms), south: found(1 * ms),
			want: "south", wantCalls: []string{"east", "west", "south"}, elapsed: 7 * ms},
		{name: "not found anywhere", east: notFound(1 * ms), west: notFound(1 * ms), south: notFound(1 * ms),
			wantErr: ctftp.ErrNotFound, notErr: ctftp.ErrUnavailable, wantCalls: []string{"east", "west", "south"}, elapsed: 3 * ms},
		{name: "outage is not not-found", east: notFound(1 * ms), west: unavailable(1 * ms), south: notFound(1 * ms),
			wantErr: ctftp.ErrUnavailable, notErr: ctftp.ErrNotFound, wantCalls: []string{"east", "west", "south"}, elapsed: 3 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := DefaultConfig()
				cfg.Strategy = StrategySequential
				h := newHarness(t, cfg, map[string]answerSpec{"east": tt.east, "west": tt.west, "south": tt.south})
				f, err, elapsed := h.open(t, macFile)
				if tt.want != "" {
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					if got := servedBy(t, f, macFile); got != tt.want {
						t.Errorf("served by %s, want %s", got, tt.want)
					}
				} else if !errors.Is(err, tt.wantErr) || errors.Is(err, tt.notErr) {
					t.Errorf("Open error = %v; want errors.Is %v and not %v", err, tt.wantErr, tt.notErr)
				}
				if calls := h.next.takeCalls(); !slices.Equal(calls, tt.wantCalls) {
					t.Errorf("calls = %v, want %v", calls, tt.wantCalls)
				}
				if elapsed != tt.elapsed {
					t.Errorf("answered after %v, want %v", elapsed, tt.elapsed)
				}
			})
		})
	}
}

func TestLearnedRouteLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ms := time.Millisecond
		h := newHarness(t, DefaultConfig(), map[string]answerSpec{
			"east": notFound(1 * ms), "west": found(2 * ms), "south": notFound(1 * ms),
		})

		// 1. Unknown phone: fan-out, west answers, the route is learned.
		f, err, _ := h.open(t, macFile)
		if err != nil {
			t.Fatal(err)
		}
		servedBy(t, f, macFile)
		if calls := h.next.takeCalls(); len(calls) != 3 {
			t.Fatalf("first request asked %v, want a fan-out", calls)
		}
		if d := h.r.Route(ctftp.Request{Name: "ITLSEP0011215A1AE3.tlv"}); d.Kind != Learned || d.Subclusters[0] != "west" {
			t.Fatalf("after a fan-out Route = %+v, want learned -> west", d)
		}

		// 2. Next file of the same phone goes straight to west.
		f, err, _ = h.open(t, "ITLSEP0011215A1AE3.tlv")
		if err != nil {
			t.Fatal(err)
		}
		servedBy(t, f, "ITLSEP0011215A1AE3.tlv")
		if calls := h.next.takeCalls(); !slices.Equal(calls, []string{"west"}) {
			t.Fatalf("learned request asked %v, want only west", calls)
		}

		// 3. West is down: the outage is returned, the route kept, and no
		// other sub-cluster is asked to stand in for the phone's own.
		h.next.set("west", unavailable(1*ms))
		_, err, _ = h.open(t, macFile)
		if !errors.Is(err, ctftp.ErrUnavailable) || errors.Is(err, ctftp.ErrNotFound) {
			t.Fatalf("learned sub-cluster down: err = %v, want unavailable", err)
		}
		if calls := h.next.takeCalls(); !slices.Equal(calls, []string{"west"}) {
			t.Fatalf("learned sub-cluster down: asked %v, want only west", calls)
		}
		if h.r.Learned() != 1 {
			t.Fatalf("an outage forgot the learned route")
		}

		// 4. A file the phone's own sub-cluster does not have, as
		// CTLSEP<MAC>.tlv on a cluster without per-device CTLs: west says
		// not found, the others are asked, nobody has it, and the route
		// stays, so the rest of the boot still goes straight to west.
		h.next.set("west", found(1*ms))
		const ctlFile = "CTLSEP0011215A1AE3.tlv"
		h.next.set("west "+ctlFile, notFound(1*ms))
		_, err, _ = h.open(t, ctlFile)
		if !errors.Is(err, ctftp.ErrNotFound) || errors.Is(err, ctftp.ErrUnavailable) {
			t.Fatalf("missing everywhere: err = %v, want not found", err)
		}
		calls := h.next.takeCalls()
		if len(calls) != 3 || calls[0] != "west" {
			t.Fatalf("missing file: asked %v, want west, then the others", calls)
		}
		if d := h.r.Route(ctftp.Request{Name: macFile}); d.Kind != Learned || d.Subclusters[0] != "west" {
			t.Fatalf("after a file missing everywhere Route = %+v, want learned -> west still", d)
		}

		// 5. The phone moved to south: west says not found, the others
		// are fanned out to, and south replaces the route.
		h.next.set("west", notFound(1*ms))
		h.next.set("south", found(1*ms))
		f, err, _ = h.open(t, macFile)
		if err != nil {
			t.Fatal(err)
		}
		if got := servedBy(t, f, macFile); got != "south" {
			t.Fatalf("served by %s, want south", got)
		}
		calls = h.next.takeCalls()
		if len(calls) != 3 || calls[0] != "west" || !slices.Contains(calls, "east") || !slices.Contains(calls, "south") {
			t.Fatalf("moved phone: asked %v, want west, then east and south", calls)
		}
		if d := h.r.Route(ctftp.Request{Name: macFile}); d.Kind != Learned || d.Subclusters[0] != "south" {
			t.Fatalf("after the move Route = %+v, want learned -> south", d)
		}
		if !strings.Contains(h.log.String(), "device moved") {
			t.Errorf("the move was not logged: %s", h.log.String())
		}
		if n := h.r.Learned(); n != 1 {
			t.Fatalf("Learned() = %d after the move, want 1", n)
		}

		want := map[Kind]uint64{RuleMatch: 0, Learned: 4, FanOut: 3}
		for k, n := range want {
			if got := h.counter(fmtKind(k)); got != n {
				t.Errorf("%s = %d, want %d", fmtKind(k), got, n)
			}
		}
	})
}

func TestRuleMatchIsFinal(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		east    answerSpec
		wantErr error
		notErr  []error
	}{
		{"found", found(1 * ms), nil, nil},
		{"not found is final", notFound(1 * ms), ctftp.ErrNotFound, []error{ctftp.ErrUnavailable}},
		{"outage", unavailable(1 * ms), ctftp.ErrUnavailable, []error{ctftp.ErrNotFound}},
		{"refusal passes through", answerSpec{delay: ms, err: ctftp.ErrDenied}, ctftp.ErrDenied, []error{ctftp.ErrNotFound, ctftp.ErrUnavailable}},
		{"unknown error is an outage", answerSpec{delay: ms, err: io.ErrUnexpectedEOF}, ctftp.ErrUnavailable, []error{ctftp.ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := DefaultConfig()
				cfg.Rules = []Rule{{MACPrefix: "001121", Subcluster: "east"}}
				h := newHarness(t, cfg, map[string]answerSpec{"east": tt.east, "west": found(ms), "south": found(ms)})
				f, err, _ := h.open(t, macFile)
				if tt.wantErr == nil {
					if err != nil {
						t.Fatal(err)
					}
					servedBy(t, f, macFile)
				} else if !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want errors.Is %v", err, tt.wantErr)
				}
				for _, e := range tt.notErr {
					if errors.Is(err, e) {
						t.Errorf("err = %v, must not be %v", err, e)
					}
				}
				if calls := h.next.takeCalls(); !slices.Equal(calls, []string{"east"}) {
					t.Errorf("asked %v, want only the rule's east", calls)
				}
				if h.r.Learned() != 0 {
					t.Errorf("a rule match was learned")
				}
				if got := h.counter(fmtKind(RuleMatch)); got != 1 {
					t.Errorf("rule decisions = %d, want 1", got)
				}
			})
		})
	}
}

func TestFanOutErrors(t *testing.T) {
	ms := time.Millisecond
	errBroken := errors.New("backend sent garbage")
	tests := []struct {
		name   string
		specs  map[string]answerSpec
		is     []error
		isNot  []error
		inText []string
	}{
		{"all not found", map[string]answerSpec{"east": notFound(ms), "west": notFound(ms), "south": notFound(ms)},
			[]error{ctftp.ErrNotFound}, []error{ctftp.ErrUnavailable}, []string{"not in east, west, south"}},
		{"one outage", map[string]answerSpec{"east": notFound(ms), "west": unavailable(ms), "south": notFound(ms)},
			[]error{ctftp.ErrUnavailable}, []error{ctftp.ErrNotFound}, []string{"west: fake west: temporarily unavailable", "east: fake east: file not found"}},
		{"unknown failure is wrapped", map[string]answerSpec{"east": notFound(ms), "west": {delay: ms, err: errBroken}, "south": notFound(ms)},
			[]error{ctftp.ErrUnavailable, errBroken}, []error{ctftp.ErrNotFound}, []string{"backend sent garbage"}},
		{"a refusal does not decide a fan-out", map[string]answerSpec{"east": {delay: ms, err: ctftp.ErrDenied}, "west": notFound(ms), "south": notFound(ms)},
			[]error{ctftp.ErrUnavailable}, []error{ctftp.ErrNotFound, ctftp.ErrDenied}, []string{"access violation"}},
	}
	for _, strategy := range []string{StrategyParallel, StrategySequential} {
		for _, tt := range tests {
			t.Run(strategy+"/"+tt.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					cfg := DefaultConfig()
					cfg.Strategy = strategy
					h := newHarness(t, cfg, tt.specs)
					_, err, _ := h.open(t, macFile)
					for _, e := range tt.is {
						if !errors.Is(err, e) {
							t.Errorf("err = %v, want errors.Is %v", err, e)
						}
					}
					for _, e := range tt.isNot {
						if errors.Is(err, e) {
							t.Errorf("err = %v, must not be %v", err, e)
						}
					}
					for _, s := range tt.inText {
						if err == nil || !strings.Contains(err.Error(), s) {
							t.Errorf("err = %v, want it to mention %q", err, s)
						}
					}
				})
			})
		}
	}
}

func TestClientCancels(t *testing.T) {
	for _, strategy := range []string{StrategyParallel, StrategySequential} {
		t.Run(strategy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := DefaultConfig()
				cfg.Strategy = strategy
				h := newHarness(t, cfg, map[string]answerSpec{"east": hang, "west": hang, "south": hang})
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				defer cancel()
				start := time.Now()
				f, err := h.src.Open(ctx, ctftp.Request{Name: macFile})
				if f != nil || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ctftp.ErrNotFound) {
					t.Fatalf("Open = %v, %v; want a deadline error that is not not-found", f, err)
				}
				if !errors.Is(err, ctftp.ErrUnavailable) {
					t.Errorf("err = %v, want it to wrap ErrUnavailable too", err)
				}
				if d := time.Since(start); d != time.Second {
					t.Errorf("gave up after %v, want the client's 1s", d)
				}
				if n := h.next.inflight.Load(); n != 0 {
					t.Errorf("%d calls still in flight", n)
				}
				if strategy == StrategySequential {
					if calls := h.next.takeCalls(); !slices.Equal(calls, []string{"east"}) {
						t.Errorf("asked %v after the client left, want only east", calls)
					}
				}
			})
		})
	}
}

func TestBrokenNextContract(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		body := &trackedBody{Reader: strings.NewReader("x")}
		next := ctftp.SourceFunc(func(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
			switch req.Subcluster {
			case "east":
				return nil, nil
			case "west":
				return &ctftp.File{Body: body}, errors.New("half an answer")
			}
			return &ctftp.File{}, nil
		})
		r := newTestRouter(t, DefaultConfig(), Options{})
		_, err := NewForwarder(r, next, Options{}).Open(t.Context(), ctftp.Request{Name: macFile})
		if !errors.Is(err, ctftp.ErrUnavailable) || !errors.Is(err, errNoFile) {
			t.Errorf("err = %v, want unavailable because of a missing file", err)
		}
		if body.closes.Load() != 1 {
			t.Errorf("body returned with an error closed %d times, want 1", body.closes.Load())
		}
	})
}

func TestDuplicateDeviceLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ms := time.Millisecond
		h := newHarness(t, DefaultConfig(), map[string]answerSpec{"east": found(3 * ms), "west": found(1 * ms), "south": found(2 * ms)})
		f, err, _ := h.open(t, macFile)
		if err != nil {
			t.Fatal(err)
		}
		servedBy(t, f, macFile)
		log := h.log.String()
		for _, want := range []string{"level=WARN", "mac=0011215A1AE3", "served_by=east", "also_in=\"[west south]\""} {
			if !strings.Contains(log, want) {
				t.Errorf("log %q does not contain %q", log, want)
			}
		}
	})
}

func TestFanOutMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ms := time.Millisecond
		h := newHarness(t, DefaultConfig(), map[string]answerSpec{"east": notFound(ms), "west": found(4 * ms), "south": notFound(ms)})
		for range 3 {
			f, err, _ := h.open(t, "ITLFile.tlv")
			if err != nil {
				t.Fatal(err)
			}
			f.Body.Close()
		}
		var out bytes.Buffer
		h.set.WritePrometheus(&out)
		text := out.String()
		for _, want := range []string{
			`ctftp_routing_decisions_total{kind="fanout"} 3`,
			`ctftp_routing_decisions_total{kind="rule"} 0`,
			`ctftp_routing_decisions_total{kind="learned"} 0`,
			`ctftp_routing_duplicate_devices_total 0`,
			`ctftp_routing_learned_routes 0`,
			`ctftp_routing_fanout_duration_seconds_count 3`,
		} {
			if !strings.Contains(text, want+"\n") {
				t.Errorf("metrics lack %q:\n%s", want, text)
			}
		}
	})
}

func TestConcurrentOpens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ms := time.Millisecond
		h := newHarness(t, DefaultConfig(), map[string]answerSpec{"east": notFound(2 * ms), "west": found(3 * ms), "south": found(1 * ms)})
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				name := fmt.Sprintf("SEP0011215A%04X.cnf.xml", i%10)
				f, err := h.src.Open(t.Context(), ctftp.Request{Name: name})
				if err != nil {
					t.Error(err)
					return
				}
				if got := servedBy(t, f, name); got != "west" {
					t.Errorf("%s served by %s, want west", name, got)
				}
			})
		}
		wg.Wait()
		if n := h.r.Learned(); n != 10 {
			t.Errorf("Learned() = %d, want 10 phones", n)
		}
		h.next.checkBodies(t, nil)
	})
}

// A sub-cluster known down (ctftp.ErrNotAsked) and live ones that all say
// "not found": a phone's own trust list is "not found" (the phone moves
// on to CTLFile.tlv), anything else an outage (error 0, the phone
// retries); both are counted.
func TestFanOutWithSubclusterDown(t *testing.T) {
	ms := time.Millisecond
	down := answerSpec{err: fmt.Errorf("every backend is known down: %w", ctftp.ErrNotAsked)}
	tests := []struct {
		name     string
		file     string
		specs    map[string]answerSpec
		notFound bool
		counter  string
	}{
		{"CTLSEP, one down", "CTLSEP0011215A1AE3.tlv", map[string]answerSpec{"east": notFound(ms), "west": down, "south": notFound(ms)},
			true, `ctftp_routing_fanout_not_asked_total{answer="not_found"}`},
		{"ITLSEP, lower case, one down", "itlsep0011215a1ae3.tlv", map[string]answerSpec{"east": down, "west": notFound(ms), "south": notFound(ms)},
			true, `ctftp_routing_fanout_not_asked_total{answer="not_found"}`},
		{"config, one down", macFile, map[string]answerSpec{"east": notFound(ms), "west": down, "south": notFound(ms)},
			false, `ctftp_routing_fanout_not_asked_total{answer="error"}`},
		{"CTLSEP, all down", "CTLSEP0011215A1AE3.tlv", map[string]answerSpec{"east": down, "west": down, "south": down},
			false, `ctftp_routing_fanout_not_asked_total{answer="error"}`},
		{"CTLSEP, one down, one failed", "CTLSEP0011215A1AE3.tlv", map[string]answerSpec{"east": notFound(ms), "west": down, "south": unavailable(ms)},
			false, `ctftp_routing_fanout_not_asked_total{answer="error"}`},
		{"CTLFile.tlv is not per-device", "CTLFile.tlv", map[string]answerSpec{"east": notFound(ms), "west": down, "south": notFound(ms)},
			false, `ctftp_routing_fanout_not_asked_total{answer="error"}`},
	}
	for _, strategy := range []string{StrategyParallel, StrategySequential} {
		for _, tt := range tests {
			t.Run(strategy+"/"+tt.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					cfg := DefaultConfig()
					cfg.Strategy = strategy
					h := newHarness(t, cfg, tt.specs)
					_, err, _ := h.open(t, tt.file)
					if got := errors.Is(err, ctftp.ErrNotFound); got != tt.notFound {
						t.Fatalf("err = %v, not found %v, want %v", err, got, tt.notFound)
					}
					if !tt.notFound && !errors.Is(err, ctftp.ErrUnavailable) {
						t.Errorf("err = %v, want unavailable", err)
					}
					if n := h.counter(tt.counter); n != 1 {
						t.Errorf("%s = %d, want 1", tt.counter, n)
					}
				})
			})
		}
	}
}

func TestIsDeviceTrustList(t *testing.T) {
	for name, want := range map[string]bool{
		"CTLSEP0011215A1AE3.tlv": true, "ITLSEP0011215A1AE3.tlv": true, "dir/ctlsep0011215a1ae3.TLV": true,
		"CTLFile.tlv": false, "ITLFile.tlv": false, "SEP0011215A1AE3.cnf.xml": false, "CTLSEP0011215A1AE.tlv": false,
		"ITLSEP0011215A1AE3.tlv.bak": false, "": false, "CTLSEP": false,
	} {
		if got := IsDeviceTrustList(name); got != want {
			t.Errorf("IsDeviceTrustList(%q) = %v, want %v", name, got, want)
		}
	}
}
