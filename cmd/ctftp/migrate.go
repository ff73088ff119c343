package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/spf13/cobra"

	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/proxy"
	"github.com/ctftp/ctftp/routing"
	"github.com/ctftp/ctftp/trust"
)

func migrateCmd(a *cli) *cobra.Command {
	var path, wave string
	var asJSON bool
	check := &cobra.Command{
		Use:   "check [--config FILE] [--wave NAME] [--json]",
		Short: "will the phones of a wave trust their new cluster?",
		Long: `Fetches, through the configured backends, the files each phone of a
migration wave holds now (from) and would get (to), and predicts what the
phone does with them. Exit 3 when a device would be blocked, 1 when some
could not be checked, 0 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(runMigrateCheck(c.Context(), path, wave, asJSON, a.stdout, a.stderr))
		},
	}
	configFlag(check, &path)
	check.Flags().StringVar(&wave, "wave", "", "check only the wave `NAME`")
	check.Flags().BoolVar(&asJSON, "json", false, "print the verdicts as JSON")
	return group(a, "migrate", "check migration waves before phones move between clusters", check)
}

// runMigrateCheck checks every wave (or one) and prints a summary table,
// then each blocking device with the ways out; asJSON prints the
// verdicts instead. Progress goes to stderr: a bar on a terminal, a line
// per tenth of a large wave otherwise.
func runMigrateCheck(ctx context.Context, path, only string, asJSON bool, stdout, stderr io.Writer) int {
	cfg, ok := loadOrReport(path, stderr)
	if !ok {
		return exitUsage
	}
	mig, err := cfg.migrations()
	if err != nil {
		fmt.Fprintf(stderr, "config: %v\n", err)
		return exitUsage
	}
	waves := mig.Waves()
	if only != "" {
		w := mig.Wave(only)
		if w == nil {
			var names []string
			for _, w := range waves {
				names = append(names, w.Name)
			}
			fmt.Fprintf(stderr, "ctftp migrate check: --wave: no wave %q in %s (waves: %s)\n", only, path, waveList(names))
			return exitUsage
		}
		waves = []*routing.MigrationWave{w}
	}
	if len(waves) == 0 {
		fmt.Fprintf(stdout, "%s: no migration waves configured\n", path)
		return exitOK
	}
	cc := cfg.clusterConfig()
	set, err := cluster.New(cc, cluster.Options{Logger: slog.New(slog.DiscardHandler), Metrics: metrics.NewSet(), SelfAddrs: selfAddrs(cfg.Listen)})
	if err != nil {
		fmt.Fprintf(stderr, "config: %v\n", err)
		return exitUsage
	}
	if err := set.Resolve(ctx); err != nil {
		fmt.Fprintf(stderr, "resolve: %v\n", err)
	}
	verdicts := checkWaves(ctx, set, waves, stderr)

	code := exitOK
	for _, v := range verdicts {
		switch {
		case v.Blocking() > v.Errors():
			code = exitVerified
		case v.Errors() > 0 && code == exitOK:
			code = exitFailure
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Waves []trust.WaveVerdict `json:"waves"`
			Exit  int                 `json:"exit"`
		}{verdicts, code}); err != nil {
			fmt.Fprintf(stderr, "ctftp migrate check: %v\n", err)
			return exitFailure
		}
		return code
	}
	trust.WriteSummary(stdout, verdicts)
	for i, v := range verdicts {
		w := waves[i]
		fmt.Fprintf(stdout, "\nwave %s (%s, %s -> %s, state %s, trust %s): ", v.Name, w.Key(), v.From, v.To, w.InForce(), v.Trust)
		if v.Blocking() == 0 {
			fmt.Fprintf(stdout, "all %d devices can move\n", len(v.Devices))
			continue
		}
		fmt.Fprintf(stdout, "%d of %d devices are blocked\n", v.Blocking(), len(v.Devices))
		v.WriteDetail(stdout)
	}
	switch code {
	case exitOK:
		fmt.Fprintln(stdout, "\nmigrate check: ok")
	case exitVerified:
		fmt.Fprintln(stdout, "\nmigrate check: some phones would break or strand (exit 3): a config that cuts these waves over is refused")
	default:
		fmt.Fprintln(stdout, "\nmigrate check: some devices could not be checked (exit 1)")
	}
	return code
}

// checkWaves checks waves one after another, with progress on stderr.
func checkWaves(ctx context.Context, set *cluster.Set, waves []*routing.MigrationWave, stderr io.Writer) []trust.WaveVerdict {
	term := isTerminal(stderr)
	var out []trust.WaveVerdict
	for _, w := range waves {
		fmt.Fprintf(stderr, "checking wave %s: %d devices, %s -> %s ...\n", w.Name, len(w.Devices), w.From, w.To)
		p := &progressBar{w: stderr, label: w.Name, term: term}
		opts := trust.CheckOptions{}
		if len(w.Devices) >= progressMin || term {
			opts.Progress = p.update
		}
		out = append(out, trust.CheckWave(ctx, set, proxy.WaveSpec(w), opts))
		p.finish()
	}
	return out
}

// progressMin is the wave size from which progress lines are printed
// when stderr is not a terminal: below it the check takes seconds.
const progressMin = 100

// progressBar draws a wave's progress: redrawn on a terminal, a line per
// tenth otherwise.
type progressBar struct {
	w     io.Writer
	label string
	term  bool

	mu        sync.Mutex
	last      time.Time
	lastTenth int
	drawn     bool
}

func (p *progressBar) update(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.term {
		if now := time.Now(); done == total || now.Sub(p.last) >= 100*time.Millisecond {
			p.last = now
			const width = 30
			n := done * width / total
			fmt.Fprintf(p.w, "\r\033[K  %s [%s%s] %d/%d", p.label, strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
			p.drawn = true
		}
		return
	}
	if tenth := done * 10 / total; tenth > p.lastTenth {
		p.lastTenth = tenth
		fmt.Fprintf(p.w, "  %s: %d/%d devices checked\n", p.label, done, total)
	}
}

func (p *progressBar) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

// writeMigrationRefusal prints why waves refuse a configuration: the
// summary, then each blocking device and the ways out.
func writeMigrationRefusal(w io.Writer, verdicts []trust.WaveVerdict) {
	trust.WriteSummary(w, verdicts)
	for _, v := range verdicts {
		fmt.Fprintf(w, "\n%s\n", v.Refusal())
		v.WriteDetail(w)
	}
}

func waveTrust(w *routing.MigrationWave) string {
	if w.Imported {
		return routing.WaveTrustImported
	}
	return routing.WaveTrustCheck
}

func waveList(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
