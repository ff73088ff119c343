package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"text/tabwriter"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp/cluster"
)

// runValidate checks a config without serving: every static problem at
// once (exit 2), then, unless --offline, one probe of every backend (exit
// 1 when a sub-cluster has no backend that answers).
func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", stderr)
	path := fs.String("config", "config.yaml", "config `FILE`")
	offline := fs.Bool("offline", false, "static checks only; send no packet")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "ctftp validate: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	cfg, ok := loadOrReport(*path, stderr)
	if !ok {
		return exitUsage
	}
	cc := cfg.clusterConfig()
	fmt.Fprintf(stdout, "%s: static checks passed (%d sub-clusters, %d TFTP listen addresses)\n", *path, len(cc.Subclusters), len(cfg.Listen))
	if *offline || len(cc.Subclusters) == 0 {
		return exitOK
	}

	set, err := cluster.New(cc, cluster.Options{Logger: slog.New(slog.DiscardHandler), Metrics: metrics.NewSet(), SelfAddrs: selfAddrs(cfg.Listen)})
	if err != nil {
		fmt.Fprintf(stderr, "config: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "resolving backends ...\n")
	if err := set.Resolve(ctx); err != nil {
		fmt.Fprintf(stderr, "resolve: %v\n", err)
	}
	fmt.Fprintf(stderr, "probing every backend for %q (any TFTP answer counts as alive) ...\n", cc.Backend.ProbeFile)
	results := set.ProbeAll(ctx)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBCLUSTER\tBACKEND\tADDRESS\tALIVE\tRTT\tNOTE")
	alive := map[string]int{}
	for _, r := range results {
		note := ""
		if r.Err != nil {
			note = r.Err.Error()
		}
		if r.Alive {
			alive[r.Subcluster]++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", r.Subcluster, r.Source, r.Backend, r.Alive, r.RTT.Round(100_000), note)
	}
	tw.Flush()
	code := exitOK
	for _, sc := range cc.Subclusters {
		if alive[sc.Name] == 0 {
			fmt.Fprintf(stderr, "subcluster %q: no backend answered\n", sc.Name)
			code = exitFailure
		}
	}
	return code
}

// selfAddrs turns validated listen strings into addresses for the
// backend loop check.
func selfAddrs(listen []string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range listen {
		if ap, err := netip.ParseAddrPort(a); err == nil {
			out = append(out, ap)
		}
	}
	return out
}
