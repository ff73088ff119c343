package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
)

// DirServer is this engine serving one directory on a loopback port, on
// its own: no routing, no cache, a plain TFTP server that has RFC 7440
// windowsize (tftpd-hpa 5.2 lacks it). `ctftp demo` runs its sub-clusters
// with it, `ctftp bench --backends ctftp` its backends, and the tests the
// backends they need it for.
type DirServer struct {
	srv   *Server
	local *Local
	done  chan error
}

// DirOptions tune a DirServer. The zero value serves with
// DefaultConfig's protocol settings on 127.0.0.1 (a port the OS picks),
// without per-client limits (a gateway asks its backend from one
// address, many times a second), logging nothing and counting into no
// metrics set.
type DirOptions struct {
	// Tune, when set, adjusts the engine's Config (a CUCM-like node
	// without windowsize, a listen address).
	Tune func(*Config)
	// Wrap, when set, wraps the directory's Source (a test's node that
	// serves a few transfers at a time).
	Wrap    func(ctftp.Source) ctftp.Source
	Logger  *slog.Logger
	Metrics *metrics.Set
}

// ServeDir starts serving dir; Close stops it.
func ServeDir(dir string, o DirOptions) (*DirServer, error) {
	cfg := DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.ShutdownGrace = time.Second
	cfg.ClientRate, cfg.MaxTransfersPerClient = 0, 0
	if o.Tune != nil {
		o.Tune(&cfg)
	}
	local, err := NewLocal(dir)
	if err != nil {
		return nil, fmt.Errorf("proxy: serve %s: %w", dir, err)
	}
	var src ctftp.Source = local
	if o.Wrap != nil {
		src = o.Wrap(local)
	}
	srv, err := NewServer(cfg, src, o.Logger, o.Metrics)
	if err == nil {
		err = srv.Listen()
	}
	if err != nil {
		local.Close()
		return nil, fmt.Errorf("proxy: serve %s: %w", dir, err)
	}
	d := &DirServer{srv: srv, local: local, done: make(chan error, 1)}
	go func() { d.done <- srv.Serve(context.Background()) }()
	return d, nil
}

// Addr is where the server answers requests (the first listen address).
func (d *DirServer) Addr() netip.AddrPort { return d.srv.Addrs()[0] }

// Close stops serving, lets transfers under way finish until ctx ends,
// and waits for the server to stop.
func (d *DirServer) Close(ctx context.Context) error {
	err := d.srv.Shutdown(ctx)
	return errors.Join(err, <-d.done, d.local.Close())
}
