package routing

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
)

// Kind says how a Decision was reached.
type Kind int

// The kinds of Decision, most specific first.
const (
	// RuleMatch: a configured rule named the sub-cluster.
	RuleMatch Kind = iota
	// Learned: an earlier answer for this MAC came from the sub-cluster.
	Learned
	// FanOut: nothing places the request; every sub-cluster is asked.
	FanOut
	// Migration: the device belongs to a migration wave, which decides
	// over rules and learned routes: From while staged or rolled back,
	// To once cut over.
	Migration
)

// String returns the kind as the `kind` label of
// ctftp_routing_decisions_total writes it.
func (k Kind) String() string {
	switch k {
	case RuleMatch:
		return "rule"
	case Learned:
		return "learned"
	case FanOut:
		return "fanout"
	case Migration:
		return "migration"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// MarshalText writes the kind as String does, for `ctftp route --json`.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Decision is where a request goes and why. It is a value; the caller may
// keep and modify it.
type Decision struct {
	// MAC is the phone's MAC from the file name, "" when it has none.
	MAC string
	// Kind says how the decision was reached.
	Kind Kind
	// Rule is the index in Config.Rules of the rule that matched, or -1.
	Rule int
	// Wave names the migration wave of a Migration decision, else "".
	Wave string
	// Subclusters are the sub-clusters to ask, in the order to ask them
	// (priority order for a fan-out). Never empty.
	Subclusters []string
	// Strategy is the configured fan-out strategy. A Learned decision
	// uses it when the learned sub-cluster no longer has the file.
	Strategy string
	// Reason explains the decision for `ctftp route`, e.g.
	// "rules[2] (mac_prefix 00AABB) -> west". Rules are named by their
	// index as in config errors, counting from 0.
	Reason string
	// Prefetch are the files of the phone's boot set that follow this
	// one (routing.prefetch): the forwarder prefetches them from the
	// decided sub-cluster, at once for a rule or a learned route, after
	// the answer for a fan-out. nil when the name is not in the boot set.
	Prefetch []string
}

// Options are a Router's or a forwarder's collaborators. The zero value
// is usable.
type Options struct {
	// Logger receives a warning per device found in two sub-clusters,
	// an info line per device that moved sub-cluster and per device file
	// loaded, and debug lines; nil discards them.
	Logger *slog.Logger
	// Metrics is the set the routing series are registered on; nil keeps
	// them on a private set nobody scrapes.
	Metrics *metrics.Set
	// Now reads the clock for learned-route ages, fan-out durations and
	// waves' cutover_at; nil means time.Now.
	Now func() time.Time
	// Migrations, for New, are the migration waves whose devices Route
	// sends to their wave's side over rules and learned routes; nil for
	// none. Built by NewMigrations for the same sub-clusters.
	Migrations *Migrations
	// Previous, for New, is the Router a reload replaces: its learned
	// routes to sub-clusters that are still configured carry over with
	// their ages, so a reload (a SIGHUP, an edited config, a replaced
	// device file) does not send every known phone back to a fan-out.
	Previous *Router
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Router decides which sub-cluster(s) a request goes to: configured rules
// first, then learned routes, then a fan-out over every sub-cluster in
// priority order. Its rules never change after New; for a reload build a
// new Router. Learned routes change through Learn and Forget.
//
// A Router is safe for concurrent use.
type Router struct {
	strategy    string
	grace       time.Duration
	rules       []compiled
	subclusters []string
	known       map[string]bool
	// one holds a one-element slice per sub-cluster, so a decision for
	// a single sub-cluster on the request path needs no allocation.
	one     map[string][]string
	learned *learnTable // nil: learning is off
	// learnFile keeps learned routes across restarts ("" = not kept);
	// savedVersion is the table's version it last wrote.
	learnFile    string
	savedVersion atomic.Uint64
	restored     int         // routes read from learnFile at New
	migrations   *Migrations // nil: no waves
	prefetch     []bootPattern
	log          *slog.Logger
	now          func() time.Time
	m            routerMetrics
}

// New builds a Router for cfg. subclusters are the configured
// sub-cluster names in priority order (first = highest). New validates
// cfg, checks that every rule names a known sub-cluster and reads every
// device file; it reports all problems at once, each naming its key.
func New(cfg Config, subclusters []string, opts Options) (*Router, error) {
	opts = opts.withDefaults()
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	known := make(map[string]bool, len(subclusters))
	for _, sc := range subclusters {
		switch {
		case sc == "":
			errs = append(errs, errors.New("subclusters: empty sub-cluster name"))
		case known[sc]:
			errs = append(errs, fmt.Errorf("subclusters: %q listed twice", sc))
		}
		known[sc] = true
	}
	if len(subclusters) == 0 {
		errs = append(errs, fmt.Errorf("subclusters: %w", ErrNoSubclusters))
	}
	r := &Router{
		strategy:    cfg.Strategy,
		grace:       cfg.Grace,
		subclusters: slices.Clone(subclusters),
		known:       known,
		one:         make(map[string][]string, len(subclusters)),
		log:         opts.Logger,
		now:         opts.Now,
		migrations:  opts.Migrations,
		m:           newRouterMetrics(opts.Metrics),
	}
	if r.strategy == "" {
		r.strategy = StrategyParallel
	}
	for _, sc := range r.subclusters {
		r.one[sc] = []string{sc}
	}
	if cfg.LearnTTL > 0 && cfg.LearnMax > 0 {
		r.learned = newLearnTable(cfg.LearnTTL, cfg.LearnMax)
	}
	if f := cfg.LearnFile; f != "" {
		r.learnFile = f
		if st, err := os.Stat(filepath.Dir(f)); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("learn_file: %q: its directory %q must exist", f, filepath.Dir(f)))
		} else if st, err := os.Stat(f); err == nil && !st.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("learn_file: %q is not a regular file", f))
		}
	}
	r.prefetch, _ = compilePrefetch(cfg.Prefetch) // Validate reported problems
	for i, rule := range cfg.Rules {
		key := fmt.Sprintf("rules[%d]", i)
		c, err := rule.compile(key)
		if err != nil {
			continue // Validate already reported it.
		}
		if !known[c.subcluster] {
			errs = append(errs, fmt.Errorf("%s.subcluster: %q: %w (configured: %s)",
				key, c.subcluster, ErrUnknownSubcluster, strings.Join(subclusters, ", ")))
		}
		if c.kind == matchDeviceFile {
			dl, err := ReadDeviceFile(c.deviceFile)
			for _, err := range unjoin(err) {
				errs = append(errs, fmt.Errorf("%s.device_file: %w", key, err))
			}
			c.macs = dl.MACs
			r.log.Info("routing: device file loaded", "rule", key, "file", c.deviceFile, "format", dl.Format,
				"devices", len(dl.MACs), "skipped", dl.Skipped)
		}
		r.rules = append(r.rules, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Previous != nil {
		r.m.learned.Set(float64(r.inherit(opts.Previous)))
	} else {
		r.m.learned.Set(float64(r.restoreLearnFile()))
	}
	return r, nil
}

// inherit takes prev's live learned routes to sub-clusters r knows, and
// returns the number r holds. A route whose sub-cluster now serves other
// phones heals itself: the forwarder asks the others when the learned
// one no longer has a phone's file.
func (r *Router) inherit(prev *Router) int {
	if prev == nil || prev.learned == nil || r.learned == nil {
		return 0
	}
	routes := prev.learned.live(r.now())
	held := r.adopt(routes)
	if len(routes) > 0 {
		r.log.Info("routing: learned routes kept across the reload", "kept", held,
			"dropped", len(routes)-held, "of", len(routes))
	}
	return held
}

// adopt adds routes to r's table, but those to sub-clusters r does not
// know (taken out of the config since), and returns the number it holds.
func (r *Router) adopt(routes []learned) int {
	var kept []learned
	for _, l := range routes {
		if r.known[l.subcluster] {
			kept = append(kept, l)
		}
	}
	return r.learned.restore(kept, r.now())
}

// unjoin lists the errors errors.Join put together, so each can be
// prefixed with its key on a line of its own.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Subclusters returns the sub-cluster names in priority order.
func (r *Router) Subclusters() []string { return slices.Clone(r.subclusters) }

// Route decides where req goes. It does no I/O and changes nothing, so
// `ctftp route` can call it to explain a decision without sending a
// packet. A device of a migration wave goes to its wave's side, and the
// Reason says what that overrides; otherwise client rules match on
// req.Client, and the other rules and learned routes on the MAC in
// req.Name.
func (r *Router) Route(req ctftp.Request) Decision { return r.decide(req, true) }

// decide is Route. Without explain it leaves Reason empty (but for a
// migration wave's device) and returns Subclusters shared with the Router
// (callers must not change them): the request path asks thousands of
// times a second and reads neither, and building them was most of what a
// warm request allocated.
func (r *Router) decide(req ctftp.Request, explain bool) Decision {
	d := r.route(req, explain)
	if w := r.migrations.Lookup(d.MAC); w != nil {
		return r.migrations.override(w, d.MAC, d)
	}
	return d
}

// route decides by rules, learned routes and fan-out.
func (r *Router) route(req ctftp.Request, explain bool) Decision {
	mac, hasMAC := ParseMAC(req.Name)
	client := req.Client.Addr().Unmap()
	for i := range r.rules {
		c := &r.rules[i]
		switch c.kind {
		case matchClient:
			if !client.IsValid() || !c.client.Contains(client) {
				continue
			}
		case matchMAC, matchDeviceFile:
			if _, ok := c.macs[mac]; !hasMAC || !ok {
				continue
			}
		case matchMACPrefix:
			if !hasMAC || !strings.HasPrefix(mac, c.prefix) {
				continue
			}
		}
		d := Decision{MAC: mac, Prefetch: r.prefetchAfter(req.Name, mac), Kind: RuleMatch, Rule: i,
			Subclusters: r.one[c.subcluster], Strategy: r.strategy}
		if explain {
			var why string
			switch c.kind {
			case matchClient:
				why = fmt.Sprintf("client %s in %s", client, c.client)
			case matchMAC:
				why = "mac " + mac
			case matchDeviceFile:
				why = fmt.Sprintf("mac %s in device_file %s", mac, c.deviceFile)
			case matchMACPrefix:
				why = fmt.Sprintf("mac %s has mac_prefix %s", mac, c.prefix)
			}
			d.Subclusters = []string{c.subcluster}
			d.Reason = fmt.Sprintf("rules[%d] (%s) -> %s", i, why, c.subcluster)
		}
		return d
	}
	if hasMAC && r.learned != nil {
		now := r.now()
		if l, ok := r.learned.lookup(mac, now); ok {
			d := Decision{MAC: mac, Prefetch: r.prefetchAfter(req.Name, mac), Kind: Learned, Rule: -1,
				Subclusters: r.one[l.subcluster], Strategy: r.strategy}
			if explain {
				d.Reason = fmt.Sprintf("learned route %s -> %s (confirmed %s ago)",
					mac, l.subcluster, now.Sub(l.at).Round(time.Second))
				if others := r.others(l.subcluster); len(others) > 0 {
					d.Reason += fmt.Sprintf("; if %s no longer has the file: %s fan-out over %s",
						l.subcluster, r.strategy, strings.Join(others, ", "))
				}
				d.Subclusters = []string{l.subcluster}
			}
			return d
		}
	}
	d := Decision{MAC: mac, Prefetch: r.prefetchAfter(req.Name, mac), Kind: FanOut, Rule: -1,
		Subclusters: r.subclusters, Strategy: r.strategy}
	if !explain {
		return d
	}
	var why string
	switch {
	case !hasMAC:
		why = "no MAC in the file name and no rule matched"
	case r.learned == nil:
		why = fmt.Sprintf("MAC %s: no rule matched, learning is off", mac)
	default:
		why = fmt.Sprintf("MAC %s: no rule matched, no learned route", mac)
	}
	d.Subclusters = slices.Clone(r.subclusters)
	d.Reason = fmt.Sprintf("%s: %s fan-out over %s", why, r.strategy, strings.Join(r.subclusters, ", "))
	return d
}

// others returns every sub-cluster but sc, in priority order.
func (r *Router) others(sc string) []string {
	out := make([]string, 0, len(r.subclusters))
	for _, s := range r.subclusters {
		if s != sc {
			out = append(out, s)
		}
	}
	return out
}

// Learn records that subcluster answered for the device mac (any format
// parseMAC accepts), or confirms it, restarting its TTL. It ignores a MAC
// it cannot read, an unknown sub-cluster, and everything when learning is
// off.
func (r *Router) Learn(mac, subcluster string) {
	if r.learned == nil || !r.known[subcluster] {
		return
	}
	m, err := parseMAC(mac)
	if err != nil {
		return
	}
	r.learnMAC(m, subcluster)
}

// learnMAC is Learn for a MAC already in canonical form (ParseMAC's), as
// the forwarder has it: parsing it again allocated on every request.
func (r *Router) learnMAC(m, subcluster string) {
	if r.learned == nil || !r.known[subcluster] {
		return
	}
	prev, held := r.learned.learn(m, subcluster, r.now())
	r.m.learned.Set(float64(held))
	if prev != "" && prev != subcluster {
		r.log.Info("routing: device moved", "mac", m, "from", prev, "to", subcluster)
	}
}

// Forget drops the learned route for mac, if there is one.
func (r *Router) Forget(mac string) {
	if r.learned == nil {
		return
	}
	m, err := parseMAC(mac)
	if err != nil {
		return
	}
	r.m.learned.Set(float64(r.learned.forget(m, r.now())))
}

// Learned returns the number of learned routes that have not expired.
func (r *Router) Learned() int {
	if r.learned == nil {
		return 0
	}
	n := r.learned.len(r.now())
	r.m.learned.Set(float64(n))
	return n
}
