package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/cache"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/routing"
	"github.com/ctftp/ctftp/trust"
)

// TrustError is the refusal of a setup whose ITL eras would break phones,
// or whose own ITLFile.tlv is broken: Start returns it, a reload fails
// with it. Report holds the table to print. Not modified once returned.
type TrustError struct {
	Report trust.Report
}

func (e *TrustError) Error() string {
	var msgs []string
	for _, p := range e.Report.Problems {
		if p.Kind == trust.ProblemMixed || p.Kind == trust.ProblemRoot {
			msgs = append(msgs, p.Msg)
		}
	}
	return "trust: refused: " + strings.Join(msgs, "; ")
}

// generation is one configuration's chain and everything it owns: the
// local root, the cluster Set, the watcher, the cache (possibly shared
// with the generation before or after it), the router. It is immutable
// once stored in Gateway.gen, except for its gate and loops.
type generation struct {
	n      int
	loaded time.Time
	cfg    GatewayConfig

	local    *Local
	clusters *cluster.Set // nil without sub-clusters
	watcher  *trust.Watcher
	cache    *cache.Cache    // nil without sub-clusters
	upstream *switchSource   // the cache's next; travels with the cache
	guard    *trust.Guard    // nil without sub-clusters
	router   *routing.Router // nil without sub-clusters
	source   ctftp.Source

	migrations *routing.Migrations // nil without sub-clusters
	verdicts   []trust.WaveVerdict // checks of the waves that cut over
	waveGuard  *trust.WaveGuard    // nil when no wave was checked
	recheck    routing.CutoverCheck

	gate gate

	cancel context.CancelFunc // stops the loops; nil until they start
	loops  sync.WaitGroup
}

// start runs the generation's loops (backend health and DNS, the trust
// watcher) until stopLoops or ctx's end.
func (gen *generation) start(ctx context.Context) {
	ctx, gen.cancel = context.WithCancel(ctx)
	if gen.clusters != nil {
		gen.loops.Go(func() { gen.clusters.Run(ctx) })
	}
	gen.loops.Go(func() { gen.watcher.Run(ctx) })
	if gen.migrations != nil {
		gen.loops.Go(func() { gen.migrations.Run(ctx, gen.recheck) })
	}
}

// stopLoops ends the loops and waits for them.
func (gen *generation) stopLoops() {
	if gen.cancel != nil {
		gen.cancel()
	}
	gen.loops.Wait()
}

// close releases what gen owns and next does not share. next is the
// generation that replaced it (nil at shutdown or when gen never served).
func (gen *generation) close(next *generation) {
	if gen.cache != nil && (next == nil || next.cache != gen.cache) {
		gen.cache.Close()
	}
	if next == nil || next.local != gen.local {
		gen.local.Close()
	}
}

// onEvent applies the trust policy to a watcher event: a sub-cluster
// whose signer changed loses its cached files (signed by the old key, or
// about to be replaced by files signed with the new one); one that turned
// heterogeneous loses them too when it is refused, so refusing means
// nothing of it is served.
func (gen *generation) onEvent(ev trust.Event) {
	if gen.cache == nil {
		return
	}
	switch {
	case ev.Kind == trust.EventSignerChanged,
		ev.Kind == trust.EventHeterogeneous && gen.cfg.Trust.OnChange == trust.PolicyRefuse:
		gen.cache.PurgeSubcluster(ev.Subcluster)
	}
}

// gate counts the requests inside a generation so that retiring it can
// wait for them. Once closed nothing enters.
type gate struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{} // closed when n reaches 0 after close
}

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.n == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
}

// close shuts the gate; the channel is closed once the last request in
// has left.
func (g *gate) close() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	ch := make(chan struct{})
	if g.n == 0 {
		close(ch)
	} else {
		g.idle = ch
	}
	return ch
}

// switchSource is a cache's next Source, switched to the new
// generation's guard when a reload carries the cache over.
type switchSource struct {
	p atomic.Pointer[ctftp.Source]
}

func (s *switchSource) set(src ctftp.Source) { s.p.Store(&src) }

func (s *switchSource) Open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	return (*s.p.Load()).Open(ctx, req)
}

// build makes a generation from cfg: local root, cluster Set (resolved),
// watcher with its first round of probes (the guard: a refused setup is a
// *TrustError), trust guard, cache, router. prev is the generation it
// would replace (nil at start): an unchanged root and, when the cache and
// trust sections are unchanged, the cache are carried over. local, when
// set, is the root to use. Nothing is started; on error, what was made
// is released.
func (g *Gateway) build(ctx context.Context, cfg GatewayConfig, prev *generation, local *Local) (gen *generation, err error) {
	gen = &generation{cfg: cfg, local: local}
	var made []func()
	defer func() {
		if err != nil {
			for _, undo := range made {
				undo()
			}
		}
	}()
	if gen.local == nil {
		if prev != nil && prev.cfg.Root == cfg.Root {
			gen.local = prev.local
		} else {
			l, err := NewLocal(cfg.Root)
			if err != nil {
				return nil, fmt.Errorf("root: %w", err)
			}
			gen.local = l
			made = append(made, func() { l.Close() })
		}
	}
	subs := cfg.Cluster.Subclusters
	if len(subs) > 0 {
		set, err := cluster.New(cfg.Cluster, cluster.Options{Logger: g.log, Metrics: g.metrics, SelfAddrs: g.tftp.Addrs()})
		if err != nil {
			return nil, err
		}
		if err := set.Resolve(ctx); err != nil {
			// A DNS hiccup must not stop the gateway from serving its
			// own files; the resolve loop keeps trying.
			g.log.Warn("initial backend resolution incomplete", "err", err)
		}
		gen.clusters = set
		if prev != nil && prev.cache != nil && reflect.DeepEqual(prev.cfg.Cache, cfg.Cache) && prev.cfg.Trust == cfg.Trust {
			// Carried over before the probes, so that a signer change
			// they find purges the cache that will serve.
			gen.cache, gen.upstream = prev.cache, prev.upstream
		}
	}
	wopts := trust.WatchOptions{
		Interval: cfg.Trust.ProbeInterval,
		Retry:    cmp.Or(cfg.Cluster.Backend.ProbeInterval, unclassifiedRetry),
		Timeout:  cfg.Trust.ProbeTimeout,
		Central:  centralITL(gen.local),
		Logger:   g.log,
		Metrics:  g.metrics,
		OnEvent:  gen.onEvent,
	}
	if prev != nil {
		wopts.Previous = prev.watcher
	}
	gen.watcher = trust.NewWatcher(gen.clusters, wopts)
	report := gen.watcher.Probe(ctx)
	if report.Refused() {
		return nil, &TrustError{Report: report}
	}
	if prev == nil {
		// At start-up nobody else reports them; a reload's result does.
		for _, p := range report.Problems {
			g.log.Error("trust: "+p.Msg, "kind", p.Kind.String())
		}
	}
	if report.Verdict == trust.VerdictMixedRollback {
		g.log.Warn("trust: pre-8.0 and 8.x+ clusters are mixed; this runs only because every 8.x+ side publishes a blank (rollback) ITL: ITL security is off, and secured phone URLs must use HTTP")
	}
	gen.source = gen.local
	if len(subs) == 0 {
		if len(cfg.Migrations) > 0 {
			return nil, fmt.Errorf("migrations: waves move phones between sub-clusters, and none is configured")
		}
		return gen, nil
	}

	// The waves are compiled and checked before the router, which
	// applies their overrides.
	if err := g.buildMigrations(ctx, gen, prev); err != nil {
		return nil, err
	}
	var prevRouter *routing.Router
	if prev != nil {
		prevRouter = prev.router
	}
	r, err := routing.New(cfg.Routing, gen.clusters.Names(), routing.Options{Logger: g.log, Metrics: g.metrics, Migrations: gen.migrations, Previous: prevRouter})
	if err != nil {
		return nil, err
	}
	gen.router = r
	gen.guard = trust.NewGuard(gen.clusters, cfg.Trust, gen.watcher, gen.clusters.Names(), g.log, g.metrics)
	if gen.cache == nil {
		// A cache of an earlier generation (the one replaced, or one
		// before a generation without sub-clusters) makes way: a Set
		// refuses a second registration, and the old cache stops
		// counting anyway once its last request is done.
		unregisterCacheMetrics(g.metrics)
		gen.upstream = new(switchSource)
		gen.upstream.set(gen.guard)
		c, err := cache.New(gen.upstream, cfg.Cache, cache.Options{Logger: g.log, Metrics: g.metrics})
		if err != nil {
			return nil, err
		}
		gen.cache = c
	}
	gen.source = ctftp.First(gen.local, routing.NewForwarder(r, g.waveSource(gen, gen.cache), routing.Options{Logger: g.log, Metrics: g.metrics}))
	return gen, nil
}

// unclassifiedRetry is how often a sub-cluster no probe has classified
// yet is probed again when backend health probing is off: soon enough
// that one down at start is classified soon after it comes up.
const unclassifiedRetry = 30 * time.Second

// unregisterCacheMetrics drops every ctftp_cache_* series from set.
func unregisterCacheMetrics(set *metrics.Set) {
	for _, name := range set.ListMetricNames() {
		if strings.HasPrefix(name, "ctftp_cache_") {
			set.UnregisterMetric(name)
		}
	}
}

// centralITL reads the root's ITLFile.tlv through local, so the check
// sees exactly what phones are served.
func centralITL(local *Local) trust.CentralFunc {
	return func(ctx context.Context) ([]byte, error) {
		f, err := local.Open(ctx, ctftp.Request{Name: trust.ITLFileName, Mode: "octet"})
		if err != nil {
			return nil, err
		}
		defer f.Body.Close()
		data, err := readAllLimit(f.Body, maxCentralITL)
		if err != nil {
			return nil, fmt.Errorf("root: %s: %w", trust.ITLFileName, err)
		}
		return data, nil
	}
}

// maxCentralITL bounds what is read of the root's ITLFile.tlv: far above
// any ITL a phone can load (about 64 KB), far below trouble.
const maxCentralITL = 4 << 20

func readAllLimit(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes: not an ITL", limit)
	}
	return data, nil
}

// ReloadResult is the outcome of one reload attempt, as /status shows it.
// A plain value.
type ReloadResult struct {
	// At is when the attempt ended.
	At time.Time `json:"at"`
	// OK says the new configuration is serving.
	OK bool `json:"ok"`
	// Generation is the generation serving after the attempt.
	Generation int `json:"generation"`
	// Problems are why it failed (one line each, naming the key), or
	// what it reported while succeeding (trust warnings).
	Problems []string `json:"problems,omitempty"`
	// SHA256 is the hex SHA-256 of the configuration file tried; "" when
	// it could not be read or did not come from a file.
	SHA256 string `json:"sha256,omitempty"`
	// RestartNeeded lists the changed keys that cannot change while
	// running (listen addresses, the TFTP engine's settings): their old
	// values stay in force until a restart.
	RestartNeeded []string `json:"restart_needed,omitempty"`
	// Trust is the trust guard's table when it ran; nil otherwise.
	Trust *trust.Report `json:"-"`
	// Migrations are the checks of the waves that refused the
	// configuration; nil otherwise.
	Migrations []trust.WaveVerdict `json:"-"`
}

// ConfigStatus is the configuration part of /status.
type ConfigStatus struct {
	// Generation is 1 at start and grows by one per successful reload.
	Generation int       `json:"generation"`
	LoadedAt   time.Time `json:"loaded_at"`
	// SHA256 is the hex SHA-256 of the configuration file serving (see
	// GatewayConfig.ConfigSHA256); the same in both gateways of an HA
	// pair that run one configuration.
	SHA256 string `json:"sha256"`
	// LastReload is the last attempt, successful or not; nil before any.
	LastReload *ReloadResult `json:"last_reload,omitempty"`
}

// The states of a reloader.
const (
	rlStarted = iota // Start succeeded; Run has not begun: swaps start no loops
	rlRunning        // Run is serving: a swap starts the new generation's loops
	rlStopped        // Run has ended: no more swaps
)

// reloader is the Gateway's reload machinery: one reload at a time,
// the loops of the serving generation, and the retirement of old ones.
type reloader struct {
	serial sync.Mutex // one Reload at a time

	mu    sync.Mutex // guards the fields below and Gateway.gen's swaps
	ctx   context.Context
	state int
	last  *ReloadResult

	retiring   sync.WaitGroup
	set        *metrics.Set
	generation *metrics.Gauge
	results    map[bool]*metrics.Counter
	info       string // the ctftp_config_info series registered now
}

func (rl *reloader) init(set *metrics.Set) {
	rl.set = set
	rl.generation = set.GetOrCreateGauge("ctftp_config_generation", nil)
	rl.results = map[bool]*metrics.Counter{
		true:  set.GetOrCreateCounter(`ctftp_config_reloads_total{result="ok"}`),
		false: set.GetOrCreateCounter(`ctftp_config_reloads_total{result="failed"}`),
	}
}

// run starts the loops of the generation serving now (a reload may have
// swapped one in between Start and Run) under ctx, and lets later swaps
// start theirs.
func (rl *reloader) run(ctx context.Context, current *atomic.Pointer[generation]) {
	rl.mu.Lock()
	rl.ctx, rl.state = ctx, rlRunning
	gen := current.Load()
	gen.start(ctx)
	rl.mu.Unlock()
	gen.watcher.Activate()
}

// stop refuses further swaps and waits for the retirements under way.
func (rl *reloader) stop() {
	rl.mu.Lock()
	rl.state = rlStopped
	rl.mu.Unlock()
	rl.retiring.Wait()
}

// setInfo makes ctftp_config_info{sha256} name the configuration
// serving: one series, always 1, the previous one removed. Called at
// Start and with mu held at each swap.
func (rl *reloader) setInfo(sha string) {
	name := fmt.Sprintf(`ctftp_config_info{sha256=%q}`, sha)
	if name == rl.info {
		return
	}
	if rl.info != "" {
		rl.set.UnregisterMetric(rl.info)
	}
	rl.set.GetOrCreateGauge(name, nil).Set(1)
	rl.info = name
}

func (rl *reloader) status(gen *generation) ConfigStatus {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	st := ConfigStatus{Generation: gen.n, LoadedAt: gen.loaded, SHA256: gen.cfg.ConfigSHA256}
	if rl.last != nil {
		last := *rl.last
		st.LastReload = &last
	}
	return st
}

// Reload makes a new configuration take effect, if it validates: load
// returns it (its error, one problem per line, fails the reload as it
// is), then a new generation is built and its trust guard probes every
// sub-cluster; a setup the guard refuses fails the reload with the
// guard's table. Only then is the new generation swapped in, atomically:
// requests already inside the old one finish there (transfers in flight
// keep the files they opened), and the old one's loops stop, its cache
// (unless carried over) and root are released once its last request is
// done. On any failure the old configuration keeps serving. Keys that
// cannot change while running are kept at their old values and listed in
// RestartNeeded. Reload works from Start on (a swap before Run leaves
// the loops to Run) until Run returns; calls take turns. Every
// attempt is logged, counted in ctftp_config_reloads_total{result} and
// kept for /status.
func (g *Gateway) Reload(ctx context.Context, load func() (GatewayConfig, error)) ReloadResult {
	rl := &g.rl
	rl.serial.Lock()
	defer rl.serial.Unlock()
	res := g.reload(ctx, load)
	res.At = time.Now()
	if gen := g.gen.Load(); gen != nil {
		res.Generation = gen.n
	}
	rl.results[res.OK].Inc()
	rl.mu.Lock()
	rl.last = &res
	rl.mu.Unlock()
	if res.OK {
		g.log.Info("config reloaded", "generation", res.Generation, "restart_needed", res.RestartNeeded, "warnings", len(res.Problems))
	} else {
		g.log.Error("config reload failed; the previous configuration keeps serving", "generation", res.Generation, "problems", len(res.Problems))
	}
	level := slog.LevelError
	if res.OK {
		level = slog.LevelWarn // what the new configuration reported while succeeding
	}
	for _, p := range res.Problems {
		g.log.Log(ctx, level, "config reload: "+p, "ok", res.OK)
	}
	for _, k := range res.RestartNeeded {
		g.log.Warn("config reload: "+k+" changed; restart needed for it to take effect, the old value stays", "key", k)
	}
	return res
}

func (g *Gateway) reload(ctx context.Context, load func() (GatewayConfig, error)) (res ReloadResult) {
	cfg, err := load()
	if err != nil {
		return ReloadResult{Problems: lines(err)}
	}
	defer func() { res.SHA256 = cfg.ConfigSHA256 }()
	cfg = cfg.withDefaults()
	if err := cfg.Trust.Validate(); err != nil {
		return ReloadResult{Problems: prefixLines("trust.", err)}
	}
	old := g.gen.Load()
	if old == nil {
		return ReloadResult{Problems: []string{"the gateway has not started"}}
	}
	cfg, res.RestartNeeded = keepFixed(g.cfg, cfg)
	gen, err := g.build(ctx, cfg, old, nil)
	if err != nil {
		var te *TrustError
		var me *MigrationError
		switch {
		case errors.As(err, &te):
			res.Trust = &te.Report
			res.Problems = te.Report.Messages()
		case errors.As(err, &me):
			res.Migrations = me.Verdicts
			res.Problems = lines(err)
		default:
			res.Problems = lines(err)
		}
		return res
	}
	rep := gen.watcher.Report()
	res.Trust, res.Problems = &rep, rep.Messages()

	rl := &g.rl
	rl.mu.Lock()
	if rl.state == rlStopped {
		rl.mu.Unlock()
		gen.close(old)
		res.Problems = append(res.Problems, "the gateway has stopped")
		return res
	}
	gen.n, gen.loaded = old.n+1, time.Now()
	if gen.upstream != nil {
		gen.upstream.set(gen.guard)
	}
	g.gen.Store(gen)
	rl.generation.Set(float64(gen.n))
	rl.setInfo(cfg.ConfigSHA256)
	if rl.state == rlRunning {
		gen.start(rl.ctx)
	}
	rl.retiring.Add(1)
	rl.mu.Unlock()

	if gen.cache != nil && gen.cache == old.cache {
		// The same cache, now filled from the new sub-cluster
		// definitions: what the changed or removed ones answered goes.
		for _, name := range changedSubclusters(old.cfg.Cluster, cfg.Cluster) {
			gen.cache.PurgeSubcluster(name)
		}
	}
	go func() {
		defer rl.retiring.Done()
		old.stopLoops()
		gen.watcher.Activate()
		<-old.gate.close()
		old.close(gen)
	}()
	res.OK = true
	return res
}

// keepFixed returns next with the settings that cannot change while
// running (sockets and the TFTP engine built by NewGateway) put back to
// cur's, and the keys that differed.
func keepFixed(cur, next GatewayConfig) (GatewayConfig, []string) {
	var keys []string
	if !slices.Equal(cur.TFTP.Listen, next.TFTP.Listen) {
		keys = append(keys, "listen")
	}
	ct, nt := reflect.ValueOf(cur.TFTP), reflect.ValueOf(next.TFTP)
	for i := 0; i < ct.NumField(); i++ {
		tag, _, _ := strings.Cut(ct.Type().Field(i).Tag.Get("mapstructure"), ",")
		if tag == "listen" || tag == "" {
			continue
		}
		if !reflect.DeepEqual(ct.Field(i).Interface(), nt.Field(i).Interface()) {
			keys = append(keys, "tftp."+tag)
		}
	}
	if !slices.Equal(cur.HTTPListen, next.HTTPListen) {
		keys = append(keys, "http_listen")
	}
	if cur.AdminListen != next.AdminListen {
		keys = append(keys, "admin_listen")
	}
	next.TFTP, next.HTTPListen, next.AdminListen, next.Version = cur.TFTP, cur.HTTPListen, cur.AdminListen, cur.Version
	return next, keys
}

// changedSubclusters names the sub-clusters of cur that next removes or
// defines differently (another version, other backends, other limits).
func changedSubclusters(cur, next cluster.Config) []string {
	nextByName := map[string]cluster.SubclusterConfig{}
	for _, sc := range next.Subclusters {
		nextByName[sc.Name] = sc
	}
	var out []string
	for _, sc := range cur.Subclusters {
		if n, ok := nextByName[sc.Name]; !ok || !reflect.DeepEqual(sc, n) {
			out = append(out, sc.Name)
		}
	}
	return out
}

func lines(err error) []string {
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func prefixLines(prefix string, err error) []string {
	out := lines(err)
	for i := range out {
		out[i] = prefix + out[i]
	}
	return out
}
