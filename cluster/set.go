package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftpclient"
)

// Options are New's dependencies, read once by New. The zero value
// works: no logging, a private metrics set, no loop protection, DNS from
// cfg.DNS.
type Options struct {
	// Logger receives health changes, address changes and refused loops;
	// nil discards them.
	Logger *slog.Logger
	// Metrics receives the package's series; nil uses a private set.
	Metrics *metrics.Set
	// SelfAddrs are the gateway's listen addresses. A backend address
	// equal to one of them is refused (ErrLoop). An unspecified address
	// (0.0.0.0:69, [::]:69) stands for every local address on that port:
	// loopback and every interface address.
	SelfAddrs []netip.AddrPort
	// Resolver resolves backend names; nil builds a miekg/dns resolver
	// from cfg.DNS (and /etc/resolv.conf when cfg.DNS.Servers is empty),
	// and only when some backend is a name.
	Resolver Resolver
	// Now is the clock for resolution schedules and status; nil means
	// time.Now.
	Now func() time.Time
}

// Set is the sub-clusters behind the gateway: their backends, the names
// those backends resolve from, and the backends' health. It is the last
// Source in the gateway's chain. A Set is safe for concurrent use; its
// configuration is fixed at New.
type Set struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	resolver Resolver
	fetcher  fetcher
	self     selfSet
	dns      dnsMetrics
	subs     []*subcluster
	byName   map[string]*subcluster

	// resolveMu makes resolution passes (Resolve and Run's) take turns,
	// so an older answer is never applied over a newer one.
	resolveMu sync.Mutex
	// mu guards every source's resolution state and every backend's src,
	// and serialises rebuilding the backend lists.
	mu sync.Mutex
}

var _ ctftp.Source = (*Set)(nil)

// subcluster is one configured sub-cluster. Everything but backends is
// fixed at New.
type subcluster struct {
	name        string
	version     string
	att         attempt
	maxInFlight int
	sources     []*source
	// backends is the current list in try order (configured order of
	// sources, then each source's address order), replaced whole when a
	// name resolves differently so Open reads it without a lock.
	backends atomic.Pointer[[]*backend]
	// hedge derives the hedge delay from this sub-cluster's answers.
	hedge *hedgeTimer
	// trial is held by the one fetch let through to a sub-cluster whose
	// backends are all down (all_down "try").
	trial atomic.Bool
	// allDown is the last health change's verdict, to log the turns.
	allDown atomic.Bool
	m       subMetrics
	// streams are the files passed on while they arrive, for Status.
	// Guarded by streamsMu.
	streamsMu sync.Mutex
	streams   map[*ctftp.Stream]streamInfo
}

// streamInfo is what Status says of a stream besides its progress.
type streamInfo struct {
	file    string
	backend string
	started time.Time
}

// source is one configured backend string and what it resolved to.
type source struct {
	key  string // "subclusters[0].backends[1]", for errors
	raw  string // as configured: the backend label of ctftp_backend_up
	spec BackendSpec
	up   *metrics.Gauge

	// Guarded by Set.mu.
	addrs    []netip.AddrPort // usable addresses, in try order
	loops    []netip.AddrPort // addresses refused as the gateway's own
	resolved bool             // an answer (possibly empty) has arrived
	err      error            // the last lookup's error; nil after an answer
	next     time.Time        // when to look the name up again
}

// backend is one address. Its health survives re-resolution for as long
// as some source still yields the address.
type backend struct {
	addr netip.AddrPort
	// slots caps the fetches and probes in flight (the per-backend cap),
	// phones first.
	slots *slots
	// down is read lock-free on every fetch; written under mu.
	down    atomic.Bool
	probing atomic.Bool // a probe is in flight; at most one at a time

	mu         sync.Mutex
	fails      int           // consecutive failures
	lastErr    string        // the last failure or refusal
	lastAnswer time.Time     // when b last answered anything
	answerTime time.Duration // how long that exchange took
	// While down: when the next background trial is due, and the wait
	// after it if it fails too (doubling up to backend.down_retry_max).
	nextTrial time.Time
	backoff   time.Duration

	src *source // guarded by Set.mu: the source that yields addr
}

func newBackend(addr netip.AddrPort, maxInFlight int) *backend {
	return &backend{addr: addr, slots: newSlots(maxInFlight)}
}

// New builds a Set from cfg, which it validates. Literal backend
// addresses are usable at once; names are resolved by Resolve or Run. A
// literal address that is one of opts.SelfAddrs is an error (ErrLoop).
func New(cfg Config, opts Options) (*Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	s := &Set{
		cfg:      cfg,
		log:      opts.Logger,
		now:      opts.Now,
		resolver: opts.Resolver,
		fetcher:  tftpFetcher{},
		byName:   map[string]*subcluster{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	s.dns = newDNSMetrics(set)
	self, err := newSelfSet(opts.SelfAddrs, interfaceAddrs)
	if err != nil {
		// Loopback and exact addresses are still recognised.
		s.log.Warn("cluster: cannot list interface addresses for loop protection", "err", err)
	}
	s.self = self

	var errs []error
	needDNS := false
	for i, scfg := range cfg.Subclusters {
		sc := &subcluster{
			name:    scfg.Name,
			version: scfg.Version,
			att: attempt{
				timeout:    cmpOr(scfg.Timeout, cfg.Backend.Timeout),
				retries:    cmpOr(scfg.Retries, cfg.Backend.Retries),
				blockSize:  cfg.Backend.BlockSize,
				maxSize:    int64(cfg.Backend.MaxFileSize),
				windowSize: cfg.Backend.WindowSize,
				streamOver: int64(cfg.Backend.StreamOver),
			},
			maxInFlight: cmpOr(scfg.MaxInFlight, cfg.Backend.MaxInFlight),
			hedge:       &hedgeTimer{min: cfg.Backend.HedgeMin, max: cfg.Backend.HedgeMax},
			m:           newSubMetrics(set, scfg.Name),
		}
		for j, raw := range scfg.Backends {
			spec, _ := ParseBackend(raw) // Validate accepted it
			src := &source{
				key:  fmt.Sprintf("subclusters[%d].backends[%d]", i, j),
				raw:  raw,
				spec: spec,
				up:   upGauge(set, scfg.Name, raw),
			}
			if spec.Kind == BackendAddr {
				if s.self.contains(spec.Addr) {
					errs = append(errs, fmt.Errorf("cluster: %s: %s: %w", src.key, raw, ErrLoop))
				}
				src.addrs, src.resolved = []netip.AddrPort{spec.Addr}, true
			} else {
				needDNS = true
			}
			sc.sources = append(sc.sources, src)
		}
		sc.backends.Store(&[]*backend{})
		s.subs = append(s.subs, sc)
		s.byName[sc.name] = sc
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if needDNS && s.resolver == nil {
		r, err := newDNSResolver(cfg.DNS)
		if err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		s.resolver = r
	}
	s.mu.Lock()
	for _, sc := range s.subs {
		s.reconcileLocked(sc)
	}
	s.mu.Unlock()
	return s, nil
}

// cmpOr returns v, or def when v is zero.
func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Names lists the sub-cluster names in configured (priority) order.
func (s *Set) Names() []string {
	names := make([]string, len(s.subs))
	for i, sc := range s.subs {
		names[i] = sc.name
	}
	return names
}

// Config returns the configuration the Set was built with. It shares
// slices with the Set: callers read it and must not modify it.
func (s *Set) Config() Config { return s.cfg }

// Open fetches req.Name from the backends of sub-cluster req.Subcluster
// and returns it whole, in memory, with a seekable Body and its exact
// Size; or, for a file the backend announces as larger than
// backend.stream_over (not a signed file: see streamable), as soon as it
// announced it, with a ctftp.StreamingBody whose reads wait for the bytes
// as they arrive and whose Close ends the fetch. Files are always fetched
// in octet mode; netascii is the front end's business.
//
// Backends that are up are asked in configured order, hedged: when the
// one asked has not started answering within the hedge delay, the next
// is asked too, and the first whole answer wins (the other is
// cancelled). A backend that fails (no answer, a broken or short
// transfer, a file that is not whole: ErrCorrupt, a refusal) hands over
// to the next at once. A backend's "file not found" ends the search:
// siblings serve the same files. A backend marked down is never asked by
// Open; when all of them are, Open fails at once with ErrSubclusterDown
// (all_down "try" lets one fetch at a time through as a trial).
//
// The error wraps ErrUnknownSubcluster, ctftp.ErrNotFound (a backend
// said so), or ctftp.ErrUnavailable (with ErrBackendUnavailable,
// ErrCorrupt, ErrRefused, ErrTooLarge, ErrBusy, ErrNoBackends or
// ErrSubclusterDown saying why, and ctx's error when the caller gave up
// first). Open returns at about ctx's deadline, after every attempt it
// started has returned.
//
// A prefetch (req.Prefetch) asks for slots at PriorityLow and never
// waits: with no slot free for it, it fails at once with
// ctftp.ErrNoIdleSlot, without an attempt.
func (s *Set) Open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	data, b, st, err := s.fetch(ctx, req.Subcluster, req.Name, false, req.Prefetch, true)
	if err != nil {
		return nil, err
	}
	if st != nil {
		return &ctftp.File{
			// Closing the body ends the fetch: a layer that shares the
			// stream (the cache) reads it through readers of its own.
			Body:       st.stream.NewReader(func() { st.cancel(errStreamClosed) }),
			Size:       st.stream.Size(),
			Origin:     ctftp.OriginBackend,
			Subcluster: req.Subcluster,
			Backend:    b.String(),
		}, nil
	}
	return &ctftp.File{
		Body:       byteBody{bytes.NewReader(data)},
		Size:       int64(len(data)),
		Origin:     ctftp.OriginBackend,
		Subcluster: req.Subcluster,
		Backend:    b.String(),
	}, nil
}

// Fetch returns the bytes of name from sub-cluster subcluster, as Open
// does.
func (s *Set) Fetch(ctx context.Context, subcluster, name string) ([]byte, error) {
	data, _, _, err := s.fetch(ctx, subcluster, name, false, false, false)
	return data, err
}

// ProbeFetch is Fetch for the gateway's own checks (the trust guard's
// ITLFile.tlv probe, `ctftp validate`): the same backends, order, slots
// and health, but each attempt is counted in ctftp_backend_probes_total
// (any answer is "alive") instead of ctftp_backend_fetches_total, so that
// the fetch counters keep counting what phones caused. Unlike Open it
// also asks backends marked down (after the others): a probe is how a
// down sub-cluster is found again, and one left unanswered marks its
// backend down at once.
func (s *Set) ProbeFetch(ctx context.Context, subcluster, name string) ([]byte, error) {
	data, _, _, err := s.fetch(ctx, subcluster, name, true, false, false)
	return data, err
}

// byteBody is a File.Body over fetched bytes. It is an io.Seeker, so the
// front end can answer tsize without reading it.
type byteBody struct{ *bytes.Reader }

func (byteBody) Close() error { return nil }

func (b *backend) String() string { return b.addr.String() }

// errHedgeLost is the cause an attempt is cancelled with when a sibling's
// whole answer (the file, or "not found") ended the fetch.
var errHedgeLost = errors.New("a sibling answered first")

// errStreamClosed is the cause a streamed fetch is cancelled with when its
// reader closed before the end (the phone went away).
var errStreamClosed = errors.New("the stream's reader closed")

// streamed is a fetch whose file is passed on while it arrives (Open,
// backend.stream_over): its attempt runs on after the fetch returned,
// writes into stream, ends it, and frees its slot; cancel stops it.
type streamed struct {
	stream *ctftp.Stream
	cancel context.CancelCauseFunc
}

// streamCommit is an attempt's stream on its way to hedged's loop.
type streamCommit struct {
	b *backend
	streamed
}

// attemptResult is what one attempt's goroutine reports.
type attemptResult struct {
	b    *backend
	data []byte
	err  error
}

// fetch reads name from sub-cluster subName. probe counts its attempts as
// probes; prefetch takes only a slot free for PriorityLow, never waiting;
// stream lets a large file come back as a stream (see streamed) instead
// of bytes.
func (s *Set) fetch(ctx context.Context, subName, name string, probe, prefetch, stream bool) ([]byte, *backend, *streamed, error) {
	sc, ok := s.byName[subName]
	if !ok {
		return nil, nil, nil, fmt.Errorf("cluster: %q: %w", subName, ErrUnknownSubcluster)
	}
	prefix := fmt.Sprintf("cluster: %s: %q", sc.name, name)
	cands, trial := sc.candidates(probe)
	if trial {
		if s.cfg.Backend.AllDown != AllDownTry || !sc.trial.CompareAndSwap(false, true) {
			sc.m.skipped.Inc()
			return nil, nil, nil, fmt.Errorf("%s: %w", prefix, ErrSubclusterDown)
		}
		defer sc.trial.Store(false)
		s.log.Info("cluster: every backend down; this fetch is the trial (all_down: try)", "subcluster", sc.name, "file", name)
	}
	if len(cands) == 0 {
		return nil, nil, nil, fmt.Errorf("%s: %w (%s)", prefix, ErrNoBackends, s.noBackendReason(sc))
	}
	return s.hedged(ctx, sc, cands, name, probe, prefetch, stream, prefix)
}

// hedged runs the attempts of one fetch: cands in order, the next one
// started when an attempt fails, or when none has started answering
// within the hedge delay. It returns the first whole answer or "not
// found", cancels the attempts still running and waits for them. With
// stream, the first attempt to announce a file over stream_over wins as
// soon as it does, and is returned running (streamed) instead: it then
// outlives ctx, and ends with the file, the backend's own timeouts or its
// reader's Close.
func (s *Set) hedged(outer context.Context, sc *subcluster, cands []*backend, name string, probe, prefetch, stream bool, prefix string) ([]byte, *backend, *streamed, error) {
	ctx, cancelCause := context.WithCancelCause(outer)
	cancel := func() { cancelCause(nil) }
	defer cancel()
	// A stream is committed under mu, once, and only while the fetch is
	// still choosing (!chosen): one that comes too late is cancelled.
	var (
		mu        sync.Mutex
		chosen    bool
		committed bool
		streams   = make(chan streamCommit, 1)
	)

	prio := priorityOf(ctx)
	slotWait := s.cfg.Backend.SlotWait
	if probe || prefetch {
		prio = PriorityLow
	}
	if prefetch {
		// A phone may join a prefetch's fill: a prefetch queued at low
		// priority would hold that phone back. It goes now or not at all.
		slotWait = 0
	}
	results := make(chan attemptResult, len(cands))
	// answering gets a token when a block arrives from any attempt.
	answering := make(chan struct{}, 1)
	running := 0
	defer func() {
		mu.Lock()
		chosen = true
		mu.Unlock()
		select {
		case c := <-streams:
			// Committed while the fetch was taking another answer: it
			// would not end with ctx.
			c.cancel(errHedgeLost)
		default:
		}
		cancel()
		for ; running > 0; running-- {
			<-results
		}
	}()
	var errs []error
	// start launches an attempt on the first candidate left with a free
	// slot; wait says how long to wait for one when none is free (0: do
	// not wait). It reports whether one was started.
	start := func(wait time.Duration) (bool, error) {
		i := slices.IndexFunc(cands, func(b *backend) bool {
			// PriorityLow may take a backend's only slot (a probe must
			// run); a prefetch may not: the next phone would wait for it.
			return (!prefetch || b.slots.cap > 1) && b.slots.tryAcquire(prio)
		})
		if i < 0 {
			if wait <= 0 {
				return false, nil
			}
			sc.m.waiting.Inc()
			var err error
			i, err = acquireAny(ctx, cands, prio, wait)
			sc.m.waiting.Dec()
			if err != nil {
				if errors.Is(err, ErrBusy) {
					sc.m.slotTimeouts.Inc()
				}
				return false, err
			}
		}
		b := cands[i]
		cands = slices.Delete(slices.Clone(cands), i, i+1)
		// Without hedging, a silent backend would eat the whole deadline:
		// each backend left gets an equal share of it instead.
		left := 1
		if sc.hedge.max <= 0 {
			left = len(cands) + 1
		}
		running++
		sc.m.inFlight.Inc()
		// Each attempt has a context of its own, ended with this fetch's
		// unless its stream was returned: a stream outlives the Open
		// (whose context bounds the open alone; routing cancels it as
		// Open returns) and ends when its reader closes it.
		base := outer
		if stream && !probe {
			base = context.WithoutCancel(outer)
		}
		actx, acancel := context.WithCancelCause(base)
		var mine atomic.Bool
		var mineStream *ctftp.Stream // set by commit, in the attempt's goroutine
		stop := context.AfterFunc(ctx, func() {
			if !mine.Load() {
				acancel(context.Cause(ctx))
			}
		})
		var as attemptStream
		if stream && !probe {
			as.commit = func(st *ctftp.Stream) bool {
				mu.Lock()
				defer mu.Unlock()
				if chosen || committed || ctx.Err() != nil {
					return false
				}
				committed = true
				mine.Store(true)
				mineStream = st
				// A stream gives its slot back: a firmware load may
				// take minutes to cross a WAN, and the few a fleet
				// downloads at once (one per model, shared by every
				// phone) must not hold back the configs of every phone
				// booting meanwhile. It stays in ctftp_backend_in_flight.
				b.slots.release()
				streams <- streamCommit{b: b, streamed: streamed{stream: st, cancel: acancel}}
				s.streamStarted(sc, b, name, st)
				return true
			}
		}
		go func() {
			defer func() {
				stop()
				acancel(nil)
			}()
			data, err := s.attempt(actx, outer, sc, b, name, left, probe, as, func() {
				select {
				case answering <- struct{}{}:
				default: // the loop has a token to read already
				}
			})
			// The slot is free before the result is read: a fetch that
			// returns holds no slot.
			if !mine.Load() {
				b.slots.release()
			} else {
				var carried bool
				carried, err = s.carryOn(actx, sc, b, name, mineStream, err)
				s.streamEnded(actx, sc, b, name, mineStream, err, carried)
			}
			sc.m.inFlight.Dec()
			results <- attemptResult{b: b, data: data, err: err}
		}()
		return true, nil
	}

	started, err := start(slotWait)
	if err != nil {
		return nil, nil, nil, gaveUp(prefix+" (waiting for a free backend slot)", errs, err)
	}
	if !started {
		// Only a prefetch does not wait. Not an attempt: health is
		// untouched.
		return nil, nil, nil, fmt.Errorf("%s: %w", prefix, ctftp.ErrNoIdleSlot)
	}
	var hedgeC <-chan time.Time
	var hedge *time.Timer
	defer func() {
		if hedge != nil {
			hedge.Stop()
		}
	}()
	armHedge := func() {
		d := sc.hedge.delay()
		if d <= 0 || len(cands) == 0 {
			hedgeC = nil
			return
		}
		if hedge == nil {
			hedge = time.NewTimer(d)
		} else {
			hedge.Reset(d) // Go 1.23+: no stale value after Reset
		}
		hedgeC = hedge.C
	}
	armHedge()
	for {
		select {
		case r := <-results:
			running--
			if r.err == nil {
				// The losers still running learn they lost to a whole
				// answer (not that the caller gave up).
				cancelCause(errHedgeLost)
				return r.data, r.b, nil, nil
			}
			err := fmt.Errorf("%s: %w", r.b, r.err)
			if errors.Is(r.err, ctftp.ErrNotFound) || errors.Is(r.err, ErrTooLarge) {
				// The answer, not a failure: earlier attempts' errors are
				// already in the backends' health and would only blur it.
				// A sibling still silent lost to it like to a file.
				cancelCause(errHedgeLost)
				return nil, nil, nil, fmt.Errorf("%s: %w", prefix, err)
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				return nil, nil, nil, gaveUp(prefix, errs, ctx.Err())
			}
			if len(cands) > 0 {
				wait := time.Duration(0)
				if running == 0 {
					wait = slotWait
				}
				started, err := start(wait)
				if err != nil {
					return nil, nil, nil, gaveUp(prefix+" (waiting for a free backend slot)", errs, err)
				}
				if started {
					armHedge()
				}
			}
			if running == 0 {
				return nil, nil, nil, &attemptsError{prefix: prefix, errs: errs}
			}
		case c := <-streams:
			// This attempt announced a file to stream: it is the answer
			// now, and runs on, no longer this fetch's to wait for.
			running--
			cancelCause(errHedgeLost)
			return nil, c.b, &c.streamed, nil
		case <-answering:
			// A backend is making progress: the hedge waits for a stall
			// of a whole hedge delay, not for the whole file.
			armHedge()
		case <-hedgeC:
			started, err := start(0)
			if err == nil && started {
				sc.m.hedges.Inc()
				s.log.Debug("cluster: hedging a fetch", "subcluster", sc.name, "file", name, "delay", sc.hedge.delay())
			}
			// Again after another delay, for the next backend, or for a
			// slot when none was free.
			armHedge()
		case <-ctx.Done():
			return nil, nil, nil, gaveUp(prefix, errs, ctx.Err())
		}
	}
}

// acquireAny waits at most wait for a slot on any of cands at priority
// p, and returns the index of the backend whose slot it took: the first
// slot freed on any of them, so a fetch queued on a busy backend does not
// wait while its sibling has room. It waits in one goroutine per
// candidate, and returns after all of them have (a slot taken by a
// goroutine that lost the race is given back).
func acquireAny(ctx context.Context, cands []*backend, p Priority, wait time.Duration) (int, error) {
	if len(cands) == 1 {
		return 0, cands[0].slots.acquire(ctx, p, wait)
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	got := make(chan int, len(cands))
	var wg sync.WaitGroup
	for i, b := range cands {
		wg.Go(func() {
			if b.slots.acquire(wctx, p, 0) == nil {
				got <- i
			}
		})
	}
	winner := -1
	select {
	case winner = <-got:
	case <-wctx.Done():
	}
	cancel()
	wg.Wait()
	close(got)
	for i := range got {
		if winner < 0 {
			winner = i // taken as the wait ran out: keep it
			continue
		}
		cands[i].slots.release()
	}
	switch {
	case winner >= 0:
		return winner, nil
	case ctx.Err() != nil:
		return -1, ctx.Err()
	}
	return -1, ErrBusy
}

// gaveUp is the error for a fetch whose caller stopped waiting (or that
// found no free slot in time): it is ctftp.ErrUnavailable, because for
// the phone the file simply did not come in time.
func gaveUp(prefix string, errs []error, why error) error {
	errs = append(errs, fmt.Errorf("gave up: %w: %w", why, ctftp.ErrUnavailable))
	return &attemptsError{prefix: prefix, errs: errs}
}

// candidates lists the backends to ask, in configured order: those up.
// When none is up, trial is true and the list is every backend (down):
// a probe asks them anyway, a phone's fetch only as the half-open trial.
func (sc *subcluster) candidates(probe bool) (list []*backend, trial bool) {
	all := *sc.backends.Load()
	for _, b := range all {
		if !b.down.Load() {
			list = append(list, b)
		}
	}
	if len(list) > 0 || len(all) == 0 {
		return list, false
	}
	return all, !probe
}

// attempt fetches name from b once (with retransmissions), within an
// equal share of the time left before fit's deadline, checks that
// a signed file is whole, and records the outcome in b's health and the
// metrics. answered is called at every block received; the first one's
// delay feeds the sub-cluster's hedge delay. A probe attempt
// (ProbeFetch) is counted as a probe, not a fetch, and one left
// unanswered marks b down at once.
func (s *Set) attempt(ctx, fit context.Context, sc *subcluster, b *backend, name string, left int, probe bool, as attemptStream, answered func()) ([]byte, error) {
	a, shortened, err := fitAttempt(fit, sc.att, left)
	if err != nil {
		return nil, err // no attempt was made: nothing to count
	}
	a.commit, a.resume = as.commit, as.resume
	start := time.Now()
	gotBlock := false
	a.answered = func() {
		if !gotBlock {
			gotBlock = true
			sc.hedge.observe(time.Since(start))
		}
		answered()
	}
	// lostSilent: cancelled because a sibling sent the whole file while
	// this backend had not sent one block. That is a failure to answer
	// (a dead or stalled backend costs every fetch a hedge delay until it
	// is marked down), not the caller's hurry.
	lostSilent := func() bool {
		return !gotBlock && errors.Is(context.Cause(ctx), errHedgeLost)
	}
	count := func(result string) {
		if probe {
			// As with Run's probes, a caller giving up says nothing
			// about the backend.
			if result != resultError || ctx.Err() == nil || lostSilent() {
				sc.m.probes[result != resultError].Inc()
			}
			return
		}
		if result == resultError && ctx.Err() != nil && !lostSilent() {
			// Cancelled mid-transfer: a hedge's loser that was answering,
			// or the caller gave up.
			result = resultCancelled
		}
		sc.m.fetches[result].Inc()
	}
	data, err := s.fetcher.fetch(ctx, b.addr, name, a)
	took := time.Since(start)
	// A probe's bytes are judged by the caller (the trust guard reads an
	// ITL more strictly, and reports a bad one as such).
	if err == nil && !probe {
		if cerr := checkIntegrity(name, data); cerr != nil {
			data, err = nil, cerr
		}
	}
	if !probe && ctx.Err() == nil {
		sc.m.duration.Update(took.Seconds())
	}
	switch {
	case err == nil:
		count(resultOK)
		s.alive(sc, b, took, nil)
	case errors.Is(err, ctftp.ErrNotFound):
		count(resultNotFound)
		s.alive(sc, b, took, nil)
	case errors.Is(err, ErrRefused):
		count(resultRefused)
		s.alive(sc, b, took, err)
	case errors.Is(err, ErrTooLarge):
		count(resultError)
		s.alive(sc, b, took, err)
	case errors.Is(err, errCarryDiffers):
		// Alive and answering, with another build of the file: the
		// sub-cluster's backends are out of step, which an operator
		// wants to hear of, not a health failure.
		count(resultError)
		s.alive(sc, b, took, err)
		s.log.Warn("cluster: a sibling asked to carry a large file on has another file under that name; backends out of step",
			"subcluster", sc.name, "backend", b.String(), "file", name, "err", err)
	case errors.Is(err, ErrCorrupt):
		count(resultInvalid)
		s.log.Warn("cluster: backend sent a file that is not whole; not served, not cached",
			"subcluster", sc.name, "backend", b.String(), "file", name, "err", err)
		s.failed(sc, b, err, false)
	default:
		count(resultError)
		// The caller's hurry is not the backend's fault: a fetch cut
		// short by ctx (a phone that gave up, a hedge's loser that was
		// answering), or timed out under a timeout shortened to fit ctx,
		// leaves health alone. A loser that had sent nothing is blamed,
		// and so is a port unreachable: the backend's host said so, however
		// short the wait. The active probe, which always uses its full
		// timeout, still finds a dead backend.
		switch {
		case lostSilent():
			s.failed(sc, b, fmt.Errorf("%w: no answer before a sibling sent the whole file", ErrBackendUnavailable), probe)
		case ctx.Err() == nil && (!shortened || errors.Is(err, tftpclient.ErrRefused)):
			s.failed(sc, b, err, probe)
		}
	}
	return data, err
}

// carryOn ends the stream st, whose attempt at failed returned err: when
// the backend broke off half-way, the rest comes from a sibling that is
// up and announces the same length, from where it broke off, so that the
// phones reading it see one whole file as they would a failover before
// the first byte. It returns whether a sibling was asked, and how the
// stream ended.
func (s *Set) carryOn(ctx context.Context, sc *subcluster, failed *backend, name string, st *ctftp.Stream, err error) (bool, error) {
	carried := false
	tried := []*backend{failed}
	for err != nil && ctx.Err() == nil {
		if _, done := st.Progress(); done {
			break // it ended itself: more bytes than announced
		}
		cands, _ := sc.candidates(false)
		i := slices.IndexFunc(cands, func(b *backend) bool { return !slices.Contains(tried, b) })
		if i < 0 {
			break
		}
		b := cands[i]
		tried = append(tried, b)
		arrived, _ := st.Progress()
		s.log.Info("cluster: a large file broke off on its way; carrying it on from a sibling", "subcluster", sc.name,
			"from", failed.String(), "to", b.String(), "file", name, "offset", arrived, "err", err)
		// Like the stream it carries on, it holds no slot.
		carried = true
		sc.m.inFlight.Inc()
		_, err = s.attempt(ctx, ctx, sc, b, name, 1, false, attemptStream{resume: st}, func() {})
		sc.m.inFlight.Dec()
		failed = b
	}
	st.Finish(err) // a no-op once the fetch ended it whole
	return carried, err
}

// streamStarted registers st for Status and logs it.
func (s *Set) streamStarted(sc *subcluster, b *backend, name string, st *ctftp.Stream) {
	sc.streamsMu.Lock()
	if sc.streams == nil {
		sc.streams = make(map[*ctftp.Stream]streamInfo)
	}
	sc.streams[st] = streamInfo{file: name, backend: b.String(), started: time.Now()}
	sc.streamsMu.Unlock()
	s.log.Info("cluster: passing a large file on while it arrives", "subcluster", sc.name, "backend", b.String(), "file", name, "size", st.Size())
}

// streamEnded logs the end of a streamed attempt: a load that took
// minutes to cross should say how it ended, whoever read it.
func (s *Set) streamEnded(ctx context.Context, sc *subcluster, b *backend, name string, st *ctftp.Stream, err error, carried bool) {
	sc.streamsMu.Lock()
	delete(sc.streams, st)
	sc.streamsMu.Unlock()
	switch {
	case err == nil && carried:
		sc.m.streams[streamCarried].Inc()
	case err == nil:
		sc.m.streams[streamOK].Inc()
	case ctx.Err() != nil:
		sc.m.streams[streamCancelled].Inc()
	default:
		sc.m.streams[streamError].Inc()
	}
	if err == nil {
		s.log.Info("cluster: large file arrived whole", "subcluster", sc.name, "backend", b.String(), "file", name)
		return
	}
	s.log.Warn("cluster: large file broke off on its way; its readers got the error", "subcluster", sc.name, "backend", b.String(), "file", name, "err", err)
}

// fitAttempt shortens a's per-packet timeout so that all its
// retransmissions fit in an equal share of the time left before ctx's
// deadline, the other shares going to the left-1 backends after it.
// shortened says it did: a failure then says more about the deadline
// than about the backend.
func fitAttempt(ctx context.Context, a attempt, left int) (attempt, bool, error) {
	if err := ctx.Err(); err != nil {
		return a, false, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return a, false, nil
	}
	per := time.Until(dl) / time.Duration(max(left, 1)*(a.retries+1))
	if per <= 0 {
		return a, false, context.DeadlineExceeded
	}
	if per < a.timeout {
		a.timeout = per
		return a, true, nil
	}
	return a, false, nil
}

// alive records an answer from b, which took took: its failure count
// resets and a down backend comes back up. note, when set, is kept as
// b's last error (a refusal says something about the backend an admin
// wants to see).
func (s *Set) alive(sc *subcluster, b *backend, took time.Duration, note error) {
	b.mu.Lock()
	b.fails = 0
	b.lastAnswer, b.answerTime = time.Now(), took
	if note != nil {
		b.lastErr = note.Error()
	}
	changed := b.down.Load()
	b.down.Store(false)
	b.mu.Unlock()
	if changed {
		s.log.Info("cluster: backend up", "subcluster", sc.name, "backend", b.String())
		s.healthChanged(sc)
	}
}

// failed records a failure of b; backend.max_fails in a row mark it
// down, and so does a single failed probe (now): a probe that got no
// answer to Retries+1 requests has seen a dead backend, and detection
// must not wait for a second probe interval. A down backend's next
// background trial is scheduled with backoff. Only the change is logged,
// not every failure.
func (s *Set) failed(sc *subcluster, b *backend, err error, now bool) {
	b.mu.Lock()
	b.fails++
	b.lastErr = err.Error()
	fails := b.fails
	changed := !b.down.Load() && (now || fails >= s.cfg.Backend.MaxFails)
	if changed {
		b.down.Store(true)
		b.backoff = cmpOr(s.cfg.Backend.ProbeInterval, trialTick)
	} else if b.down.Load() {
		b.backoff = min(2*b.backoff, max(s.cfg.Backend.DownRetryMax, trialTick))
	}
	b.nextTrial = s.now().Add(b.backoff)
	b.mu.Unlock()
	if changed {
		s.log.Warn("cluster: backend down", "subcluster", sc.name, "backend", b.String(), "fails", fails, "err", err)
		s.healthChanged(sc)
	}
}

func (s *Set) healthChanged(sc *subcluster) {
	s.mu.Lock()
	s.updateUpLocked(sc)
	s.mu.Unlock()
	list := *sc.backends.Load()
	up := slices.IndexFunc(list, func(b *backend) bool { return !b.down.Load() }) >= 0
	if sc.allDown.Swap(!up) != !up {
		if up {
			s.log.Info("cluster: sub-cluster back: a backend answers again", "subcluster", sc.name)
		} else {
			s.log.Warn("cluster: every backend of the sub-cluster is down; its fetches fail at once until a background probe gets an answer",
				"subcluster", sc.name, "all_down", s.cfg.Backend.AllDown)
		}
	}
}

// updateUpLocked sets ctftp_backend_up for each of sc's sources.
func (s *Set) updateUpLocked(sc *subcluster) {
	list := *sc.backends.Load()
	for _, src := range sc.sources {
		up := 0.0
		for _, b := range list {
			if b.src == src && !b.down.Load() {
				up = 1
				break
			}
		}
		src.up.Set(up)
	}
}

// reconcileLocked rebuilds sc's backend list from its sources' current
// addresses. A backend whose address is still present keeps its object,
// and with it its health, failure count and in-flight slots.
func (s *Set) reconcileLocked(sc *subcluster) {
	old := map[netip.AddrPort]*backend{}
	for _, b := range *sc.backends.Load() {
		old[b.addr] = b
	}
	var list []*backend
	seen := map[netip.AddrPort]bool{}
	for _, src := range sc.sources {
		for _, a := range src.addrs {
			if seen[a] {
				continue // two names for one server: one backend, one cap
			}
			seen[a] = true
			b := old[a]
			if b == nil {
				b = newBackend(a, sc.maxInFlight)
			}
			b.src = src
			list = append(list, b)
		}
	}
	sc.backends.Store(&list)
	s.updateUpLocked(sc)
}

// noBackendReason says why sc has nothing to try, for the error.
func (s *Set) noBackendReason(sc *subcluster) string {
	if len(*sc.backends.Load()) > 0 {
		return "every backend is down and backend.all_down is \"fail\""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, src := range sc.sources {
		if len(src.loops) > 0 {
			return "addresses refused as loops"
		}
		if !src.resolved {
			return "backend names not resolved yet"
		}
	}
	return "backend names have no addresses"
}
