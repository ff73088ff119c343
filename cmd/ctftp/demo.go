package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/ctftp/ctftp/cache"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/internal/fleet"
	"github.com/ctftp/ctftp/proxy"
	"github.com/ctftp/ctftp/routing"
)

// demoPhones are the demo fleet's phones. A function, so no caller can
// change what the others see.
func demoPhones() []fleet.Phone {
	return []fleet.Phone{
		{MAC: "0011215A1AE3", Subcluster: "east", Model: "Cisco 8845"},
		{MAC: "001122334455", Subcluster: "east", Model: "Cisco 7841"},
		{MAC: "00AABB000001", Subcluster: "west", Model: "Cisco 8865"},
		{MAC: "00AABB000002", Subcluster: "west", Model: "Cisco 7821"},
	}
}

func demoCmd(a *cli) *cobra.Command {
	var listen, admin, dir string
	c := &cobra.Command{
		Use:   "demo [--listen ADDR] [--admin ADDR] [--dir DIR]",
		Short: "self-contained tour: generated PKI, two sub-clusters, the gateway in front",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(runDemo(c.Context(), listen, admin, dir, a.stdout, a.stderr))
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:6969", "gateway TFTP `ADDR` (IP:PORT)")
	c.Flags().StringVar(&admin, "admin", "127.0.0.1:9069", "admin endpoint `ADDR` (status page, /metrics, /status); \"\" = off")
	c.Flags().StringVar(&dir, "dir", "", "write the demo's files under `DIR` and keep them (default: a temp dir removed at exit)")
	c.MarkFlagDirname("dir")
	return c
}

// runDemo is the self-contained tour: it generates a PKI per cluster,
// signs real ITL and config files, starts two sub-clusters (our own TFTP
// engine serving their directories) and the gateway in front of them.
func runDemo(ctx context.Context, listen, admin, dir string, stdout, stderr io.Writer) int {
	if _, err := netip.ParseAddrPort(listen); err != nil {
		fmt.Fprintf(stderr, "ctftp demo: --listen: %q: want IP:PORT\n", listen)
		return exitUsage
	}
	base := dir
	if base == "" {
		var err error
		base, err = os.MkdirTemp("", "ctftp-demo-")
		if err != nil {
			fmt.Fprintf(stderr, "ctftp demo: %v\n", err)
			return exitFailure
		}
		defer os.RemoveAll(base)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	backendLogger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	fmt.Fprintln(stdout, "ctftp demo: generating a PKI per cluster and signing ITL/config files ...")
	world, err := fleet.Generate(ctx, fleet.Options{Phones: demoPhones()})
	if err == nil {
		err = world.Write(base)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ctftp demo: %v\n", err)
		return exitFailure
	}
	for _, sc := range append([]string{fleet.Central}, world.Subclusters()...) {
		fmt.Fprintf(stdout, "  %-8s SAST, CallManager (CCM+TFTP) and TVS keys: 2048-bit RSA\n", sc)
	}

	// The two sub-clusters: the project's own TFTP engine on loopback,
	// each serving its cluster's directory, as a CUCM TFTP service would.
	eg, ctx := errgroup.WithContext(ctx)
	var subs []cluster.SubclusterConfig
	for _, name := range world.Subclusters() {
		// The sub-clusters log warnings only: their transfer lines (the
		// gateway's health probe, every 2 s each) would bury the gateway's.
		srv, err := proxy.ServeDir(filepath.Join(base, name), proxy.DirOptions{
			Logger: backendLogger.With("demo_subcluster", name), Metrics: metrics.NewSet(),
		})
		if err != nil {
			fmt.Fprintf(stderr, "ctftp demo: sub-cluster %s: %v\n", name, err)
			return exitFailure
		}
		eg.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			return srv.Close(sctx)
		})
		subs = append(subs, cluster.SubclusterConfig{Name: name, Version: "14", Backends: []string{srv.Addr().String()}})
	}

	cc := cluster.DefaultConfig()
	cc.Subclusters = subs
	tcfg := proxy.DefaultConfig()
	tcfg.Listen = []string{listen}
	tcfg.ShutdownGrace = 3 * time.Second
	gc := proxy.GatewayConfig{
		TFTP: tcfg, Root: filepath.Join(base, "root"), AdminListen: admin,
		Cluster: cc, Routing: routing.DefaultConfig(), Cache: cache.DefaultConfig(), Version: versionString(),
	}
	gw, err := proxy.NewGateway(gc, logger, metrics.NewSet())
	if err != nil {
		fmt.Fprintf(stderr, "ctftp demo: %v\n", err)
		return exitFailure
	}
	if err := gw.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "ctftp demo: gateway: %v\n", err)
		return exitFailure
	}
	addr := gw.TFTPAddrs()[0].String()
	printDemoHelp(stdout, addr, gw.AdminAddr(), base)
	eg.Go(func() error { return gw.Run(ctx) })
	if err := eg.Wait(); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "ctftp demo: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(stdout, "ctftp demo: stopped")
	return exitOK
}

func printDemoHelp(w io.Writer, addr, admin, base string) {
	fmt.Fprintf(w, `
ctftp demo is running: gateway on tftp://%[1]s, sub-clusters east and west behind it.
Files: %[2]s (root = the gateway's own files; east/, west/ = what each cluster serves;
direct/ = every phone's files on one server; devices/ = each sub-cluster's MACs)

Try, in another terminal:
`, addr, base)
	// Each step: why, then the command, so the block pastes into a shell
	// as it is, whatever the addresses' lengths.
	steps := [][2]string{
		{"the gateway's own ITL (local), read like CUCM's \"show itl\"", "curl -sS tftp://" + addr + "/ITLFile.tlv -o ITLFile.tlv"},
		{"", "go run ./cmd/ctftp itl show ITLFile.tlv"},
		{"forwarded: east has this phone (a fan-out, then the route is learned)", "go run ./cmd/ctftp get --server " + addr + " ITLSEP0011215A1AE3.tlv"},
		{"forwarded to west; would a west phone accept it?", "curl -sS tftp://" + addr + "/SEP00AABB000001.cnf.xml.sgn -O"},
		{"", "go run ./cmd/ctftp itl verify SEP00AABB000001.cnf.xml.sgn --trust " + filepath.Join(base, "west", "ITLFile.tlv")},
		// ctftp get, not curl: curl 7.88 reports a TFTP error 1 as
		// "(68) getpeername() failed", which reads like a network fault.
		{"an unknown phone: TFTP error 1 (File not found), fast", "go run ./cmd/ctftp get --server " + addr + " SEP0000DEADBEEF.cnf.xml.sgn"},
	}
	if admin != "" {
		steps = append(steps,
			[2]string{"the gateway's state as tables (the same as a page that refreshes itself: http://" + admin + "/)", "go run ./cmd/ctftp status --admin " + admin},
			[2]string{"counters; sub-clusters, cache and learned routes as JSON", "curl -s http://" + admin + "/metrics | grep ^ctftp_"},
			[2]string{"", "curl -s http://" + admin + "/status"})
	}
	for _, st := range steps {
		if st[0] != "" {
			fmt.Fprintf(w, "\n  # %s\n", st[0])
		}
		fmt.Fprintf(w, "  %s\n", st[1])
	}
	fmt.Fprintln(w, "\nCtrl-C stops it.")
}
