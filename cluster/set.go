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
	m        subMetrics
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
	// sem holds one token per fetch or probe in flight; its capacity is
	// the per-backend cap.
	sem chan struct{}
	// down is read lock-free on every fetch; written under mu.
	down    atomic.Bool
	probing atomic.Bool // a probe is in flight; at most one at a time

	mu         sync.Mutex
	fails      int           // consecutive failures
	lastErr    string        // the last failure or refusal
	lastAnswer time.Time     // when b last answered anything
	answerTime time.Duration // how long that exchange took

	src *source // guarded by Set.mu: the source that yields addr
}

func newBackend(addr netip.AddrPort, maxInFlight int) *backend {
	return &backend{addr: addr, sem: make(chan struct{}, maxInFlight)}
}

func (b *backend) tryAcquire() bool {
	select {
	case b.sem <- struct{}{}:
		return true
	default:
		return false
	}
}

func (b *backend) release() { <-b.sem }

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
				timeout:   cmpOr(scfg.Timeout, cfg.Backend.Timeout),
				retries:   cmpOr(scfg.Retries, cfg.Backend.Retries),
				blockSize: cfg.Backend.BlockSize,
				maxSize:   int64(cfg.Backend.MaxFileSize),
			},
			maxInFlight: cmpOr(scfg.MaxInFlight, cfg.Backend.MaxInFlight),
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
// Size. Backends are tried in configured order, healthy ones first;
// backends marked down come last, or not at all when backend.all_down is
// "fail". Files are always fetched in octet mode; netascii is the front
// end's business. A backend that does not answer, answers badly, or refuses
// (TFTP errors other than 1) hands over to the next one. A backend's
// "file not found" ends the search: siblings serve the same files.
//
// The error wraps ErrUnknownSubcluster, ctftp.ErrNotFound (a backend
// said so), or ctftp.ErrUnavailable (with ErrBackendUnavailable,
// ErrRefused, ErrTooLarge or ErrNoBackends saying why, and ctx's error
// when the caller gave up first). Open returns at about ctx's deadline:
// each attempt's per-packet timeout is shortened so that every backend
// still to try gets an equal share of the time left.
func (s *Set) Open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	data, b, err := s.fetch(ctx, req.Subcluster, req.Name, false)
	if err != nil {
		return nil, err
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
	data, _, err := s.fetch(ctx, subcluster, name, false)
	return data, err
}

// ProbeFetch is Fetch for the gateway's own checks (the trust guard's
// ITLFile.tlv probe, `ctftp validate`): the same backends, order, slots
// and health, but each attempt is counted in ctftp_backend_probes_total
// (any answer is "alive") instead of ctftp_backend_fetches_total, so that
// the fetch counters keep counting what phones caused.
func (s *Set) ProbeFetch(ctx context.Context, subcluster, name string) ([]byte, error) {
	data, _, err := s.fetch(ctx, subcluster, name, true)
	return data, err
}

// byteBody is a File.Body over fetched bytes. It is an io.Seeker, so the
// front end can answer tsize without reading it.
type byteBody struct{ *bytes.Reader }

func (byteBody) Close() error { return nil }

func (b *backend) String() string { return b.addr.String() }

func (s *Set) fetch(ctx context.Context, subName, name string, probe bool) ([]byte, *backend, error) {
	sc, ok := s.byName[subName]
	if !ok {
		return nil, nil, fmt.Errorf("cluster: %q: %w", subName, ErrUnknownSubcluster)
	}
	prefix := fmt.Sprintf("cluster: %s: %q", sc.name, name)
	cands, nUp := sc.candidates(s.cfg.Backend.AllDown == AllDownTry)
	if len(cands) == 0 {
		return nil, nil, fmt.Errorf("%s: %w (%s)", prefix, ErrNoBackends, s.noBackendReason(sc))
	}
	var errs []error
	for len(cands) > 0 {
		i, err := sc.acquire(ctx, cands, nUp)
		if err != nil {
			return nil, nil, gaveUp(prefix+" (waiting for a free backend slot)", errs, err)
		}
		b := cands[i]
		cands = slices.Delete(slices.Clone(cands), i, i+1)
		if i < nUp {
			nUp--
		}
		data, err := s.attempt(ctx, sc, b, name, len(cands)+1, probe)
		b.release()
		sc.m.inFlight.Dec()
		if err == nil {
			return data, b, nil
		}
		err = fmt.Errorf("%s: %w", b, err)
		if errors.Is(err, ctftp.ErrNotFound) || errors.Is(err, ErrTooLarge) {
			// The answer, not a failure: earlier attempts' errors are
			// already in the backends' health and would only blur it.
			return nil, nil, fmt.Errorf("%s: %w", prefix, err)
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			return nil, nil, gaveUp(prefix, errs, ctx.Err())
		}
	}
	return nil, nil, &attemptsError{prefix: prefix, errs: errs}
}

// gaveUp is the error for a fetch whose caller stopped waiting: it is
// ctx's error and also ctftp.ErrUnavailable, because for the phone the
// file simply did not come in time.
func gaveUp(prefix string, errs []error, ctxErr error) error {
	errs = append(errs, fmt.Errorf("gave up: %w: %w", ctxErr, ctftp.ErrUnavailable))
	return &attemptsError{prefix: prefix, errs: errs}
}

// candidates lists the backends to try: up ones in order, then (with
// try) down ones in order. nUp counts the up ones at the front.
func (sc *subcluster) candidates(try bool) (list []*backend, nUp int) {
	all := *sc.backends.Load()
	down := make([]bool, len(all))
	for i, b := range all {
		down[i] = b.down.Load()
		if !down[i] {
			list = append(list, b)
		}
	}
	nUp = len(list)
	if try {
		for i, b := range all {
			if down[i] {
				list = append(list, b)
			}
		}
	}
	return list, nUp
}

// acquire takes a slot on a backend and returns its index in cands. It
// takes the first healthy backend with a free slot, so a busy primary
// spills over to an idle sibling rather than queueing; when none is free
// it waits for the first candidate, since priority order is what the
// admin asked for and the cap is what CUCM needs.
func (sc *subcluster) acquire(ctx context.Context, cands []*backend, nUp int) (int, error) {
	for i := range nUp {
		if cands[i].tryAcquire() {
			sc.m.inFlight.Inc()
			return i, nil
		}
	}
	sc.m.waiting.Inc()
	defer sc.m.waiting.Dec()
	select {
	case cands[0].sem <- struct{}{}:
		sc.m.inFlight.Inc()
		return 0, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// attempt fetches name from b once (with pin/tftp's retransmissions) and
// records the outcome in b's health and the metrics. left counts the
// backends still to try, b included, which share what is left of ctx's
// time. A probe attempt (ProbeFetch) is counted as a probe, not a fetch.
func (s *Set) attempt(ctx context.Context, sc *subcluster, b *backend, name string, left int, probe bool) ([]byte, error) {
	a, shortened, err := fitAttempt(ctx, sc.att, left)
	if err != nil {
		return nil, err // no attempt was made: nothing to count
	}
	count := func(result string) {
		if probe {
			// As with Run's probes, a caller giving up says nothing
			// about the backend.
			if result != resultError || ctx.Err() == nil {
				sc.m.probes[result != resultError].Inc()
			}
			return
		}
		sc.m.fetches[result].Inc()
	}
	start := time.Now()
	data, err := s.fetcher.fetch(ctx, b.addr, name, a)
	took := time.Since(start)
	if !probe {
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
	default:
		count(resultError)
		// The caller's hurry is not the backend's fault: a fetch cut
		// short by ctx, or timed out under a timeout shortened to fit
		// ctx, leaves health alone. The active probe, which always uses
		// the full timeout, still finds a dead backend.
		if ctx.Err() == nil && !shortened {
			s.failed(sc, b, err)
		}
	}
	return data, err
}

// fitAttempt shortens a's per-packet timeout so that all its
// retransmissions fit in an equal share of the time left before ctx's
// deadline, the other share going to the left-1 backends after it: a
// silent first backend must not eat the whole budget and leave its
// healthy sibling no time to answer.
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

// failed records a failure of b; backend.max_fails in a row mark it down.
// Only the change is logged, not every failure.
func (s *Set) failed(sc *subcluster, b *backend, err error) {
	b.mu.Lock()
	b.fails++
	b.lastErr = err.Error()
	fails := b.fails
	changed := !b.down.Load() && fails >= s.cfg.Backend.MaxFails
	if changed {
		b.down.Store(true)
	}
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
