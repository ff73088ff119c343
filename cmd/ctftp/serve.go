package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp/proxy"
)

// loadOrReport loads the config and, on problems, prints each one on its
// own line to stderr. ok is false when the caller must exit with exitUsage.
func loadOrReport(path string, stderr io.Writer) (fileConfig, bool) {
	cfg, err := loadConfig(path)
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

func (c *fileConfig) gatewayConfig() proxy.GatewayConfig {
	t := c.TFTP
	t.Listen = c.Listen
	return proxy.GatewayConfig{
		TFTP:        t,
		Root:        c.Root,
		HTTPListen:  c.HTTPListen,
		AdminListen: c.AdminListen,
		Cluster:     c.clusterConfig(),
		Routing:     c.Routing,
		Cache:       c.Cache,
		Version:     versionString(),
	}
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", stderr)
	path := fs.String("config", "config.yaml", "config `FILE`")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "ctftp serve: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	cfg, ok := loadOrReport(*path, stderr)
	if !ok {
		return exitUsage
	}
	logger := newLogger(cfg.Log, stderr)
	return serveGateway(ctx, cfg.gatewayConfig(), logger, stderr)
}

// serveGateway runs a gateway until ctx ends; shared by serve and demo.
func serveGateway(ctx context.Context, gc proxy.GatewayConfig, logger *slog.Logger, stderr io.Writer) int {
	set := metrics.NewSet()
	gw, err := proxy.NewGateway(gc, logger, set)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp serve: %v\n", err)
		return exitFailure
	}
	if err := gw.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "ctftp serve: %v\n", err)
		if errors.Is(err, os.ErrPermission) {
			fmt.Fprintln(stderr, "ctftp serve: port 69 needs root or CAP_NET_BIND_SERVICE; or listen on a port above 1023")
		}
		return exitFailure
	}
	if err := gw.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "ctftp serve: %v\n", err)
		return exitFailure
	}
	logger.Info("stopped")
	return exitOK
}
