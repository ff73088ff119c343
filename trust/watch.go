package trust

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/itl"
)

// CentralFunc reads the gateway's own ITLFile.tlv (the central side). An
// error wrapping ctftp.ErrNotFound means the root has none.
type CentralFunc func(ctx context.Context) ([]byte, error)

// WatchOptions are NewWatcher's settings and collaborators, read once.
// The zero value probes once per Probe call, never periodically, with no
// central ITL, no logging and a private metrics set.
type WatchOptions struct {
	// Interval is the time between Run's probe rounds; 0 means Run only
	// waits for its context (rounds happen when Probe is called).
	Interval time.Duration
	// Retry, when shorter than Interval (or Interval is 0), is the time
	// between rounds while some side has never been classified (no
	// answer yet), so a sub-cluster that was down at start is classified
	// soon after it comes up. 0 means Interval.
	Retry time.Duration
	// Timeout bounds one side's probe in a round; 0 leaves only the
	// caller's context.
	Timeout time.Duration
	// Central reads the gateway's own ITLFile.tlv; nil means the root
	// has none (the central side is pre-8.0).
	Central CentralFunc
	// Logger receives changes: signers, classes, heterogeneity, probe
	// failures (once per new error). nil discards them.
	Logger *slog.Logger
	// Metrics receives ctftp_homogeneous and the ctftp_trust_* counters;
	// nil uses a private set. Series are shared (GetOrCreate), so the
	// watcher of a reloaded configuration continues them.
	Metrics *metrics.Set
	// Now is the clock for timestamps; nil means time.Now.
	Now func() time.Time
	// OnEvent, when set, is called for each event of a round from the
	// goroutine that called Probe, with the watcher's lock held: after
	// the round's alarms are visible to Sub, before anything of the round
	// is visible to Report, Problems and Status. It must not call the
	// Watcher.
	OnEvent func(Event)
	// Progress, when set, is called as each side's probe of a round
	// ends (validate prints it), from the probing goroutines.
	Progress func(Classification)
	// Previous is the watcher of the configuration this one replaces:
	// its last verified ITL of each sub-cluster (by name) is where
	// signer comparisons start, so a change across a reload is still
	// seen. Its alarms are not carried: a reload acknowledges them.
	Previous *Watcher
}

// EventKind says what happened to a sub-cluster.
type EventKind int

// The events a round can report.
const (
	// EventSignerChanged: the sub-cluster's verified ITL is signed by
	// another certificate (issuer and serial) than the one before it,
	// e.g. after a certificate regeneration. Its cached files must be
	// fetched again; phones holding the old ITL may reject everything.
	EventSignerChanged EventKind = iota + 1
	// EventHeterogeneous: the sub-cluster's era now conflicts with the
	// setup's era at start (or at the last reload).
	EventHeterogeneous
	// EventHomogeneous: a heterogeneous sub-cluster agrees again.
	EventHomogeneous
)

func (k EventKind) String() string {
	switch k {
	case EventSignerChanged:
		return "signer_changed"
	case EventHeterogeneous:
		return "heterogeneous"
	case EventHomogeneous:
		return "homogeneous"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one change a round saw. A plain value.
type Event struct {
	Kind       EventKind
	Subcluster string
	// OldSigner and NewSigner describe the signers of EventSignerChanged.
	OldSigner, NewSigner string
	// Class is the sub-cluster's class after the round.
	Class Class
	// Baseline is the era the setup had when the watcher started.
	Baseline Verdict
}

// Watcher keeps classifying the central side and every sub-cluster of a
// Set by their ITLFile.tlv: it re-probes them, compares each ITL's signer
// with the previous one, and judges each round's homogeneity against the
// first round's (the baseline). It serves the current ITL of each
// sub-cluster to the forwarded-file checks and the alarms to the
// gateway's policy. A Watcher is safe for concurrent use; rounds take
// turns.
type Watcher struct {
	set     *cluster.Set
	opts    WatchOptions
	log     *slog.Logger
	now     func() time.Time
	central CentralFunc

	homogeneous *metrics.Gauge
	signerTotal map[string]*metrics.Counter // by sub-cluster; read-only after New
	hetTotal    map[string]*metrics.Counter
	active      atomic.Bool

	round sync.Mutex // one round at a time

	mu          sync.Mutex // guards the fields below
	centralSide sideState
	subs        []*sideState
	baseline    Verdict
	hasBaseline bool
	report      Report

	// snap is what the request path reads without a lock: each
	// sub-cluster's ITL and alarm, replaced whole after every round.
	snap atomic.Pointer[map[string]SubTrust]
}

// sideState is one side's history across rounds. Guarded by Watcher.mu.
type sideState struct {
	cls Classification
	// lastITL is the last verified ITL, kept through rounds that find
	// none or fail, so a signer change is seen whatever happened between.
	lastITL *itl.File
	// signerChange describes the last signer change; it stays until the
	// watcher is replaced (a reload acknowledges it).
	signerChange string
	// heterogeneous: the side's era conflicts with the baseline now.
	heterogeneous bool
	// lastErr is the last probe error's text, to log each one once.
	lastErr string
}

// SubTrust is what the request path needs of one sub-cluster: the ITL its
// phones are taken to hold and whether it is alarmed. A plain value.
type SubTrust struct {
	// Known: a probe has classified the sub-cluster (ITL is then its
	// verified ITL, or nil for pre-8.0).
	Known bool
	Class Class
	ITL   *itl.File
	// Alarm says why the sub-cluster should not be trusted now: its
	// signer changed, or it turned heterogeneous. "" when neither.
	Alarm string
}

// NewWatcher watches set's sub-clusters (set may be nil: no
// sub-clusters, only the central side). It starts nothing and probes
// nothing: call Probe for the first round, then Run.
func NewWatcher(set *cluster.Set, opts WatchOptions) *Watcher {
	w := &Watcher{set: set, opts: opts, log: opts.Logger, now: opts.Now, central: opts.Central}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.now == nil {
		w.now = time.Now
	}
	ms := opts.Metrics
	if ms == nil {
		ms = metrics.NewSet()
	}
	w.homogeneous = ms.GetOrCreateGauge("ctftp_homogeneous", nil)
	w.signerTotal = map[string]*metrics.Counter{}
	w.hetTotal = map[string]*metrics.Counter{}
	w.centralSide.cls = newClassification(CentralName, -1, "")
	if set != nil {
		for i, sc := range set.Config().Subclusters {
			st := &sideState{cls: newClassification(sc.Name, i, sc.Version)}
			w.subs = append(w.subs, st)
			w.signerTotal[sc.Name] = ms.GetOrCreateCounter(fmt.Sprintf(`ctftp_trust_signer_changes_total{subcluster=%q}`, sc.Name))
			w.hetTotal[sc.Name] = ms.GetOrCreateCounter(fmt.Sprintf(`ctftp_trust_heterogeneous_total{subcluster=%q}`, sc.Name))
		}
	}
	if p := opts.Previous; p != nil {
		p.mu.Lock()
		prev := map[string]*itl.File{}
		for _, st := range p.subs {
			prev[st.cls.Name] = st.lastITL
		}
		w.centralSide.lastITL = p.centralSide.lastITL
		p.mu.Unlock()
		for _, st := range w.subs {
			st.lastITL = prev[st.cls.Name]
		}
	}
	w.mu.Lock()
	w.report = w.checkLocked()
	w.publishSnapLocked()
	w.mu.Unlock()
	return w
}

// outcome is one side's probe in a round.
type outcome struct {
	class Class
	itl   *itl.File
	err   error
}

// Probe runs one round now: it fetches every sub-cluster's ITLFile.tlv
// (through Set.ProbeFetch, all at once) and reads the central one,
// classifies them, compares signers, judges homogeneity (the first round
// sets the baseline), logs and counts what changed, calls OnEvent, and
// returns the round's report. Probe waits for the goroutines it starts.
func (w *Watcher) Probe(ctx context.Context) Report {
	w.round.Lock()
	defer w.round.Unlock()
	outs := make([]outcome, len(w.subs))
	var wg sync.WaitGroup
	for i, st := range w.subs {
		name := st.cls.Name
		wg.Go(func() {
			data, err := w.fetch(ctx, func(ctx context.Context) ([]byte, error) {
				return w.set.ProbeFetch(ctx, name, ITLFileName)
			})
			outs[i].class, outs[i].itl, outs[i].err = ClassifyITL(data, err)
			w.progress(st, outs[i])
		})
	}
	var central outcome
	if w.central == nil {
		central.class = ClassPre80
	} else {
		data, err := w.fetch(ctx, w.central)
		central.class, central.itl, central.err = ClassifyITL(data, err)
	}
	w.progress(&w.centralSide, central)
	wg.Wait()

	now := w.now()
	w.mu.Lock()
	var events []Event
	w.apply(&w.centralSide, central, now)
	for i, st := range w.subs {
		if ev, changed := w.apply(st, outs[i], now); changed {
			events = append(events, ev)
		}
	}
	r := w.checkLocked()
	if !w.hasBaseline {
		w.baseline, w.hasBaseline = r.Verdict, true
		w.log.Info("trust: ITL homogeneity", "verdict", r.Verdict.String(), "problems", len(r.Problems))
	}
	events = append(events, w.judgeLocked()...)
	r = w.checkLocked()
	w.report = r
	// The alarms first, so that the request path refuses before the
	// consequences run (a purged cache is not refilled from an alarmed
	// sub-cluster); then the events, still under mu, so that nobody
	// reading Problems or Status sees a change before its consequences.
	w.publishSnapLocked()
	for _, ev := range events {
		w.announce(ev)
	}
	w.mu.Unlock()

	if w.active.Load() {
		w.homogeneous.Set(b2f(r.Homogeneous()))
	}
	return r
}

// fetch runs one side's probe under the per-side timeout.
func (w *Watcher) fetch(ctx context.Context, f func(context.Context) ([]byte, error)) ([]byte, error) {
	if w.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.opts.Timeout)
		defer cancel()
	}
	return f(ctx)
}

func (w *Watcher) progress(st *sideState, o outcome) {
	if w.opts.Progress == nil {
		return
	}
	w.mu.Lock()
	c := st.cls
	w.mu.Unlock()
	c.record(o.class, o.itl, o.err, w.now())
	w.opts.Progress(c)
}

// apply records one side's outcome and reports a signer change. Called
// with mu held; it only logs.
func (w *Watcher) apply(st *sideState, o outcome, now time.Time) (Event, bool) {
	name := st.cls.Name
	oldClass, wasProbed := st.cls.ProbedClass, st.cls.Probed
	st.cls.record(o.class, o.itl, o.err, now)
	if o.err != nil {
		if msg := o.err.Error(); msg != st.lastErr {
			w.log.Warn("trust: ITL probe failed", "subcluster", name, "err", o.err, "stale", st.cls.Stale)
			st.lastErr = msg
		}
		return Event{}, false
	}
	if st.lastErr != "" {
		w.log.Info("trust: ITL probe answered again", "subcluster", name, "class", o.class.String())
		st.lastErr = ""
	}
	if wasProbed && oldClass != o.class {
		w.log.Warn("trust: ITL class changed", "subcluster", name, "old", oldClass.String(), "new", o.class.String())
	}
	if o.itl == nil {
		return Event{}, false
	}
	prev := st.lastITL
	st.lastITL = o.itl
	if prev == nil || sameSigner(prev.Header.Signer, o.itl.Header.Signer) {
		return Event{}, false
	}
	oldS, newS := signerText(prev.Header.Signer), signerText(o.itl.Header.Signer)
	if st.cls.Index < 0 {
		// The root is the admin's own doing: worth a line, not an alarm.
		w.log.Warn("trust: the root's ITLFile.tlv signer changed", "old", oldS, "new", newS)
		return Event{}, false
	}
	st.signerChange = fmt.Sprintf("ITL signer changed at %s from %s to %s", now.UTC().Format(time.RFC3339), oldS, newS)
	return Event{Kind: EventSignerChanged, Subcluster: name, OldSigner: oldS, NewSigner: newS, Class: o.class, Baseline: w.baseline}, true
}

// judgeLocked marks each side whose era conflicts with the baseline and
// returns the transitions.
func (w *Watcher) judgeLocked() []Event {
	var events []Event
	for _, st := range append([]*sideState{&w.centralSide}, w.subs...) {
		het := conflicts(w.baseline, st.cls)
		if het == st.heterogeneous {
			continue
		}
		st.heterogeneous = het
		if st.cls.Index < 0 {
			if het {
				w.log.Error("trust: the root's ITLFile.tlv now conflicts with the setup's era", "class", st.cls.Class().String(), "baseline", w.baseline.String())
			}
			continue
		}
		kind := EventHomogeneous
		if het {
			kind = EventHeterogeneous
		}
		events = append(events, Event{Kind: kind, Subcluster: st.cls.Name, Class: st.cls.Class(), Baseline: w.baseline})
	}
	return events
}

// conflicts says whether a side of class c breaks a setup judged
// baseline: a pre-8.0 side among 8.x+ ones, or a real (probed, non-blank)
// ITL among pre-8.0 or rollback ones.
func conflicts(baseline Verdict, c Classification) bool {
	switch baseline {
	case VerdictAll8x:
		return c.Class() == ClassPre80
	case VerdictAllPre80, VerdictMixedRollback, VerdictUndecided:
		return c.Class() == ClassSBD && c.Probed
	}
	return false
}

// announce logs and counts an event, then hands it to OnEvent. Called
// with mu held.
func (w *Watcher) announce(ev Event) {
	switch ev.Kind {
	case EventSignerChanged:
		w.signerTotal[ev.Subcluster].Inc()
		w.log.Error("trust: ITL signer changed", "subcluster", ev.Subcluster, "old", ev.OldSigner, "new", ev.NewSigner)
	case EventHeterogeneous:
		w.hetTotal[ev.Subcluster].Inc()
		w.log.Error("trust: sub-cluster turned heterogeneous", "subcluster", ev.Subcluster, "class", ev.Class.String(), "baseline", ev.Baseline.String())
	case EventHomogeneous:
		w.log.Info("trust: sub-cluster agrees with the setup's era again", "subcluster", ev.Subcluster, "class", ev.Class.String())
	}
	if w.opts.OnEvent != nil {
		w.opts.OnEvent(ev)
	}
}

func (w *Watcher) checkLocked() Report {
	subs := make([]Classification, len(w.subs))
	for i, st := range w.subs {
		subs[i] = st.cls
	}
	return Check(w.centralSide.cls, subs)
}

func (w *Watcher) publishSnapLocked() {
	m := make(map[string]SubTrust, len(w.subs))
	for _, st := range w.subs {
		m[st.cls.Name] = SubTrust{Known: st.cls.Probed, Class: st.cls.Class(), ITL: st.cls.ITL, Alarm: alarm(st)}
	}
	w.snap.Store(&m)
}

func alarm(st *sideState) string {
	switch {
	case st.signerChange != "":
		return st.signerChange
	case st.heterogeneous:
		return fmt.Sprintf("turned %s: mixed ITL eras", st.cls.Class())
	}
	return ""
}

// Run probes every Interval (every Retry while a side is unclassified)
// until ctx is done, then returns nil. It does not probe at once: the
// caller's first Probe is the start-up guard. Each round's fetches end
// with ctx.
func (w *Watcher) Run(ctx context.Context) error {
	for {
		d := w.opts.Interval
		if r := w.opts.Retry; r > 0 && (d <= 0 || r < d) && w.unclassified() {
			d = r
		}
		if d <= 0 {
			<-ctx.Done()
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
			w.Probe(ctx)
		}
	}
}

// unclassified reports a side no probe has classified yet.
func (w *Watcher) unclassified() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, st := range append([]*sideState{&w.centralSide}, w.subs...) {
		if !st.cls.Probed {
			return true
		}
	}
	return false
}

// Activate makes this watcher the one that sets ctftp_homogeneous (from
// its last round on), so the watcher of a configuration that is still
// being validated does not overwrite the serving one's.
func (w *Watcher) Activate() {
	w.active.Store(true)
	w.mu.Lock()
	h := w.report.Homogeneous()
	w.mu.Unlock()
	w.homogeneous.Set(b2f(h))
}

// Sub returns what the request path needs of sub-cluster name; the zero
// SubTrust for a name the watcher does not have.
func (w *Watcher) Sub(name string) SubTrust {
	return (*w.snap.Load())[name]
}

// Report returns the last round's report (before the first round: the
// declared versions only).
func (w *Watcher) Report() Report {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.report
}

// Problems lists why the setup should not be trusted now, for /readyz:
// the last round's problems but wrong declared versions (a label, shown
// by Status), each sub-cluster whose signer changed (until the watcher
// is replaced by a reload) and each side that turned heterogeneous.
func (w *Watcher) Problems() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, p := range w.report.Problems {
		if p.Kind != ProblemVersion {
			out = append(out, p.Msg)
		}
	}
	if w.centralSide.heterogeneous {
		out = append(out, fmt.Sprintf("root: %s is now %s, which conflicts with the setup's era (%s)", ITLFileName, w.centralSide.cls.Class(), w.baseline))
	}
	for _, st := range w.subs {
		if st.signerChange != "" {
			out = append(out, fmt.Sprintf("subcluster %q: %s (reported until the next reload)", st.cls.Name, st.signerChange))
		}
		if st.heterogeneous {
			out = append(out, fmt.Sprintf("subcluster %q: now %s, which conflicts with the setup's era (%s)", st.cls.Name, st.cls.Class(), w.baseline))
		}
	}
	return out
}

// SideStatus is one side in /status. A snapshot the caller owns.
type SideStatus struct {
	Classification
	// Error is the last probe's error, "" when it classified the side.
	Error         string `json:"error,omitempty"`
	SignerChange  string `json:"signer_change,omitempty"`
	Heterogeneous bool   `json:"heterogeneous"`
}

// TrustStatus is the watcher's state for /status. A snapshot the caller
// owns.
type TrustStatus struct {
	Verdict     Verdict      `json:"verdict"`
	Baseline    Verdict      `json:"baseline"`
	Homogeneous bool         `json:"homogeneous"`
	Sides       []SideStatus `json:"sides"`
	// Problems are the last round's, wrong declared versions included.
	Problems []string `json:"problems,omitempty"`
}

// Status reports every side, the central one first.
func (w *Watcher) Status() TrustStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := TrustStatus{Verdict: w.report.Verdict, Baseline: w.baseline, Homogeneous: w.report.Homogeneous(), Problems: w.report.Messages()}
	for _, s := range append([]*sideState{&w.centralSide}, w.subs...) {
		ss := SideStatus{Classification: s.cls, SignerChange: s.signerChange, Heterogeneous: s.heterogeneous}
		if s.cls.Err != nil {
			ss.Error = s.cls.Err.Error()
		}
		st.Sides = append(st.Sides, ss)
	}
	return st
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
