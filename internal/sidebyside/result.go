package sidebyside

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/ctftp/ctftp/internal/loadgen"
)

// The runs of a side-by-side pass, in the order they run.
const (
	RunDirect  = "tftpd-hpa direct"
	RunPin     = "pin/tftp direct"
	RunCold    = "gateway cold, fan-out"
	RunWarm    = "gateway warm"
	RunRules   = "gateway cold, device rules"
	RunCeiling = "loopback lock-step ceiling"
)

// Ratios are the ratios of phones/s a pass reports: key, numerator,
// denominator, in print order. A function, so nobody can change them.
func Ratios() [7][3]string {
	return [...][3]string{
		{"warm_over_ceiling", RunWarm, RunCeiling},
		{"warm_over_pin", RunWarm, RunPin},
		{"warm_over_direct", RunWarm, RunDirect},
		{"pin_over_direct", RunPin, RunDirect},
		{"cold_over_direct", RunCold, RunDirect},
		{"cold_rules_over_direct", RunRules, RunDirect},
		{"direct_over_ceiling", RunDirect, RunCeiling},
	}
}

// Result is the JSON form of a side-by-side run.
type Result struct {
	Phones          int `json:"phones"`
	Concurrency     int `json:"concurrency"`
	PhoneBlksize    int `json:"phone_blksize,omitempty"`
	CPUs            int `json:"cpus"`
	BackendBlksize  int `json:"backend_blksize"`
	BackendWindow   int `json:"backend_window"`
	BackendInFlight int `json:"backend_max_in_flight"`
	// BackendDelay is the emulated WAN's delay each way; the direct runs
	// cross the same link when it is set.
	BackendDelay time.Duration `json:"backend_delay_ns"`
	// Backends is the sub-clusters' server: tftpd-hpa or ctftp.
	Backends string `json:"backends"`
	// LoadStart and LoadEnd are /proc/loadavg before the first run and
	// after the last: a loaded machine shows itself.
	LoadStart *LoadAvg `json:"load_start,omitempty"`
	LoadEnd   *LoadAvg `json:"load_end,omitempty"`
	// Settle is the wait for a quiet machine before the first run
	// (--settle); nil when none was asked for.
	Settle *SettleResult `json:"settle,omitempty"`
	Passes []Pass        `json:"passes"`
	// MedianRatios are each ratio's median over the passes (2 or more).
	MedianRatios map[string]float64 `json:"median_ratios,omitempty"`
	Memory       Memory             `json:"memory"`
	// Sweep is the cold fan-out run again, in the first pass, with every
	// other combination of --backend-blksize and --backend-window; Best
	// is the fastest cold fan-out of all, the main one included.
	Sweep []SweepRow `json:"backend_sweep,omitempty"`
	Best  *SweepRow  `json:"best_cold,omitempty"`
}

// SweepRow is one cold fan-out run with one backend block size and
// window size.
type SweepRow struct {
	Blksize int             `json:"backend_blksize"`
	Window  int             `json:"backend_window"`
	Run     *loadgen.Report `json:"run"`
	// OverDirect compares phones/s with the pass's tftpd-hpa direct run.
	OverDirect float64 `json:"over_direct"`
}

// SettleResult is how the wait for a quiet machine went.
type SettleResult struct {
	// Below is the 1-minute load average waited for.
	Below   float64       `json:"below"`
	Waited  time.Duration `json:"waited_ns"`
	Settled bool          `json:"settled"`
	Load    *LoadAvg      `json:"load"`
}

// quietLoad is the 1-minute load average --settle waits for: below it,
// a 2-core machine is running nothing of note besides the bench.
const quietLoad = 0.5

// Settle waits up to max for the 1-minute load average to fall below
// quietLoad, noting progress every 15 s: a run on a busy machine starves
// the fork-per-transfer tftpd-hpa far more than the other servers and
// flatters every ratio against it.
func Settle(ctx context.Context, max time.Duration, note func(string, ...any)) *SettleResult {
	res := &SettleResult{Below: quietLoad}
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastNote := start
	for {
		res.Load = ReadLoadAvg()
		res.Waited = time.Since(start).Round(time.Second)
		if res.Load == nil {
			return res // no /proc/loadavg: nothing to wait for
		}
		if res.Load.One < quietLoad {
			res.Settled = true
			return res
		}
		if res.Waited >= max {
			return res
		}
		if time.Since(lastNote) >= 15*time.Second {
			note("waiting for the load average to fall below %.1f: %s after %s", quietLoad, res.Load, res.Waited)
			lastNote = time.Now()
		}
		select {
		case <-ctx.Done():
			return res
		case <-tick.C:
		}
	}
}

func (s *SettleResult) String() string {
	if s.Settled {
		return fmt.Sprintf("settled below %.1f after %s", s.Below, s.Waited)
	}
	return fmt.Sprintf("did NOT settle below %.1f in %s: a loaded reading", s.Below, s.Waited)
}

// MedianRatios is each ratio's median over the passes.
func MedianRatios(passes []Pass) map[string]float64 {
	if len(passes) < 2 {
		return nil
	}
	m := map[string]float64{}
	for _, q := range Ratios() {
		var v []float64
		for _, p := range passes {
			v = append(v, p.Ratios[q[0]])
		}
		slices.Sort(v)
		if n := len(v); n%2 == 1 {
			m[q[0]] = v[n/2]
		} else {
			m[q[0]] = (v[n/2-1] + v[n/2]) / 2
		}
	}
	return m
}

// Pass is one pass over every configuration.
type Pass struct {
	// Load is the load average when the pass began.
	Load *LoadAvg          `json:"load_start,omitempty"`
	Runs []*loadgen.Report `json:"runs"`
	// Ratios compare phones/s of this pass's runs (Ratios).
	Ratios map[string]float64 `json:"ratios"`
	// CeilingRoundTrips is the ceiling's round trips per phone: what
	// each phone of the other runs makes too.
	CeilingRoundTrips float64        `json:"ceiling_round_trips_per_phone"`
	Fanout            BackendFetches `json:"cold_fanout_backend"`
	Rules             BackendFetches `json:"cold_rules_backend"`
}

// BackendFetches is what a gateway asked of its backends, from its own
// metrics and cache statistics.
type BackendFetches struct {
	// ColdFetches are backend fetch attempts during the cold run
	// (ctftp_backend_fetches_total); DistinctFiles the distinct
	// (sub-cluster, file) answers the cache then held, positive and
	// negative. Their ratio is 1 when every file was fetched once.
	ColdFetches   int64   `json:"cold_fetches"`
	DistinctFiles int64   `json:"distinct_files"`
	PerFile       float64 `json:"fetches_per_file"`
	// FillShared counts requests that waited for another request's
	// fetch instead of starting one (ctftp_cache_fill_shared_total).
	FillShared uint64 `json:"fill_shared"`
	// WarmFetches are backend fetches during the warm run: 0 while every
	// file is within its TTL (fan-out gateway only).
	WarmFetches int64 `json:"warm_fetches"`
}

// Memory is the warm gateway's memory, measured in the first pass.
type Memory struct {
	// CachedFiles and CachedBytes are what the cold run left in the
	// cache; HeapGrowth is the live heap after it minus before it (after
	// a GC each time), so it includes the cache's entries, remembered
	// "not found" answers and learned routes, not only file bytes.
	CachedFiles       int     `json:"cached_files"`
	CachedBytes       int64   `json:"cached_bytes"`
	HeapGrowth        int64   `json:"heap_growth_bytes"`
	HeapPerCachedByte float64 `json:"heap_per_cached_byte"`
	// InFlight is the cost of transfers held open on the warm gateway
	// (nil with --in-flight 0).
	InFlight *InFlightMemory `json:"in_flight,omitempty"`
}

// InFlightMemory is the gateway process's growth per transfer held in
// flight by a separate process (so the client's sockets are not
// counted): each transfer has sent its OACK and waits for the ACK.
type InFlightMemory struct {
	Transfers             int     `json:"transfers"`
	File                  string  `json:"file"`
	RSSPerTransfer        float64 `json:"rss_bytes_per_transfer"`
	HeapPerTransfer       float64 `json:"heap_inuse_bytes_per_transfer"`
	StackPerTransfer      float64 `json:"stack_inuse_bytes_per_transfer"`
	GoroutinesPerTransfer float64 `json:"goroutines_per_transfer"`
	FDsPerTransfer        float64 `json:"fds_per_transfer"`
	Error                 string  `json:"error,omitempty"`
}

// LoadAvg is /proc/loadavg's first three fields.
type LoadAvg struct {
	One     float64 `json:"1m"`
	Five    float64 `json:"5m"`
	Fifteen float64 `json:"15m"`
}

func (l *LoadAvg) String() string {
	if l == nil {
		return "unknown"
	}
	return fmt.Sprintf("%.2f %.2f %.2f", l.One, l.Five, l.Fifteen)
}

// ReadLoadAvg returns the load average, nil where /proc has none.
func ReadLoadAvg() *LoadAvg {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	var l LoadAvg
	if _, err := fmt.Sscanf(string(b), "%g %g %g", &l.One, &l.Five, &l.Fifteen); err != nil {
		return nil
	}
	return &l
}
