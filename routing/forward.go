package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ctftp/ctftp"
)

// forwarder is the Source NewForwarder returns.
type forwarder struct {
	r     *Router
	next  ctftp.Source
	peek  peeker     // next, when it can answer from memory; else nil
	pre   Prefetcher // next's, when it has the capability
	grace time.Duration
	log   *slog.Logger
	now   func() time.Time
	m     forwarderMetrics
}

var _ ctftp.Source = (*forwarder)(nil)

// peeker is a next Source that can answer from memory alone (the cache's
// Peek): a file, or an error wrapping ctftp.ErrNotFound, with ok; ok
// false when answering would mean asking a backend.
type peeker interface {
	Peek(req ctftp.Request) (f *ctftp.File, ok bool, err error)
}

// NewForwarder returns the Source that routes each request with r and
// asks next (the cache in front of the backends, keyed by sub-cluster and
// name) on behalf of the chosen sub-cluster(s), with req.Subcluster set:
//
//   - a rule's sub-cluster is asked alone, and its answer is final;
//   - a learned sub-cluster is asked alone; if it says not found, the
//     other sub-clusters are fanned out to, and one that has the file
//     replaces the route (the phone moved); if none has it the route
//     stays, since phones ask their own sub-cluster for files it does
//     not have (CTLSEP<MAC>.tlv) at every boot. If the learned
//     sub-cluster fails otherwise the failure is returned: a phone's
//     files live in one sub-cluster, and serving another's during an
//     outage could hand it a configuration signed by a stranger;
//   - a fan-out asks every sub-cluster, in parallel or in sequence as
//     configured, and serves the first positive answer, by priority.
//
// A positive answer for a per-device file teaches r the MAC's route.
// The result wraps ctftp.ErrNotFound only when every sub-cluster asked
// said not found; when none had the file and any failed otherwise it
// wraps ctftp.ErrUnavailable, so that an outage never sends a phone to
// its fallback file. The one exception, a per-device trust list that no
// live sub-cluster has while another is known down, is noWinner's.
//
// Open returns only after every call it made to next has returned, and
// closes every Body it does not return: no goroutine or open file
// outlives it. The returned Source is safe for concurrent use.
func NewForwarder(r *Router, next ctftp.Source, opts Options) ctftp.Source {
	opts = opts.withDefaults()
	p, _ := next.(peeker)
	pre, _ := next.(Prefetcher)
	if pre == nil && len(r.prefetch) > 0 {
		// A wrapper between the forwarder and the cache that does not
		// pass the capability on turns prefetching off for every phone;
		// say so instead of letting cold boots slow down unexplained.
		opts.Logger.Warn("routing: prefetch is configured but the source behind routing cannot prefetch; no prefetch will be made",
			"source", fmt.Sprintf("%T", next))
	}
	return &forwarder{
		r:     r,
		next:  next,
		peek:  p,
		pre:   pre,
		grace: r.grace,
		log:   opts.Logger,
		now:   opts.Now,
		m:     newForwarderMetrics(opts.Metrics),
	}
}

// outcome is one sub-cluster's answer. err == nil means a positive answer
// with a usable file.
type outcome struct {
	subcluster string
	file       *ctftp.File
	err        error
}

func (o outcome) notFound() bool { return errors.Is(o.err, ctftp.ErrNotFound) }

// Open routes req and asks next; see NewForwarder.
func (f *forwarder) Open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	d := f.r.decide(req, false)
	f.m.decisions[d.Kind].Inc()
	switch d.Kind {
	case RuleMatch:
		f.prefetch(ctx, req, d.Prefetch, d.Subclusters[0], d.MAC, "rule")
		return f.single(ctx, req, d.Subclusters[0])
	case Migration:
		// Learned, so that the phone stays on the side that served it
		// when the wave is later removed from the configuration.
		sc := d.Subclusters[0]
		f.prefetch(ctx, req, d.Prefetch, sc, d.MAC, "migration wave")
		file, err := f.single(ctx, req, sc)
		if err == nil {
			f.r.Learn(d.MAC, sc)
			w := f.r.migrations.Lookup(d.MAC)
			side := "from"
			if sc == w.To {
				side = "to"
			}
			f.r.migrations.served(w, d.MAC, side, req.Name)
		}
		return file, err
	case Learned:
		sc := d.Subclusters[0]
		f.prefetch(ctx, req, d.Prefetch, sc, d.MAC, "learned route")
		file, err := f.single(ctx, req, sc)
		if err == nil {
			f.r.learnMAC(d.MAC, sc)
			return file, nil
		}
		if !errors.Is(err, ctftp.ErrNotFound) {
			return nil, err
		}
		others := f.r.others(sc)
		if len(others) == 0 {
			return nil, err
		}
		// The route is not forgotten here: a phone asks for files its
		// own sub-cluster does not have at every boot (CTLSEP<MAC>.tlv
		// on a cluster without a per-device CTL, before falling back to
		// CTLFile.tlv), and forgetting would turn the rest of that boot
		// into fan-outs. If the phone moved, the fan-out finds it and
		// Learn replaces the route.
		f.log.Debug("routing: learned sub-cluster does not have the file", "mac", d.MAC, "file", req.Name, "subcluster", sc)
		f.m.decisions[FanOut].Inc()
		return f.fanOut(ctx, req, d, others)
	default:
		return f.fanOut(ctx, req, d, d.Subclusters)
	}
}

// ask calls next for one sub-cluster and normalises the answer: a
// positive answer has a File with a Body, anything else is an error and
// any half-returned Body is closed.
func (f *forwarder) ask(ctx context.Context, req ctftp.Request, sc string) outcome {
	req.Subcluster = sc
	if o, ok := f.askMemory(req); ok {
		return o
	}
	file, err := f.next.Open(ctx, req)
	if err == nil && (file == nil || file.Body == nil) {
		err = errNoFile
	}
	if err != nil {
		if file != nil && file.Body != nil {
			_ = file.Body.Close()
		}
		return outcome{subcluster: sc, err: fmt.Errorf("%s: %w", sc, err)}
	}
	if file.Subcluster == "" {
		file.Subcluster = sc
	}
	return outcome{subcluster: sc, file: file}
}

// askMemory is ask (req.Subcluster set) when next can answer from
// memory; ok is false when it cannot.
func (f *forwarder) askMemory(req ctftp.Request) (o outcome, ok bool) {
	if f.peek == nil {
		return outcome{}, false
	}
	file, ok, err := f.peek.Peek(req)
	switch {
	case !ok:
		return outcome{}, false
	case err != nil:
		return outcome{subcluster: req.Subcluster, err: err}, true
	case file == nil || file.Body == nil:
		return outcome{subcluster: req.Subcluster, err: errNoFile}, true
	}
	if file.Subcluster == "" {
		file.Subcluster = req.Subcluster
	}
	return outcome{subcluster: req.Subcluster, file: file}, true
}

// fromMemory decides a fan-out from memory when it can: asking scs in
// priority order, it stops at the first positive answer (won), which
// every sub-cluster above has answered "not found", as a parallel
// fan-out would decide too, without a goroutine per sub-cluster or a
// backend asked. decided with no won file: every sub-cluster said "not
// found" (known). decided is false as soon as one answer is not in
// memory before a positive one: the fan-out then runs as configured,
// with the answers already in hand (known, a prefix of scs) taken as
// given, so nothing is asked or counted twice.
func (f *forwarder) fromMemory(req ctftp.Request, scs []string) (won outcome, known []outcome, decided bool) {
	if f.peek == nil {
		return outcome{}, nil, false
	}
	for _, sc := range scs {
		req.Subcluster = sc
		o, ok := f.askMemory(req)
		switch {
		case ok && o.err == nil:
			return o, known, true
		case ok:
			known = append(known, o)
			if !o.notFound() {
				return outcome{}, known, false
			}
		default:
			return outcome{}, known, false
		}
	}
	return outcome{}, known, true
}

// single asks the one sub-cluster a rule or learned route names.
func (f *forwarder) single(ctx context.Context, req ctftp.Request, sc string) (*ctftp.File, error) {
	o := f.ask(ctx, req, sc)
	switch {
	case o.err == nil:
		return o.file, nil
	case o.notFound():
		return nil, fmt.Errorf("routing: %q: %w", req.Name, o.err)
	case errors.Is(o.err, ctftp.ErrDenied):
		// The one sub-cluster that owns the phone refused: that is its
		// answer, not an outage.
		return nil, fmt.Errorf("routing: %q: %w", req.Name, o.err)
	}
	return nil, &outageError{name: req.Name, outcomes: []outcome{o}}
}

// fanOut asks scs and serves the best positive answer. Only then is the
// sub-cluster known, so only then are the files after this one
// prefetched: prefetching across every sub-cluster would multiply the
// load a fan-out puts on them.
func (f *forwarder) fanOut(ctx context.Context, req ctftp.Request, d Decision, scs []string) (*ctftp.File, error) {
	mac, strategy := d.MAC, d.Strategy
	start := f.now()
	defer func() { f.m.fanoutDuration.Update(f.now().Sub(start).Seconds()) }()

	won, known, decided := f.fromMemory(req, scs)
	if decided && won.file != nil {
		// Nobody above it has the file, and nobody else was asked.
		if mac != "" {
			f.r.learnMAC(mac, won.subcluster)
			f.prefetch(ctx, req, d.Prefetch, won.subcluster, mac, "fan-out answer")
		}
		return won.file, nil
	}
	winner, outs := -1, known
	switch {
	case decided:
	case strategy == StrategySequential:
		winner, outs = f.sequential(ctx, req, scs, known)
	default:
		winner, outs = f.parallel(ctx, req, scs, known)
	}

	var also []string
	for i, o := range outs {
		if o.err == nil && i != winner {
			also = append(also, o.subcluster)
			_ = o.file.Body.Close()
		}
	}
	if winner < 0 {
		return nil, f.noWinner(req, scs, outs)
	}
	w := outs[winner]
	if mac != "" {
		if len(also) > 0 {
			// Which sub-cluster serves the phone depends on who answers
			// first; its admins need to delete one of the two devices.
			f.m.duplicates.Inc()
			f.log.Warn("routing: device present in more than one sub-cluster",
				"mac", mac, "file", req.Name, "served_by", w.subcluster, "also_in", also)
		}
		f.r.learnMAC(mac, w.subcluster)
		f.prefetch(ctx, req, d.Prefetch, w.subcluster, mac, "fan-out answer")
	}
	return w.file, nil
}

// noWinner is the answer of a fan-out in which no sub-cluster had the
// file: "not found" when every one said so; an outage when any failed.
// A sub-cluster known down (ctftp.ErrNotAsked: it was skipped at once,
// without waiting) is the one exception: for a phone's own trust list
// (CTLSEP/ITLSEP<MAC>.tlv), which most clusters lack and which the phone
// asks for first at every boot, the live sub-clusters' "not found" is
// the answer, so the phone moves on to CTLFile.tlv instead of failing
// its boot on another cluster's outage. For every other file it stays an
// outage (error 0: the phone retries), so a phone never falls back to a
// default config and registers in the wrong place.
func (f *forwarder) noWinner(req ctftp.Request, scs []string, outs []outcome) error {
	var notFound, notAsked int
	var down []string
	for _, o := range outs {
		switch {
		case o.notFound():
			notFound++
		case errors.Is(o.err, ctftp.ErrNotAsked):
			notAsked++
			down = append(down, o.subcluster)
		default:
			return f.outage(req, outs, notAsked > 0)
		}
	}
	if notAsked == 0 {
		return fmt.Errorf("routing: %q: not in %s: %w", req.Name, strings.Join(scs, ", "), ctftp.ErrNotFound)
	}
	if notFound > 0 && IsDeviceTrustList(req.Name) {
		f.m.notAsked[true].Inc()
		f.log.Info("routing: per-device trust list not in any live sub-cluster; not found, with sub-clusters down",
			"file", req.Name, "down", down)
		return fmt.Errorf("routing: %q: not in %s (%s down, not asked): %w", req.Name,
			strings.Join(live(scs, down), ", "), strings.Join(down, ", "), ctftp.ErrNotFound)
	}
	return f.outage(req, outs, true)
}

// outage returns the outage error, counting it when a sub-cluster known
// down was among those that could not answer.
func (f *forwarder) outage(req ctftp.Request, outs []outcome, notAsked bool) error {
	if !notAsked {
		for _, o := range outs {
			notAsked = notAsked || errors.Is(o.err, ctftp.ErrNotAsked)
		}
	}
	if notAsked {
		f.m.notAsked[false].Inc()
	}
	return &outageError{name: req.Name, outcomes: outs}
}

// live is scs without down.
func live(scs, down []string) []string {
	var out []string
	for _, sc := range scs {
		if !slices.Contains(down, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// sequential asks scs one after another in priority order and stops at
// the first positive answer, as CUCM walks its alternate file locations.
// It returns the winner's index in outs (-1 for none) and every outcome.
// known are answers already in hand for the first sub-clusters.
func (f *forwarder) sequential(ctx context.Context, req ctftp.Request, scs []string, known []outcome) (int, []outcome) {
	outs := make([]outcome, 0, len(scs))
	for i, sc := range scs {
		if i < len(known) {
			// Answered already; only a positive answer ends the walk,
			// and fromMemory hands over none.
			outs = append(outs, known[i])
			continue
		}
		if err := ctx.Err(); err != nil {
			outs = append(outs, outcome{subcluster: sc, err: fmt.Errorf("%s: %w", sc, err)})
			return -1, outs
		}
		o := f.ask(ctx, req, sc)
		outs = append(outs, o)
		if o.err == nil {
			return i, outs
		}
	}
	return -1, outs
}

// parallel asks every sub-cluster at once. The answer is the positive
// answer of the highest priority, decided as soon as every sub-cluster
// above the best positive answer so far has answered, or Grace after the
// first positive answer, whichever comes first. A sub-cluster that fails
// or says not found never holds up the answer, and one that hangs delays
// it by at most Grace once another has answered. Only then are the others
// cancelled; parallel waits for them to return (cancelled calls return
// at once) so that it owns no goroutine after it returns. It returns the
// winner's index in outs (-1 for none) and every outcome, positive late
// answers included, for duplicate detection. known are answers already in
// hand for the first sub-clusters (fromMemory's).
func (f *forwarder) parallel(ctx context.Context, req ctftp.Request, scs []string, known []outcome) (int, []outcome) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type answer struct {
		i int
		o outcome
	}
	// Buffered for all, so no asker blocks on a reader that has left.
	answers := make(chan answer, len(scs))
	for i, sc := range scs {
		if i < len(known) {
			answers <- answer{i, known[i]}
			continue
		}
		go func() { answers <- answer{i, f.ask(ctx, req, sc)} }()
	}

	outs := make([]outcome, len(scs))
	done := make([]bool, len(scs))
	pending := len(scs)
	force := false // pick among answers in hand, without waiting
	var grace *time.Timer
	var graceC <-chan time.Time
	defer func() {
		if grace != nil {
			grace.Stop()
		}
	}()
	winner := -1
	for winner < 0 && pending > 0 {
		select {
		case a := <-answers:
			outs[a.i], done[a.i] = a.o, true
			pending--
			if a.o.err == nil && graceC == nil && !force {
				if f.grace <= 0 {
					force = true
				} else {
					grace = time.NewTimer(f.grace)
					graceC = grace.C
				}
			}
		case <-graceC:
			force = true
		}
		winner = pick(outs, done, force)
	}
	cancel()
	for ; pending > 0; pending-- {
		a := <-answers
		outs[a.i] = a.o
	}
	return winner, outs
}

// pick returns the index of the highest-priority positive answer, or -1
// if there is none yet or, unless force, a higher-priority sub-cluster
// is still pending.
func pick(outs []outcome, done []bool, force bool) int {
	for i := range outs {
		if !done[i] {
			if force {
				continue
			}
			return -1
		}
		if outs[i].err == nil {
			return i
		}
	}
	return -1
}

// outageError is the answer when no sub-cluster had the file and at least
// one could not answer. It wraps ctftp.ErrUnavailable and the failures,
// but never a not-found answer (errors.Is(err, ctftp.ErrNotFound) must be
// false for an outage) nor a refusal (one sub-cluster's ErrDenied must
// not decide a fan-out's answer); both still show in its text.
type outageError struct {
	name     string
	outcomes []outcome
}

func (e *outageError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "routing: %q: %v: ", e.name, ctftp.ErrUnavailable)
	for i, o := range e.outcomes {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(o.err.Error())
	}
	return b.String()
}

func (e *outageError) Unwrap() []error {
	errs := []error{ctftp.ErrUnavailable}
	for _, o := range e.outcomes {
		if !o.notFound() && !errors.Is(o.err, ctftp.ErrDenied) {
			errs = append(errs, o.err)
		}
	}
	return errs
}
