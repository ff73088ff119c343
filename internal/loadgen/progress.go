package loadgen

import (
	"fmt"
	"strings"
	"time"

	"github.com/ctftp/ctftp/internal/progress"
)

// barWidth is the number of cells of the terminal progress bar.
const barWidth = 30

// startProgress starts the reporter goroutine when Options.Progress is
// set and returns the function that stops it (after a last report) and
// waits for it. Write errors are ignored: progress is a courtesy, and a
// closed terminal must not fail the benchmark.
func (r *runner) startProgress(start time.Time) (stop func()) {
	if r.opts.Progress == nil {
		return func() {}
	}
	every := r.opts.ProgressInterval
	if every <= 0 {
		every = time.Second
		if r.opts.Terminal {
			every = 200 * time.Millisecond
		}
	}
	return progress.Every(every, true, func(last bool) { r.printProgress(start, last) })
}

// printProgress writes one report: a redrawn bar on a terminal, else a
// plain line (logs and CI keep every line).
func (r *runner) printProgress(start time.Time, final bool) {
	total := len(r.macs)
	booted, failed := int(r.booted.Load()), int(r.failed.Load())
	done := booted + failed
	elapsed := r.opts.Now().Sub(start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(booted) / s
	}
	label := r.opts.Label
	if label == "" {
		label = "bench"
	}
	if !r.opts.Terminal {
		fmt.Fprintf(r.opts.Progress, "%s: %d/%d phones, %d failed, %d transfers, %.0f phones/s, %s\n",
			label, done, total, failed, r.transfers.Load(), rate, elapsed.Round(time.Millisecond))
		return
	}
	fmt.Fprintf(r.opts.Progress, "\r\033[K%s %s %d/%d phones  %d failed  %.0f phones/s",
		label, bar(done, total), done, total, failed, rate)
	if final {
		fmt.Fprintln(r.opts.Progress)
	}
}

// bar draws done/total as [#####.....].
func bar(done, total int) string {
	filled := 0
	if total > 0 {
		filled = min(barWidth, done*barWidth/total)
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", barWidth-filled) + "]"
}
