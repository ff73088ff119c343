package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/ctftp/ctftp/internal/sdnotify"
	"github.com/ctftp/ctftp/proxy"
)

// loadOrReport loads the config and, on problems, prints each one on its
// own line to stderr. ok is false when the caller must exit with exitUsage.
func loadOrReport(path string, stderr io.Writer) (fileConfig, bool) {
	cfg, err := loadConfig(path)
	for _, w := range cfg.envWarnings {
		fmt.Fprintf(stderr, "config: warning: %s\n", w)
	}
	if err != nil {
		if ps, isList := err.(configProblems); isList {
			for _, p := range ps {
				fmt.Fprintf(stderr, "config: %s\n", p)
			}
		} else {
			fmt.Fprintf(stderr, "config: %v\n", err)
		}
		return cfg, false
	}
	return cfg, true
}

func newLogger(c logConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level)) // validated already
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// sha256Hex is the file's hash for /status and ctftp_config_info; "" for
// a config built in code (demo's), which has no file.
func (c *fileConfig) sha256Hex() string {
	if c.sum == [sha256.Size]byte{} {
		return ""
	}
	return hex.EncodeToString(c.sum[:])
}

func (c *fileConfig) gatewayConfig() proxy.GatewayConfig {
	t := c.TFTP
	t.Listen = c.Listen
	return proxy.GatewayConfig{
		TFTP:         t,
		Root:         c.Root,
		HTTPListen:   c.HTTPListen,
		AdminListen:  c.AdminListen,
		Cluster:      c.clusterConfig(),
		Routing:      c.Routing,
		Cache:        c.Cache,
		Trust:        c.Trust,
		Migrations:   c.Migrations,
		Version:      versionString(),
		ConfigSHA256: c.sha256Hex(),
	}
}

func serveCmd(a *cli) *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "serve [--config FILE]",
		Short: "run the gateway",
		Long: `Run the gateway until SIGINT or SIGTERM. Before serving, the trust guard probes
every sub-cluster: a setup whose ITL eras would break phones exits 2 with the
table. SIGHUP, and a change of the file, reload the configuration; one that
does not validate keeps the old one serving. Under systemd (Type=notify) it
reports readiness and reloads.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(runServe(c.Context(), path, a.stdout, a.stderr))
		},
	}
	configFlag(c, &path)
	return c
}

// runServe runs the gateway until ctx ends. Before serving, the trust
// guard probes every sub-cluster: a setup whose ITL eras would break
// phones exits 2 with the table. While serving, SIGHUP and (every
// reload.poll_interval) a change of the file reload it; a config that
// fails keeps the old one serving.
func runServe(ctx context.Context, path string, stdout, stderr io.Writer) int {
	// Registered first: SIGHUP's default action would kill the process
	// while it probes at start-up; one that arrives then is a reload
	// once serving.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	cfg, ok := loadOrReport(path, stderr)
	if !ok {
		return exitUsage
	}
	logger := newLogger(cfg.Log, stderr)
	warnFileLimit(logger, cfg.TFTP.MaxTransfers)
	gw, err := proxy.NewGateway(cfg.gatewayConfig(), logger, metrics.NewSet())
	if err != nil {
		fmt.Fprintf(stderr, "ctftp serve: %v\n", err)
		return exitFailure
	}
	if err := gw.Start(ctx); err != nil {
		var te *proxy.TrustError
		if errors.As(err, &te) {
			fmt.Fprintln(stderr, "ctftp serve: refusing to start: this setup would break phones' trust in their files")
			te.Report.WriteTable(stderr)
			return exitUsage
		}
		var me *proxy.MigrationError
		if errors.As(err, &me) {
			fmt.Fprintln(stderr, "ctftp serve: refusing to start: a migration wave would cut over while it would break phones")
			writeMigrationRefusal(stderr, me.Verdicts)
			return exitUsage
		}
		fmt.Fprintf(stderr, "ctftp serve: %v\n", err)
		if errors.Is(err, os.ErrPermission) {
			fmt.Fprintln(stderr, "ctftp serve: port 69 needs root or CAP_NET_BIND_SERVICE; or listen on a port above 1023")
		}
		return exitFailure
	}
	sd := sdnotify.FromEnv()
	notifyErr(logger, sd.Ready(serveStatus(gw)))
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return gw.Run(ctx) })
	eg.Go(func() error {
		w := configWatcher{path: path, cur: cfg, gw: gw, log: logger, sd: sd}
		w.watch(cfg.sum, cfg.deviceFiles())
		w.run(ctx, hup)
		notifyErr(logger, sd.Stopping())
		return nil
	})
	if err := eg.Wait(); err != nil {
		fmt.Fprintf(stderr, "ctftp serve: %v\n", err)
		return exitFailure
	}
	logger.Info("stopped")
	return exitOK
}

// configWatcher reloads the gateway on SIGHUP and when the config file
// changes. It is used by one goroutine.
type configWatcher struct {
	path string
	cur  fileConfig // the settings in force that only a restart changes (log, reload)
	gw   *proxy.Gateway
	log  *slog.Logger
	sd   sdnotify.Notifier
	// files are the config file and the device files it names (routing
	// rules, migration waves): a CUCM export replaced by a nightly job is
	// a change of the configuration like an edit of the file.
	files []watchedFile
	// next are the device files of the config load last read, when
	// loaded says it did.
	next   []string
	loaded bool
}

// watchedFile is a file whose change reloads the configuration.
type watchedFile struct {
	path string
	stat os.FileInfo
	sum  [sha256.Size]byte
}

// watch starts watching the config file (whose content hashed to sum
// when it was loaded) and devices: those watched already as they were,
// the others as they are now.
func (w *configWatcher) watch(sum [sha256.Size]byte, devices []string) {
	old := w.files
	st, _ := os.Stat(w.path)
	w.files = []watchedFile{{path: w.path, stat: st, sum: sum}}
	for _, p := range devices {
		if i := slices.IndexFunc(old, func(f watchedFile) bool { return f.path == p }); i > 0 {
			w.files = append(w.files, old[i])
			continue
		}
		f := watchedFile{path: p}
		f.stat, _ = os.Stat(p)
		f.sum, _ = fileSum(p)
		w.files = append(w.files, f)
	}
}

// snapshot takes every watched file as it is now: what a reload about
// to start reads.
func (w *configWatcher) snapshot() [sha256.Size]byte {
	for i := range w.files {
		f := &w.files[i]
		f.stat, _ = os.Stat(f.path)
		f.sum, _ = fileSum(f.path)
	}
	return w.files[0].sum
}

// run waits for SIGHUP or a change of a watched file until ctx ends. A
// change is a new size or modification time and then a new hash of the
// content, so a touch or an editor's rewrite of the same bytes reloads
// nothing; a SIGHUP always reloads (and acknowledges trust alarms).
func (w *configWatcher) run(ctx context.Context, hup <-chan os.Signal) {
	var tick <-chan time.Time
	if iv := w.cur.Reload.PollInterval; iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	for {
		var reason, file string
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reason, file = "SIGHUP", w.path
		case <-tick:
			if file = w.changed(); file == "" {
				continue
			}
			reason = "file changed"
		}
		w.log.Info("config reload", "reason", reason, "file", file)
		// What is read now is what the reload reads: a change after this
		// is the next reload's.
		sum := w.snapshot()
		w.loaded = false
		notifyErr(w.log, w.sd.Reloading())
		w.gw.Reload(ctx, w.load)
		notifyErr(w.log, w.sd.Ready(serveStatus(w.gw)))
		if w.loaded {
			// The new configuration's device files (a config that does
			// not load keeps the old ones watched).
			w.watch(sum, w.next)
		}
	}
}

// serveStatus is the line `systemctl status` shows for a unit of
// Type=notify.
func serveStatus(gw *proxy.Gateway) string {
	st := gw.Status()
	sha := st.Config.SHA256
	if len(sha) > 12 {
		sha = sha[:12]
	}
	s := fmt.Sprintf("serving: config generation %d (sha256 %s), %d sub-clusters", st.Config.Generation, sha, len(st.Subclusters))
	if r := st.Config.LastReload; r != nil && !r.OK {
		s += "; last reload FAILED (ctftp status)"
	}
	if len(st.Ready) > 0 {
		s += "; not ready: " + st.Ready[0]
	}
	return s
}

// notifyErr logs a failure to tell systemd: the service keeps serving,
// but systemd may time it out or think it hung.
func notifyErr(log *slog.Logger, err error) {
	if err != nil {
		log.Warn("systemd notification failed", "err", err)
	}
}

// changed returns the first watched file whose content differs from
// the one last loaded (or tried), or "".
func (w *configWatcher) changed() string {
	for i := range w.files {
		f := &w.files[i]
		st, err := os.Stat(f.path)
		if err != nil {
			continue // a file being replaced; the next poll sees the new one
		}
		if f.stat != nil && st.Size() == f.stat.Size() && st.ModTime().Equal(f.stat.ModTime()) {
			continue
		}
		f.stat = st
		if sum, err := fileSum(f.path); err == nil && sum != f.sum {
			return f.path
		}
	}
	return ""
}

// load reads the config for a reload. Keys the gateway does not own
// (log, reload) are reported here when they changed; they keep their
// values until a restart.
func (w *configWatcher) load() (proxy.GatewayConfig, error) {
	next, err := loadConfig(w.path)
	if err != nil {
		return proxy.GatewayConfig{}, err
	}
	w.next, w.loaded = next.deviceFiles(), true
	if next.Log != w.cur.Log {
		w.log.Warn("config reload: log changed; restart needed for it to take effect, the old value stays", "key", "log")
	}
	if next.Reload != w.cur.Reload {
		w.log.Warn("config reload: reload.poll_interval changed; restart needed for it to take effect, the old value stays", "key", "reload.poll_interval")
	}
	return next.gatewayConfig(), nil
}

func fileSum(path string) ([sha256.Size]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// warnFileLimit says so at start-up when tftp.max_transfers cannot be
// reached: every transfer holds a socket, and running out of descriptors
// in a boot storm fails transfers with an error no phone understands. (Go
// already raises the soft limit to the hard one at start.)
func warnFileLimit(logger *slog.Logger, maxTransfers int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	const reserve = 256 // listeners, backend fetches, admin, logs
	if lim.Cur < uint64(maxTransfers)+reserve {
		logger.Warn("open-file limit below tftp.max_transfers: a storm will fail transfers before the server says busy; raise LimitNOFILE / ulimit -n or lower tftp.max_transfers",
			"nofile", lim.Cur, "max_transfers", maxTransfers)
	}
}
