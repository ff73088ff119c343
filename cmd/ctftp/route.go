package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/proxy"
	"github.com/ctftp/ctftp/routing"
)

func routeCmd(a *cli) *cobra.Command {
	var path, client string
	c := &cobra.Command{
		Use:   "route [--config FILE] [--client IP] FILE",
		Short: "explain where a request would go and why, sending nothing",
		RunE: func(c *cobra.Command, args []string) error {
			return exit(runRoute(c.Context(), path, client, args, a.stdout, a.stderr))
		},
	}
	configFlag(c, &path)
	c.Flags().StringVar(&client, "client", "", "the phone's `IP` (for client CIDR rules)")
	return c
}

// runRoute explains where a request would go and why, without sending a
// packet: local root first, then the routing rules, learned routes (none
// in a fresh process) or fan-out.
func runRoute(ctx context.Context, path, clientStr string, pos []string, stdout, stderr io.Writer) int {
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "ctftp route: want exactly one FILE")
		return exitUsage
	}
	var client netip.AddrPort
	if clientStr != "" {
		a, err := netip.ParseAddr(clientStr)
		if err != nil {
			fmt.Fprintf(stderr, "ctftp route: --client: %q is not an IP address\n", clientStr)
			return exitUsage
		}
		client = netip.AddrPortFrom(a.Unmap(), 0)
	}
	cfg, ok := loadOrReport(path, stderr)
	if !ok {
		return exitUsage
	}
	name, err := proxy.CleanName(pos[0])
	if err != nil {
		fmt.Fprintf(stdout, "file      %q\ndecision  refused with TFTP error 2 (access violation): %v\n", pos[0], err)
		return exitOK
	}
	fmt.Fprintf(stdout, "file      %s\n", name)
	if client.IsValid() {
		fmt.Fprintf(stdout, "client    %s\n", client.Addr())
	}
	if mac, ok := routing.ParseMAC(name); ok {
		fmt.Fprintf(stdout, "mac       %s\n", mac)
	}
	local, err := proxy.NewLocal(cfg.Root)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp route: root: %v\n", err)
		return exitFailure
	}
	defer local.Close()
	f, err := local.Open(ctx, ctftp.Request{Name: name, Client: client, Mode: "octet"})
	switch {
	case err == nil:
		f.Body.Close()
		fmt.Fprintf(stdout, "decision  served locally from root %s (%d bytes); sub-clusters are not asked\n", cfg.Root, f.Size)
		return exitOK
	case errors.Is(err, ctftp.ErrDenied):
		fmt.Fprintf(stdout, "decision  refused locally (access violation): %v\n", err)
		return exitOK
	case !errors.Is(err, ctftp.ErrNotFound):
		fmt.Fprintf(stderr, "ctftp route: root: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "local     not in root %s\n", cfg.Root)
	cc := cfg.clusterConfig()
	if len(cc.Subclusters) == 0 {
		fmt.Fprintln(stdout, "decision  not found (TFTP error 1): no sub-clusters configured")
		return exitOK
	}
	mig, err := cfg.migrations()
	if err != nil {
		fmt.Fprintf(stderr, "config: %v\n", err)
		return exitUsage
	}
	r, err := routing.New(cfg.Routing, cc.Names(), routing.Options{Migrations: mig})
	if err != nil {
		fmt.Fprintf(stderr, "config: routing: %v\n", err)
		return exitUsage
	}
	d := r.Route(ctftp.Request{Name: name, Client: client, Mode: "octet"})
	fmt.Fprintf(stdout, "decision  %s\n", d.Reason)
	if w := mig.Wave(d.Wave); w != nil {
		fmt.Fprintf(stdout, "wave      %s: %s -> %s, state %s, %d devices, trust %s (check it: ctftp migrate check --wave %s)\n",
			w.Name, w.From, w.To, w.InForce(), len(w.Devices), waveTrust(w), w.Name)
	}
	if d.Kind == routing.FanOut {
		fmt.Fprintf(stdout, "ask       %s (%s)\n", strings.Join(d.Subclusters, ", "), d.Strategy)
	} else {
		// A rule, a wave or a learned route names one sub-cluster: there
		// is no order to tell.
		fmt.Fprintf(stdout, "ask       %s\n", strings.Join(d.Subclusters, ", "))
	}
	if len(d.Prefetch) > 0 {
		when := "at once"
		if d.Kind == routing.FanOut {
			when = "once a sub-cluster has answered"
		}
		fmt.Fprintf(stdout, "prefetch  %s (%s, on idle backend slots)\n", strings.Join(d.Prefetch, ", "), when)
	}
	for _, sc := range cc.Subclusters {
		for _, want := range d.Subclusters {
			if sc.Name == want {
				fmt.Fprintf(stdout, "  %-12s backends %s\n", sc.Name, strings.Join(sc.Backends, ", "))
			}
		}
	}
	return exitOK
}
