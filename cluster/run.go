package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// resolveParallel bounds the lookups one resolution pass runs at once,
// so a dead resolver costs one timeout per pass rather than one per name.
const resolveParallel = 8

// Resolve looks up every backend name now and puts the answers in use. The
// CLI calls it before serving so the first phones find backends. It
// returns one error per name that could not be looked up (those keep
// whatever addresses they had, none at start); the names that resolved
// are in use either way.
func (s *Set) Resolve(ctx context.Context) error {
	return s.resolve(ctx, func(*source) bool { return true })
}

// Run keeps the Set current until ctx is done: it looks names up again
// when their TTL (bounded by dns.min_ttl and dns.max_ttl) runs out, and
// every backend.probe_interval probes every backend up, starting at once,
// and each backend down whose next trial is due. With probe_interval 0
// only the trials run (checked every second): a sub-cluster whose
// backends are all down must still come back.
// Run owns the goroutines it starts (one per probe in flight, at most one
// per backend) and waits for them before it returns; a probe ends at
// ctx's end, a lookup within dns.timeout. It returns nil.
func (s *Set) Run(ctx context.Context) error {
	var probes sync.WaitGroup
	defer probes.Wait()
	// Names never resolved (Resolve was not called) go first, so the
	// first probes already see their addresses.
	s.resolve(ctx, func(src *source) bool { return !src.resolved && src.err == nil })
	iv := s.cfg.Backend.ProbeInterval
	ticker := time.NewTicker(cmpOr(iv, trialTick))
	defer ticker.Stop()
	s.probeAll(ctx, &probes, iv > 0)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Stop()
		var wake <-chan time.Time
		if next, ok := s.nextResolution(); ok {
			timer.Reset(max(next.Sub(s.now()), 0))
			wake = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
			now := s.now()
			s.resolve(ctx, func(src *source) bool { return !src.next.After(now) })
		case <-ticker.C:
			s.probeAll(ctx, &probes, iv > 0)
		}
	}
}

// nextResolution is the earliest time a name is due for lookup.
func (s *Set) nextResolution() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next time.Time
	found := false
	for _, sc := range s.subs {
		for _, src := range sc.sources {
			if src.spec.Kind == BackendAddr {
				continue
			}
			if !found || src.next.Before(next) {
				next, found = src.next, true
			}
		}
	}
	return next, found
}

// lookupResult is what one name resolved to.
type lookupResult struct {
	addrs []netip.AddrPort
	ttl   time.Duration
	err   error
}

// resolve looks up the names due says are due, all at once (bounded), and
// applies the answers together.
func (s *Set) resolve(ctx context.Context, due func(*source) bool) error {
	s.resolveMu.Lock()
	defer s.resolveMu.Unlock()
	type job struct {
		sc  *subcluster
		src *source
		res lookupResult
	}
	var jobs []*job
	s.mu.Lock()
	for _, sc := range s.subs {
		for _, src := range sc.sources {
			if src.spec.Kind != BackendAddr && due(src) {
				jobs = append(jobs, &job{sc: sc, src: src})
			}
		}
	}
	s.mu.Unlock()
	if len(jobs) == 0 {
		return nil
	}
	var wg sync.WaitGroup
	limit := make(chan struct{}, resolveParallel)
	for _, j := range jobs {
		limit <- struct{}{}
		wg.Go(func() {
			defer func() { <-limit }()
			j.res = s.lookup(ctx, j.src.spec)
		})
	}
	wg.Wait()

	var errs []error
	touched := map[*subcluster]bool{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range jobs {
		if err := s.applyLocked(j.sc, j.src, j.res); err != nil {
			errs = append(errs, err)
		}
		touched[j.sc] = true
	}
	for _, sc := range s.subs {
		if touched[sc] {
			s.reconcileLocked(sc)
		}
	}
	return errors.Join(errs...)
}

// lookup resolves one backend name. For an SRV name each target is looked
// up in record order; the targets that resolve are used even when others
// fail (the failure is still reported, and the name retried soon).
func (s *Set) lookup(ctx context.Context, spec BackendSpec) lookupResult {
	switch spec.Kind {
	case BackendHost:
		ips, ttl, err := s.resolver.LookupHost(ctx, spec.Host)
		if err != nil {
			return lookupResult{err: err}
		}
		out := make([]netip.AddrPort, 0, len(ips))
		for _, ip := range ips {
			out = append(out, netip.AddrPortFrom(ip, spec.Port))
		}
		return lookupResult{addrs: out, ttl: ttl}
	case BackendSRV:
		recs, ttl, err := s.resolver.LookupSRV(ctx, spec.Host)
		if err != nil {
			return lookupResult{err: err}
		}
		recs = slices.Clone(recs)
		sortSRV(recs)
		res := lookupResult{addrs: []netip.AddrPort{}, ttl: ttl}
		var errs []error
		for _, r := range recs {
			ips, t, err := s.resolver.LookupHost(ctx, r.Target)
			if err != nil {
				errs = append(errs, fmt.Errorf("target %s: %w", r.Target, err))
				continue
			}
			res.ttl = min(res.ttl, t)
			for _, ip := range ips {
				res.addrs = append(res.addrs, netip.AddrPortFrom(ip, r.Port))
			}
		}
		res.err = errors.Join(errs...)
		if res.err != nil && len(res.addrs) == 0 {
			res.addrs = nil
		}
		return res
	}
	return lookupResult{err: fmt.Errorf("cannot resolve a %s backend", spec.Kind)}
}

// applyLocked puts one lookup's answer in use. A failed lookup keeps the
// addresses the name had (a resolver outage must not empty a working
// sub-cluster) and is retried after dns.min_ttl. Addresses that are the
// gateway's own are set aside as loops.
func (s *Set) applyLocked(sc *subcluster, src *source, res lookupResult) error {
	now := s.now()
	d := s.cfg.DNS
	if res.addrs == nil {
		s.dns.err.Inc()
		if src.err == nil || src.err.Error() != res.err.Error() {
			s.log.Warn("cluster: backend name lookup failed; keeping its addresses",
				"subcluster", sc.name, "backend", src.raw, "addresses", len(src.addrs), "err", res.err)
		}
		src.err = res.err
		src.next = now.Add(d.MinTTL)
		return fmt.Errorf("cluster: %s (%s): %w", src.key, src.raw, res.err)
	}
	ttl := min(max(res.ttl, d.MinTTL), d.MaxTTL)
	switch {
	case res.err != nil:
		s.dns.err.Inc()
		ttl = d.MinTTL
	case len(res.addrs) == 0:
		s.dns.empty.Inc()
	default:
		s.dns.ok.Inc()
	}
	usable, loops := s.self.split(res.addrs)
	if !slices.Equal(usable, src.addrs) {
		s.log.Info("cluster: backend addresses changed", "subcluster", sc.name, "backend", src.raw,
			"old", src.addrs, "new", usable)
	}
	if len(loops) > 0 && !slices.Equal(loops, src.loops) {
		s.log.Warn("cluster: refusing backend addresses that are the gateway's own (loop)",
			"subcluster", sc.name, "backend", src.raw, "addresses", loops)
	}
	src.addrs, src.loops, src.resolved, src.err = usable, loops, true, res.err
	src.next = now.Add(ttl)
	if res.err != nil {
		return fmt.Errorf("cluster: %s (%s): %w", src.key, src.raw, res.err)
	}
	return nil
}

// trialTick is how often Run looks for down backends due for a trial
// when active probing is off.
const trialTick = time.Second

// probeAll starts a probe of every backend that has none in flight: of
// every backend up when up is set, and of each backend down whose next
// trial is due (half-open: one trial at a time, with backoff).
func (s *Set) probeAll(ctx context.Context, wg *sync.WaitGroup, up bool) {
	now := s.now()
	for _, sc := range s.subs {
		for _, b := range *sc.backends.Load() {
			if !b.down.Load() && !up {
				continue
			}
			if b.down.Load() {
				b.mu.Lock()
				due := !now.Before(b.nextTrial)
				b.mu.Unlock()
				if !due {
					continue
				}
			}
			if !b.probing.CompareAndSwap(false, true) {
				continue
			}
			wg.Go(func() {
				defer b.probing.Store(false)
				s.probe(ctx, sc, b)
			})
		}
	}
}

// errProbeSkipped: the backend's slots are all taken by fetches, which
// report its health better than a probe would; or a probe is already in
// flight.
var errProbeSkipped = errors.New("probe skipped: backend busy")

// probe asks b for backend.probe_file and records the outcome. Any TFTP
// answer proves b alive; silence or an I/O error marks it down at once.
// A probe takes one of b's slots at low priority, so probes never push a
// backend past its cap nor make a phone's fetch wait; when b is busy it
// is skipped. Its per-packet timeout is backend.probe_timeout.
func (s *Set) probe(ctx context.Context, sc *subcluster, b *backend) (time.Duration, error) {
	if !b.slots.tryAcquire(PriorityLow) {
		return 0, errProbeSkipped
	}
	defer b.slots.release()
	a := sc.att
	a.timeout = s.cfg.Backend.ProbeTimeout
	start := time.Now()
	err := s.fetcher.probe(ctx, b.addr, s.cfg.Backend.ProbeFile, a)
	rtt := time.Since(start)
	var te *TFTPError
	switch {
	case err == nil || errors.As(err, &te):
		sc.m.probes[true].Inc()
		s.alive(sc, b, rtt, nil)
		// Seeds the hedge delay before any phone's fetch: a probe's first
		// answer is one round trip, a fetch's first block two (request
		// and OACK, then ACK 0 and DATA 1).
		sc.hedge.observe(2 * rtt)
		return rtt, err
	case ctx.Err() != nil:
		return rtt, err
	default:
		sc.m.probes[false].Inc()
		s.failed(sc, b, err, true)
		return rtt, err
	}
}

// ProbeResult is the outcome of probing one backend address; the caller
// owns it.
type ProbeResult struct {
	Subcluster string `json:"subcluster"`
	// Source is the backend as configured.
	Source string `json:"source"`
	// Backend is the address probed; "" when Source has none.
	Backend string `json:"backend,omitempty"`
	// Alive: the backend answered (DATA, OACK or any ERROR).
	Alive bool `json:"alive"`
	// RTT is the time to the first answer (or to giving up).
	RTT time.Duration `json:"rtt"`
	// Err is the backend's TFTP error when it answered with one (it is
	// still alive), or why it is not alive: no answer, ErrLoop, or the
	// name's lookup failure or lack of addresses.
	Err error `json:"-"`
}

// ProbeAll probes every backend once now, all at once, and returns one
// result per address (and one per configured backend with no usable
// address) in configured order. The outcomes count towards health as
// Run's probes do. `ctftp validate` uses it.
func (s *Set) ProbeAll(ctx context.Context) []ProbeResult {
	type item struct {
		sc  *subcluster
		b   *backend
		res ProbeResult
	}
	var items []*item
	s.mu.Lock()
	for _, sc := range s.subs {
		list := *sc.backends.Load()
		for _, src := range sc.sources {
			n := 0
			for _, b := range list {
				if b.src == src {
					items = append(items, &item{sc: sc, b: b, res: ProbeResult{Subcluster: sc.name, Source: src.raw, Backend: b.String()}})
					n++
				}
			}
			for _, a := range src.loops {
				items = append(items, &item{res: ProbeResult{Subcluster: sc.name, Source: src.raw, Backend: a.String(), Err: ErrLoop}})
				n++
			}
			if n == 0 {
				items = append(items, &item{res: ProbeResult{Subcluster: sc.name, Source: src.raw, Err: noAddrError(src)}})
			}
		}
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	for _, it := range items {
		if it.b == nil {
			continue
		}
		if !it.b.probing.CompareAndSwap(false, true) {
			it.res.Err = errProbeSkipped
			continue
		}
		wg.Go(func() {
			defer it.b.probing.Store(false)
			rtt, err := s.probe(ctx, it.sc, it.b)
			var te *TFTPError
			it.res.RTT, it.res.Err = rtt, err
			it.res.Alive = err == nil || errors.As(err, &te)
		})
	}
	wg.Wait()
	out := make([]ProbeResult, len(items))
	for i, it := range items {
		out[i] = it.res
	}
	return out
}

// noAddrError says why src has no usable address. Called with Set.mu held.
func noAddrError(src *source) error {
	switch {
	case src.err != nil:
		return src.err
	case !src.resolved:
		return errors.New("not resolved yet")
	}
	return fmt.Errorf("%s has no addresses", src.spec.Host)
}

// SubclusterStatus is a snapshot of a sub-cluster's state for /status
// and tools; the caller owns it.
type SubclusterStatus struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// HedgeDelay is how long a fetch now waits for a silent backend
	// before asking the next (0: hedging off).
	HedgeDelay time.Duration `json:"hedge_delay"`
	// Backends lists every address in try order, grouped by configured
	// backend; a configured backend with no usable address has one entry
	// with an empty Address saying why.
	Backends []BackendStatus `json:"backends"`
	// Streams are the large files on their way from a backend to the
	// phones now (backend.stream_over), oldest first.
	Streams []StreamStatus `json:"streams,omitempty"`
}

// StreamStatus is the progress of one file passed on while it arrives.
type StreamStatus struct {
	File    string    `json:"file"`
	Backend string    `json:"backend"`
	Started time.Time `json:"started"`
	// Arrived and Size are bytes: so far, and announced.
	Arrived int64 `json:"arrived"`
	Size    int64 `json:"size"`
}

// BackendStatus is a snapshot of one backend address's state.
type BackendStatus struct {
	// Source is the backend as configured.
	Source string `json:"source"`
	// Address is the resolved address; "" when Source has none.
	Address string `json:"address,omitempty"`
	// Up is false once max_fails consecutive failures happened, until
	// the backend answers again; always false without an address or for
	// a loop.
	Up bool `json:"up"`
	// Fails counts consecutive failures.
	Fails int `json:"fails"`
	// LastError is the last failure or refusal, or why there is no
	// address; "" when none.
	LastError string `json:"last_error,omitempty"`
	// InFlight counts fetches and probes holding a slot now.
	InFlight int `json:"in_flight"`
	// LookupError is set while the last lookup of Source failed; its
	// previous addresses stay in use meanwhile.
	LookupError string `json:"lookup_error,omitempty"`
	// NextTrial is when a backend that is down is probed next (zero
	// while it is up).
	NextTrial time.Time `json:"next_trial,omitzero"`
	// LastAnswer is when the backend last answered a fetch or probe
	// (any TFTP answer, "not found" included); zero when never.
	LastAnswer time.Time `json:"last_answer,omitzero"`
	// AnswerSeconds is how long that exchange took, the whole transfer
	// for a fetch: a probe's small file shows the round trip, a large
	// file its transfer time.
	AnswerSeconds float64 `json:"answer_seconds,omitempty"`
}

// Status reports every sub-cluster in configured order.
func (s *Set) Status() []SubclusterStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SubclusterStatus, 0, len(s.subs))
	for _, sc := range s.subs {
		st := SubclusterStatus{Name: sc.name, Version: sc.version, HedgeDelay: sc.hedge.delay(), Streams: sc.streamStatus()}
		list := *sc.backends.Load()
		for _, src := range sc.sources {
			lookupErr := ""
			if src.err != nil {
				lookupErr = src.err.Error()
			}
			n := 0
			for _, b := range list {
				if b.src != src {
					continue
				}
				b.mu.Lock()
				bs := BackendStatus{Source: src.raw, Address: b.String(), Up: !b.down.Load(),
					Fails: b.fails, LastError: b.lastErr, InFlight: b.slots.inUse(), LookupError: lookupErr,
					LastAnswer: b.lastAnswer, AnswerSeconds: b.answerTime.Seconds()}
				if !bs.Up {
					bs.NextTrial = b.nextTrial
				}
				b.mu.Unlock()
				st.Backends = append(st.Backends, bs)
				n++
			}
			for _, a := range src.loops {
				st.Backends = append(st.Backends, BackendStatus{Source: src.raw, Address: a.String(),
					LastError: ErrLoop.Error(), LookupError: lookupErr})
				n++
			}
			if n == 0 {
				st.Backends = append(st.Backends, BackendStatus{Source: src.raw,
					LastError: noAddrError(src).Error(), LookupError: lookupErr})
			}
		}
		out = append(out, st)
	}
	return out
}

// streamStatus lists the sub-cluster's streams, oldest first.
func (sc *subcluster) streamStatus() []StreamStatus {
	sc.streamsMu.Lock()
	defer sc.streamsMu.Unlock()
	var out []StreamStatus
	for st, info := range sc.streams {
		arrived, _ := st.Progress()
		out = append(out, StreamStatus{File: info.file, Backend: info.backend, Started: info.started, Arrived: arrived, Size: st.Size()})
	}
	slices.SortFunc(out, func(a, b StreamStatus) int { return a.Started.Compare(b.Started) })
	return out
}
