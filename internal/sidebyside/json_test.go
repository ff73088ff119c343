package sidebyside

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/ctftp/ctftp/internal/loadgen"
)

// TestResultJSONKeys pins the keys of `ctftp bench --side-by-side --json`:
// users script against them, and the command's own test decodes into this
// type, so it would not notice a renamed tag. The reports under "runs" and
// "run" are loadgen's and not listed.
func TestResultJSONKeys(t *testing.T) {
	load := &LoadAvg{One: 1, Five: 2, Fifteen: 3}
	ratios := map[string]float64{}
	for _, q := range Ratios() {
		ratios[q[0]] = 1
	}
	row := SweepRow{Blksize: 1428, Window: 8, Run: &loadgen.Report{}, OverDirect: 1}
	res := Result{
		Phones: 1, Concurrency: 1, PhoneBlksize: 512, CPUs: 1, BackendBlksize: 1428, BackendWindow: 8, BackendInFlight: 5,
		BackendDelay: 1, Backends: "tftpd-hpa", LoadStart: load, LoadEnd: load,
		Settle: &SettleResult{Below: quietLoad, Load: load},
		Passes: []Pass{{Load: load, Runs: []*loadgen.Report{{}}, Ratios: ratios, CeilingRoundTrips: 1}},
		// Every optional field set, so an omitempty key is listed too.
		MedianRatios: ratios,
		Memory:       Memory{CachedFiles: 1, InFlight: &InFlightMemory{Transfers: 1, Error: "e"}},
		Sweep:        []SweepRow{row},
		Best:         &row,
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var got []string
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				p := strings.TrimPrefix(path+"."+k, ".")
				got = append(got, p)
				if k != "runs" && k != "run" {
					walk(x, p)
				}
			}
		case []any:
			for _, x := range v {
				walk(x, path+"[]")
			}
		}
	}
	walk(v, "")
	slices.Sort(got)
	got = slices.Compact(got)

	loadKeys := func(p string) []string { return []string{p, p + ".1m", p + ".5m", p + ".15m"} }
	fetchKeys := func(p string) []string {
		return []string{p, p + ".cold_fetches", p + ".distinct_files", p + ".fetches_per_file", p + ".fill_shared", p + ".warm_fetches"}
	}
	ratioKeys := func(p string) []string {
		out := []string{p}
		for _, k := range []string{"cold_over_direct", "cold_rules_over_direct", "direct_over_ceiling", "pin_over_direct",
			"warm_over_ceiling", "warm_over_direct", "warm_over_pin"} {
			out = append(out, p+"."+k)
		}
		return out
	}
	rowKeys := func(p string) []string {
		return []string{p + ".backend_blksize", p + ".backend_window", p + ".run", p + ".over_direct"}
	}
	want := []string{"phones", "concurrency", "phone_blksize", "cpus", "backend_blksize", "backend_window",
		"backend_max_in_flight", "backend_delay_ns", "backends",
		"settle", "settle.below", "settle.waited_ns", "settle.settled",
		"passes", "passes[].runs", "passes[].ceiling_round_trips_per_phone",
		"memory", "memory.cached_files", "memory.cached_bytes", "memory.heap_growth_bytes", "memory.heap_per_cached_byte",
		"memory.in_flight", "memory.in_flight.transfers", "memory.in_flight.file", "memory.in_flight.rss_bytes_per_transfer",
		"memory.in_flight.heap_inuse_bytes_per_transfer", "memory.in_flight.stack_inuse_bytes_per_transfer",
		"memory.in_flight.goroutines_per_transfer", "memory.in_flight.fds_per_transfer", "memory.in_flight.error"}
	want = slices.Concat(want, loadKeys("load_start"), loadKeys("load_end"), loadKeys("settle.load"), loadKeys("passes[].load_start"),
		fetchKeys("passes[].cold_fanout_backend"), fetchKeys("passes[].cold_rules_backend"),
		ratioKeys("passes[].ratios"), ratioKeys("median_ratios"), rowKeys("backend_sweep[]"), rowKeys("best_cold"), []string{"backend_sweep", "best_cold"})
	slices.Sort(want)
	if !slices.Equal(got, want) {
		for _, k := range got {
			if !slices.Contains(want, k) {
				t.Errorf("unexpected key %s", k)
			}
		}
		for _, k := range want {
			if !slices.Contains(got, k) {
				t.Errorf("missing key %s", k)
			}
		}
	}
}

// TestResultFailed: a failed phone in any pass or in the sweep fails the
// command (its exit code).
func TestResultFailed(t *testing.T) {
	ok, bad := &loadgen.Report{Phones: 2}, &loadgen.Report{Phones: 2, Failed: 1}
	for _, tc := range []struct {
		name string
		res  Result
		want bool
	}{
		{"all ok", Result{Passes: []Pass{{Runs: []*loadgen.Report{ok, ok}}}, Sweep: []SweepRow{{Run: ok}}}, false},
		{"second pass", Result{Passes: []Pass{{Runs: []*loadgen.Report{ok}}, {Runs: []*loadgen.Report{ok, bad}}}}, true},
		{"sweep", Result{Passes: []Pass{{Runs: []*loadgen.Report{ok}}}, Sweep: []SweepRow{{Run: ok}, {Run: bad}}}, true},
	} {
		if got := tc.res.Failed(); got != tc.want {
			t.Errorf("%s: Failed() = %v, want %v", tc.name, got, tc.want)
		}
	}
}
