package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sync/errgroup"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/cache"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/routing"
	"github.com/ctftp/ctftp/trust"
)

// GatewayConfig is everything the gateway needs, already decoded and
// validated section by section (the CLI owns the file format).
type GatewayConfig struct {
	// TFTP configures the front end; TFTP.Listen are its addresses.
	TFTP Config
	// Root holds the gateway's own files (ITLFile.tlv, CTLFile.tlv, loads).
	Root string
	// HTTPListen are addresses of the HTTP provisioning front end
	// (phones try port 6970 before TFTP); empty = off.
	HTTPListen []string
	// AdminListen serves the status page (/), /metrics /healthz /readyz
	// /status /status/tables and cache purges; "" = off.
	AdminListen string
	// Cluster lists the sub-clusters; none means the gateway serves only
	// its own files.
	Cluster cluster.Config
	Routing routing.Config
	Cache   cache.Config
	// Trust is the ITL trust guard; the zero value means
	// trust.DefaultConfig().
	Trust trust.Config
	// Migrations are the migration waves (the top-level `migrations:`).
	Migrations []routing.Wave
	// Version is reported by /status.
	Version string
	// ConfigSHA256 is the hex SHA-256 of the configuration file's bytes,
	// reported by /status and as ctftp_config_info{sha256}, so that the
	// two gateways of an HA pair can be checked for drift; "" when the
	// configuration did not come from a file.
	ConfigSHA256 string
}

// withDefaults fills what the zero value stands for.
func (c GatewayConfig) withDefaults() GatewayConfig {
	if c.Trust == (trust.Config{}) {
		c.Trust = trust.DefaultConfig()
	}
	return c
}

// Gateway is the composition root: it owns the front ends, the admin
// endpoint and the current generation of the chain
//
//	First(local, route -> cache -> trust guard -> backends)
//
// with the trust watcher beside it. Start binds every socket and builds
// the first generation, refusing a setup whose ITL eras would break
// phones; Run serves until its context ends; Reload swaps in a new
// generation built from a new config (reload.go). Its methods are safe
// for concurrent use.
type Gateway struct {
	cfg     GatewayConfig // the front ends' config; later generations keep its listeners
	log     *slog.Logger
	metrics *metrics.Set
	local   *Local // the root NewGateway opened, for the first generation

	tftp      *Server
	adminLn   net.Listener
	httpLns   []net.Listener
	started   atomic.Bool
	startedAt time.Time

	gen   atomic.Pointer[generation]
	rl    reloader
	saver *learnSaver // routing.learn_file's writes
	// restored is what the first generation read from
	// routing.learn_file: later ones inherit routes instead.
	restored atomic.Int64
}

// NewGateway builds the gateway from cfg. It opens the local root but
// binds no socket; call Start.
func NewGateway(cfg GatewayConfig, logger *slog.Logger, set *metrics.Set) (*Gateway, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	cfg = cfg.withDefaults()
	if err := cfg.Trust.Validate(); err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	g := &Gateway{cfg: cfg, log: logger, metrics: set}
	g.rl.init(set)
	g.saver = newLearnSaver(g)
	local, err := NewLocal(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	g.local = local
	// The front end is built before the backends so that its bound
	// addresses are known for loop protection; it reaches the chain
	// through g.open, which finds the generation Start builds.
	srv, err := NewServer(cfg.TFTP, ctftp.SourceFunc(g.open), logger, set)
	if err != nil {
		local.Close()
		return nil, err
	}
	g.tftp = srv
	return g, nil
}

// open hands req to the current generation. A request that started on a
// generation finishes on it, even when a reload swaps another in
// meanwhile; the old one is torn down only once its last request is done.
func (g *Gateway) open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	for {
		gen := g.gen.Load()
		if gen == nil {
			return nil, fmt.Errorf("gateway: not started: %w", ctftp.ErrUnavailable)
		}
		if gen.gate.enter() {
			return openIn(ctx, gen, req)
		}
		// gen was retired between the Load and enter: the next Load
		// sees its successor.
	}
}

// openIn opens req on gen, which the caller entered. A function of its
// own because a defer inside open's loop would be allocated per request.
func openIn(ctx context.Context, gen *generation, req ctftp.Request) (*ctftp.File, error) {
	defer gen.gate.leave()
	return gen.source.Open(ctx, req)
}

// Source is the whole chain, for front ends and tools that bypass TFTP.
func (g *Gateway) Source() ctftp.Source { return ctftp.SourceFunc(g.open) }

// Start binds every listener and builds the first generation of the
// chain, which probes every sub-cluster's ITLFile.tlv (and reads the
// root's) before anything is served. A setup whose ITL eras would break
// phones is refused with a *TrustError, a bind failure with its error;
// nothing is left open then.
func (g *Gateway) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			g.closeListeners()
			g.tftp.Shutdown(context.WithoutCancel(ctx))
		}
	}()
	if err := g.tftp.Listen(); err != nil {
		return fmt.Errorf("tftp: %w", err)
	}
	gen, err := g.build(ctx, g.cfg, nil, g.local)
	if err != nil {
		g.local.Close()
		return err
	}
	gen.n, gen.loaded = 1, time.Now()
	if gen.router != nil {
		g.restored.Store(int64(gen.router.Restored()))
	}
	g.gen.Store(gen)
	g.rl.generation.Set(1)
	g.rl.setInfo(g.cfg.ConfigSHA256)

	for _, a := range g.cfg.HTTPListen {
		ln, err := net.Listen(httpNetwork(a, g.cfg.HTTPListen), a)
		if ap, perr := netip.ParseAddrPort(a); err != nil && perr == nil && ap.Addr().Is6() && !ap.Addr().Is4In6() &&
			ipv6Unavailable(err) && hasIPv4(g.cfg.HTTPListen) {
			// As for the TFTP addresses: IPv4 keeps serving.
			g.log.Warn("IPv6 http_listen address skipped: IPv6 is unavailable on this host", "addr", a, "err", err)
			continue
		}
		if err != nil {
			gen.close(nil)
			return fmt.Errorf("http_listen %s: %w", a, err)
		}
		g.httpLns = append(g.httpLns, ln)
	}
	if g.cfg.AdminListen != "" {
		ln, err := net.Listen("tcp", g.cfg.AdminListen)
		if err != nil {
			gen.close(nil)
			return fmt.Errorf("admin_listen %s: %w", g.cfg.AdminListen, err)
		}
		g.adminLn = ln
	}
	g.startedAt = time.Now()
	g.started.Store(true)
	g.log.Info("listening", "tftp", addrStrings(g.tftp.Addrs()), "http", lnStrings(g.httpLns), "admin", lnStrings(listOf(g.adminLn)),
		"single_port", g.cfg.TFTP.SinglePort,
		"root", g.cfg.Root, "subclusters", len(g.cfg.Cluster.Subclusters))
	return nil
}

func (g *Gateway) closeListeners() {
	for _, ln := range append(listOf(g.adminLn), g.httpLns...) {
		ln.Close()
	}
}

// TFTPAddrs are the bound TFTP addresses (after Start).
func (g *Gateway) TFTPAddrs() []netip.AddrPort { return g.tftp.Addrs() }

// AdminAddr is the bound admin address, or "" when off.
func (g *Gateway) AdminAddr() string {
	if g.adminLn == nil {
		return ""
	}
	return g.adminLn.Addr().String()
}

// HTTPAddrs are the bound HTTP provisioning addresses.
func (g *Gateway) HTTPAddrs() []string { return lnStrings(g.httpLns) }

// Cache is the current generation's cache, nil when it has no
// sub-clusters (or before Start).
func (g *Gateway) Cache() *cache.Cache {
	if gen := g.gen.Load(); gen != nil {
		return gen.cache
	}
	return nil
}

// Run serves until ctx ends, then stops accepting, lets transfers in
// flight finish up to the TFTP shutdown grace, and returns nil on a clean
// stop. It runs the current generation's loops (backend health and DNS,
// the trust watcher) and those of every generation a Reload swaps in.
func (g *Gateway) Run(ctx context.Context) error {
	if !g.started.Load() {
		return errors.New("gateway: Run before Start")
	}
	eg, ctx := errgroup.WithContext(ctx)
	g.rl.run(ctx, &g.gen)
	defer func() {
		// Transfers have ended (or were cut off) by now: nothing can
		// enter a generation any more, nor learn a route.
		g.rl.stop()
		gen := g.gen.Load()
		gen.stopLoops()
		g.saver.save("shutdown")
		gen.close(nil)
	}()
	eg.Go(func() error { g.saver.run(ctx, learnSaveInterval); return nil })
	eg.Go(func() error { return g.tftp.Serve(ctx) })
	eg.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.TFTP.ShutdownGrace)
		defer cancel()
		g.log.Info("shutting down", "grace", g.cfg.TFTP.ShutdownGrace)
		if err := g.tftp.Shutdown(sctx); err != nil {
			// Transfers still running at the deadline were cut off: that is
			// the documented outcome of a stop, not a failure to stop.
			g.log.Warn("shutdown grace expired", "err", err)
		}
		return nil
	})
	var servers []*http.Server
	if g.adminLn != nil {
		servers = append(servers, g.serveHTTP(eg, g.adminLn, g.adminHandler()))
	}
	for _, ln := range g.httpLns {
		servers = append(servers, g.serveHTTP(eg, ln, g.provisioningHandler()))
	}
	eg.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.TFTP.ShutdownGrace)
		defer cancel()
		var errs []error
		for _, s := range servers {
			errs = append(errs, s.Shutdown(sctx))
		}
		return errors.Join(errs...)
	})
	err := eg.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func (g *Gateway) serveHTTP(eg *errgroup.Group, ln net.Listener, h http.Handler) *http.Server {
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)}
	eg.Go(func() error {
		if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http %s: %w", ln.Addr(), err)
		}
		return nil
	})
	return s
}

// adminHandler serves the operator endpoints. It binds to loopback by
// default because purge changes state and /status names backends.
func (g *Gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		g.metrics.WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
		metrics.WriteFDMetrics(w)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		problems := g.readiness()
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, p := range problems {
				fmt.Fprintln(w, p)
			}
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("GET /{$}", g.serveStatusPage)
	mux.HandleFunc("GET /status/tables", g.serveStatusTables)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(g.Status())
	})
	mux.HandleFunc("POST /cache/purge", func(w http.ResponseWriter, r *http.Request) {
		c := g.Cache()
		if c == nil {
			http.Error(w, "no cache: the gateway has no sub-clusters", http.StatusConflict)
			return
		}
		glob := r.URL.Query().Get("glob")
		// A malformed pattern matches nothing: say so rather than
		// answer "purged 0" to an admin who meant to purge something.
		if _, err := path.Match(glob, ""); err != nil || strings.ContainsRune(glob, 0) {
			http.Error(w, fmt.Sprintf("bad glob %q: want path.Match syntax (* ? [a-z] \\)", glob), http.StatusBadRequest)
			return
		}
		n := c.Purge(glob)
		g.log.Info("cache purge", "glob", glob, "removed", n, "remote", r.RemoteAddr)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"glob": glob, "removed": n})
	})
	return mux
}

// httpNetwork is the network an http_listen address listens on. Go's
// "tcp" on a wildcard (0.0.0.0:P or [::]:P) is one dual-stack socket, so
// 0.0.0.0:P and [::]:P listed together (the pattern of the TFTP listen
// addresses) collided: when both families list a port, each listens on
// its own family only, as every TFTP listener does. An address whose
// port the other family does not list keeps Go's default.
func httpNetwork(a string, all []string) string {
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		return "tcp"
	}
	v4 := ap.Addr().Is4() || ap.Addr().Is4In6()
	for _, o := range all {
		op, err := netip.ParseAddrPort(o)
		if err != nil || op.Port() != ap.Port() || op.Port() == 0 {
			continue
		}
		if ov4 := op.Addr().Is4() || op.Addr().Is4In6(); ov4 != v4 {
			if v4 {
				return "tcp4"
			}
			return "tcp6"
		}
	}
	return "tcp"
}

// hasIPv4 reports an IPv4 address among addrs.
func hasIPv4(addrs []string) bool {
	for _, a := range addrs {
		if ap, err := netip.ParseAddrPort(a); err == nil && (ap.Addr().Is4() || ap.Addr().Is4In6()) {
			return true
		}
	}
	return false
}

// readiness lists why the gateway should not get traffic yet: a
// sub-cluster with no backend up cannot answer its phones, and the trust
// watcher's problems (an unclassified sub-cluster, a changed signer, a
// sub-cluster that turned heterogeneous, a broken ITL).
func (g *Gateway) readiness() []string {
	gen := g.gen.Load()
	if gen == nil {
		return []string{"not started"}
	}
	var problems []string
	if gen.clusters != nil {
		for _, sc := range gen.clusters.Status() {
			up := 0
			for _, b := range sc.Backends {
				if b.Up {
					up++
				}
			}
			if up == 0 {
				problems = append(problems, fmt.Sprintf("subcluster %q: no backend up", sc.Name))
			}
		}
	}
	return append(problems, gen.watcher.Problems()...)
}

// GatewayStatus is what /status reports.
type GatewayStatus struct {
	// Host is the gateway's host name: which one of an HA pair this is.
	Host        string                     `json:"host"`
	Version     string                     `json:"version"`
	Started     time.Time                  `json:"started"`
	TFTP        []string                   `json:"tftp"`
	Config      ConfigStatus               `json:"config"`
	Trust       trust.TrustStatus          `json:"trust"`
	Subclusters []cluster.SubclusterStatus `json:"subclusters"`
	Cache       *cache.Stats               `json:"cache,omitempty"`
	Learned     int                        `json:"learned_routes"`
	Migrations  []MigrationStatus          `json:"migrations,omitempty"`
	// Routes details the learned routes: per sub-cluster, and the
	// statusRecentRoutes confirmed most recently.
	Routes *routing.LearnedRoutes `json:"routes,omitempty"`
	// Transfers are the TFTP transfers running now, with the progress
	// of those running statusLongTransfer or more.
	Transfers TransfersStatus `json:"transfers"`
	// LearnFile is routing.learn_file's last write; nil when routes are
	// not kept across restarts.
	LearnFile *LearnFileStatus `json:"learn_file,omitempty"`
	Ready     []string         `json:"not_ready,omitempty"`
}

// statusRecentRoutes is how many of the most recently confirmed learned
// routes /status lists: enough to see the phones booting now.
const statusRecentRoutes = 20

// A transfer running statusLongTransfer or more is listed with its
// progress in /status (at most statusLongTransfers, the longest first):
// a config takes well under a second, a load across a WAN minutes.
const (
	statusLongTransfer  = 10 * time.Second
	statusLongTransfers = 20
)

// TransfersStatus is /status's view of the TFTP transfers running.
type TransfersStatus struct {
	Running int                `json:"running"`
	Long    []TransferProgress `json:"long,omitempty"`
}

// Status reports the gateway's state.
func (g *Gateway) Status() GatewayStatus {
	host, _ := os.Hostname()
	st := GatewayStatus{Host: host, Version: g.cfg.Version, Started: g.startedAt, TFTP: addrStrings(g.tftp.Addrs()), Ready: g.readiness()}
	st.Transfers.Long, st.Transfers.Running = g.tftp.LongTransfers(statusLongTransfer, statusLongTransfers)
	gen := g.gen.Load()
	if gen == nil {
		return st
	}
	st.Config = g.rl.status(gen)
	st.Trust = gen.watcher.Status()
	if gen.clusters != nil {
		st.Subclusters = gen.clusters.Status()
	}
	if gen.cache != nil {
		s := gen.cache.Stats()
		st.Cache = &s
	}
	if gen.router != nil {
		lr := gen.router.LearnedRoutes(statusRecentRoutes)
		st.Learned, st.Routes = lr.Total, &lr
		st.LearnFile = g.saver.status(gen.router.LearnFile(), int(g.restored.Load()))
	}
	st.Migrations = gen.migrationStatus()
	return st
}

// provisioningHandler is the HTTP front end on port 6970 that phones (and
// CUCM's HTTP provisioning) try before TFTP: the same chain, over HTTP,
// behind the same client ACL (tftp.allow, tftp.deny) as TFTP.
func (g *Gateway) provisioningHandler() http.Handler {
	transfers := func(source, result string) *metrics.Counter {
		return g.metrics.GetOrCreateCounter(fmt.Sprintf(`ctftp_transfers_total{source=%q,result=%q}`, source, result))
	}
	acl, rejected := g.tftp.ACL(), g.tftp.ACLRejections()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client, _ := netip.ParseAddrPort(r.RemoteAddr)
		if !acl.Permits(client.Addr()) {
			// TCP cannot be spoofed, so unlike TFTP the refusal is
			// answered; it is logged at debug level only, like TFTP's.
			rejected.Inc()
			g.log.Debug("request refused by tftp.allow/tftp.deny", "proto", "http", "client", r.RemoteAddr)
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		start := time.Now()
		name, err := CleanName(r.URL.Path)
		var f *ctftp.File
		if err == nil {
			f, err = g.open(r.Context(), ctftp.Request{Name: name, Client: client, Mode: "octet"})
		}
		source, result, n := "none", "ok", int64(0)
		if err != nil {
			code, msg := WireError(err)
			status := http.StatusInternalServerError
			switch code {
			case 1:
				status, result = http.StatusNotFound, "not_found"
			case 2:
				status, result = http.StatusForbidden, "denied"
			default:
				status, result = http.StatusServiceUnavailable, "error"
			}
			http.Error(w, msg, status)
		} else {
			source = string(f.Origin)
			if f.Size >= 0 {
				w.Header().Set("Content-Length", strconv.FormatInt(f.Size, 10))
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			if r.Method == http.MethodGet {
				stop := closeWhenDone(r.Context(), f)
				n, err = io.Copy(w, f.Body)
				stop()
				if err != nil {
					result = "error"
				}
			}
			f.Body.Close()
		}
		transfers(source, result).Inc()
		attrs := []any{"proto", "http", "client", r.RemoteAddr, "file", r.URL.Path, "source", source,
			"bytes", n, "duration", time.Since(start), "result", result}
		if f != nil {
			attrs = append(attrs, "subcluster", f.Subcluster, "backend", f.Backend)
		}
		if err != nil {
			attrs = append(attrs, "err", err.Error())
		}
		g.log.Info("transfer", attrs...)
	})
}

func addrStrings(as []netip.AddrPort) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

func lnStrings(lns []net.Listener) []string {
	out := make([]string, 0, len(lns))
	for _, ln := range lns {
		out = append(out, ln.Addr().String())
	}
	return out
}

func listOf(ln net.Listener) []net.Listener {
	if ln == nil {
		return nil
	}
	return []net.Listener{ln}
}
