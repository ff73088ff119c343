package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/spf13/cobra"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/proxy"
	"github.com/ctftp/ctftp/routing"
	"github.com/ctftp/ctftp/trust"
)

func validateCmd(a *cli) *cobra.Command {
	var path string
	var offline bool
	c := &cobra.Command{
		Use:   "validate [--config FILE] [--offline]",
		Short: "check a config: every problem at once; without --offline also probe every backend",
		Long: `Check a configuration without serving: every static problem at once (exit 2),
the root's own ITLFile.tlv, then, unless --offline, one probe of every backend
and of every sub-cluster's ITLFile.tlv, with progress on stderr and summary
tables on stdout, and the check of every migration wave. Exit 2: the
configuration must change (static problems, mixed ITL eras, a declared
version the probe disproved, a broken root ITL, a wave cutting over while
phones would break); 3: a sub-cluster's ITL does not verify; 1: something
could not be checked.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(runValidate(c.Context(), path, offline, a.stdout, a.stderr))
		},
	}
	configFlag(c, &path)
	c.Flags().BoolVar(&offline, "offline", false, "static checks only; send no packet")
	return c
}

// writeDeviceFiles says what each rule's device file holds, so that an
// admin who drops in a CUCM export sees how many phones it names and how
// many rows were not phones. The files were read without error by the
// static checks.
func writeDeviceFiles(w io.Writer, rules []routing.Rule) {
	for i, r := range rules {
		if r.DeviceFile == "" {
			continue
		}
		dl, err := routing.ReadDeviceFile(r.DeviceFile)
		if err != nil {
			continue // reported by the static checks
		}
		fmt.Fprintf(w, "routing.rules[%d].device_file %s (%s): %d devices -> %s", i, r.DeviceFile, dl.Format, len(dl.MACs), r.Subcluster)
		if dl.Format == routing.DeviceFormatCSV {
			fmt.Fprintf(w, "; rows skipped (no MAC in the device name): %d", dl.Skipped)
		}
		fmt.Fprintln(w)
	}
}

// runValidate checks a config without serving, in the order a rollout
// needs: every static problem at once (exit 2); the root's own
// ITLFile.tlv; then, unless --offline, one probe of every backend and the
// trust guard's probe of every sub-cluster's ITLFile.tlv, with progress
// on stderr and the summary tables on stdout. Exit codes, the most
// serious first: 2 the configuration must change (static problems, mixed
// ITL eras, a declared version the probe disproved, a broken root ITL);
// 3 a sub-cluster's ITL does not verify; 1 something could not be
// checked (a sub-cluster with no backend that answers, an ITL that could
// not be fetched); 0 all good. --offline judges the declared versions
// and the root's ITL only: a mixed setup that only a probe can clear is
// a note, not a failure.
func runValidate(ctx context.Context, path string, offline bool, stdout, stderr io.Writer) int {
	cfg, ok := loadOrReport(path, stderr)
	if !ok {
		return exitUsage
	}
	cc := cfg.clusterConfig()
	fmt.Fprintf(stdout, "%s: static checks passed (%s, %s)\n", path,
		plural(len(cc.Subclusters), "sub-cluster"), plural(len(cfg.Listen), "TFTP listen address"))
	writeDeviceFiles(stdout, cfg.Routing.Rules)
	local, err := proxy.NewLocal(cfg.Root)
	if err != nil {
		fmt.Fprintf(stderr, "config: root: %v\n", err)
		return exitUsage
	}
	defer local.Close()
	central := func(ctx context.Context) ([]byte, error) {
		f, err := local.Open(ctx, ctftp.Request{Name: trust.ITLFileName, Mode: "octet"})
		if err != nil {
			return nil, err
		}
		defer f.Body.Close()
		return io.ReadAll(io.LimitReader(f.Body, 4<<20))
	}

	if offline || len(cc.Subclusters) == 0 {
		data, err := central(ctx)
		rep := trust.Check(trust.Central(data, err, time.Now()), trust.Declared(cc))
		fmt.Fprintln(stdout)
		if offline && len(cc.Subclusters) > 0 {
			fmt.Fprintln(stdout, "ITL homogeneity from the declared versions and the root's ITLFile.tlv (--offline: nothing probed):")
		}
		rep.WriteTable(stdout)
		if offline && len(cfg.Migrations) > 0 {
			fmt.Fprintf(stdout, "note: %d migration waves not checked (--offline sends no packet): run ctftp validate or ctftp migrate check\n", len(cfg.Migrations))
		}
		return validateSummary(stdout, rep, exitOK)
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
	dead := map[string][]string{}
	for _, r := range results {
		note := ""
		if r.Err != nil {
			note = r.Err.Error()
		}
		if r.Alive {
			alive[r.Subcluster]++
		} else {
			name := fmt.Sprint(r.Source)
			if b := fmt.Sprint(r.Backend); b != name && b != "" {
				name += " (" + b + ")"
			}
			dead[r.Subcluster] = append(dead[r.Subcluster], name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", r.Subcluster, r.Source, r.Backend, r.Alive, r.RTT.Round(100_000), note)
	}
	tw.Flush()
	code := exitOK
	for _, sc := range cc.Subclusters {
		switch {
		case alive[sc.Name] == 0:
			fmt.Fprintf(stderr, "subcluster %q: no backend answered\n", sc.Name)
			code = exitFailure
		case len(dead[sc.Name]) > 0:
			// Not a failure (its siblings serve), but a mistyped
			// address would otherwise pass unnoticed in the table.
			fmt.Fprintf(stdout, "note: subcluster %q: %s did not answer; its other backends did\n", sc.Name, strings.Join(dead[sc.Name], ", "))
		}
	}

	fmt.Fprintf(stderr, "probing %s of %d sub-clusters and reading the root's (timeout %s each) ...\n",
		trust.ITLFileName, len(cc.Subclusters), cfg.Trust.ProbeTimeout)
	w := trust.NewWatcher(set, trust.WatchOptions{
		Timeout: cfg.Trust.ProbeTimeout,
		Central: central,
		Progress: func(c trust.Classification) {
			what := c.Class().String()
			if c.Err != nil {
				what = "failed: " + c.Err.Error()
			}
			fmt.Fprintf(stderr, "  %s: %s\n", c.Name, what)
		},
	})
	rep := w.Probe(ctx)
	fmt.Fprintln(stdout)
	rep.WriteTable(stdout)
	code = validateMigrations(ctx, cfg, set, stdout, stderr, code)
	return validateSummary(stdout, rep, code)
}

// validateMigrations runs, for every migration wave, the check serve and
// every reload run: a wave that cuts over (or is scheduled to) with a
// blocking device makes the configuration one that must change (exit
// 2), or, when its only blocking devices could not be checked, one that
// could not be validated (exit 1); a staged wave's findings are reported
// for the record.
func validateMigrations(ctx context.Context, cfg fileConfig, set *cluster.Set, stdout, stderr io.Writer, code int) int {
	mig, err := cfg.migrations()
	if err != nil || len(mig.Waves()) == 0 {
		return code // static problems were reported before
	}
	waves := mig.Waves()
	verdicts := checkWaves(ctx, set, waves, stderr)
	fmt.Fprintln(stdout)
	trust.WriteSummary(stdout, verdicts)
	for i, v := range verdicts {
		if v.Blocking() == 0 {
			continue
		}
		switch {
		case waves[i].CutsOver() && v.Blocking() == v.Errors():
			// Nothing known to break, but not checked either: the
			// gateway would refuse it until the check can run.
			fmt.Fprintf(stdout, "problem: %s\n", v.Refusal())
			code = max(code, exitFailure)
		case waves[i].CutsOver():
			fmt.Fprintf(stdout, "problem: %s\n", v.Refusal())
			code = exitUsage
		default:
			fmt.Fprintf(stdout, "note: wave %q is staged; %d of its %d devices could not move yet (ctftp migrate check --wave %s)\n", v.Name, v.Blocking(), len(v.Devices), v.Name)
		}
	}
	return code
}

// validateSummary prints the last line and returns the exit code: the
// most serious of code and the report's problems.
func validateSummary(w io.Writer, rep trust.Report, code int) int {
	switch {
	case rep.Has(trust.ProblemMixed), rep.Has(trust.ProblemRoot), rep.Has(trust.ProblemVersion):
		code = exitUsage
	case rep.Has(trust.ProblemITL):
		code = exitVerified
	case rep.Has(trust.ProblemUnreachable):
		code = max(code, exitFailure)
	}
	switch code {
	case exitOK:
		fmt.Fprintf(w, "validate: ok (%s)\n", rep.Verdict)
	case exitUsage:
		fmt.Fprintln(w, "validate: the configuration must change (exit 2)")
	case exitVerified:
		fmt.Fprintln(w, "validate: a sub-cluster's ITL does not verify (exit 3)")
	default:
		fmt.Fprintln(w, "validate: some checks could not run (exit 1)")
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

// plural is "1 sub-cluster", "2 sub-clusters".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "s") {
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
