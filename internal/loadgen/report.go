package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what one Run measured. It is plain data; the JSON field
// names are what `ctftp bench --json` prints (durations in nanoseconds).
type Report struct {
	Label       string `json:"label,omitempty"`
	Server      string `json:"server"`
	Concurrency int    `json:"concurrency"`
	BlockSize   int    `json:"blksize,omitempty"`
	WindowSize  int    `json:"windowsize,omitempty"`

	// Phones started, Booted (got their configuration) and Failed.
	Phones int `json:"phones"`
	Booted int `json:"booted"`
	Failed int `json:"failed"`
	// Transfers is every request the server answered: Files received
	// plus "not found" answers. Misses are the expected "not found"
	// answers (CTLSEP<MAC>.tlv and friends).
	Transfers int `json:"transfers"`
	Files     int `json:"files"`
	Misses    int `json:"misses"`
	// Errors counts failed phones by the kind of their failure.
	Errors map[Kind]int `json:"errors"`
	// Examples are the first few failures, verbatim.
	Examples    []string `json:"examples,omitempty"`
	Bytes       int64    `json:"bytes"`
	Retransmits int      `json:"retransmits"`

	Elapsed time.Duration `json:"elapsed_ns"`
	// ProcessCPU is the user and system CPU time this process used
	// during the run: the generator's, plus the server's when it runs in
	// the same process (ctftp bench --side-by-side). Per phone it moves
	// far less than phones/s when other work shares the machine.
	ProcessCPU time.Duration `json:"process_cpu_ns,omitempty"`
	// Steal is the share of the machine's CPU time during the run that
	// its hypervisor gave to other guests (/proc/stat), -1 when unknown:
	// a virtual machine's neighbours slow a run without showing in the
	// load average.
	Steal float64 `json:"cpu_steal_fraction"`
	// CPUSplit, when the run was profiled, splits the sampled CPU time
	// between the server in this process and the generator.
	CPUSplit           *CPUSplit `json:"cpu_split,omitempty"`
	PhonesPerSecond    float64   `json:"phones_per_second"`
	TransfersPerSecond float64   `json:"transfers_per_second"`
	// Transfer is the latency of answered transfers, from the request to
	// the last DATA (or the ERROR); Boot is a booted phone's whole
	// sequence.
	Transfer Latency `json:"transfer_latency"`
	Boot     Latency `json:"boot_latency"`
}

// ErrorCount is the number of failed phones.
func (r *Report) ErrorCount() int {
	n := 0
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// ErrorSummary lists the error kinds as "timeout 3, not_found 1" (most
// frequent first), or "none".
func (r *Report) ErrorSummary() string {
	if len(r.Errors) == 0 {
		return "none"
	}
	kinds := make([]Kind, 0, len(r.Errors))
	for k := range r.Errors {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b Kind) int {
		if r.Errors[a] != r.Errors[b] {
			return r.Errors[b] - r.Errors[a]
		}
		return strings.Compare(string(a), string(b))
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, r.Errors[k])
	}
	return strings.Join(parts, ", ")
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	title := r.Label
	if title == "" {
		title = "bench"
	}
	fmt.Fprintf(&b, "%s: %s, concurrency %d, blksize %s, windowsize %s\n", title, r.Server, r.Concurrency,
		optional(r.BlockSize), optional(r.WindowSize))
	fmt.Fprintf(&b, "  phones     %d booted, %d failed of %d in %s: %.1f phones/s\n",
		r.Booted, r.Failed, r.Phones, r.Elapsed.Round(time.Millisecond), r.PhonesPerSecond)
	fmt.Fprintf(&b, "  transfers  %d answered (%d files, %d expected misses): %.1f/s, %d retransmits\n",
		r.Transfers, r.Files, r.Misses, r.TransfersPerSecond, r.Retransmits)
	fmt.Fprintf(&b, "  latency    transfer p50 %s  p99 %s  max %s;  boot p50 %s  p99 %s  max %s\n",
		ms(r.Transfer.P50), ms(r.Transfer.P99), ms(r.Transfer.Max), ms(r.Boot.P50), ms(r.Boot.P99), ms(r.Boot.Max))
	fmt.Fprintf(&b, "  bytes      %d (%s)\n", r.Bytes, human(r.Bytes))
	fmt.Fprintf(&b, "  errors     %s\n", r.ErrorSummary())
	for _, e := range r.Examples {
		fmt.Fprintf(&b, "             e.g. %s\n", e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteTable writes several reports side by side, one row each.
func WriteTable(w io.Writer, reports []*Report) error {
	split := slices.ContainsFunc(reports, func(r *Report) bool { return r.CPUSplit != nil })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "run\tphones/s\ttransfers/s\tp50\tp99\tmax\tboot p50\tboot p99\terrors\tbytes\tcpu/phone\tsteal\t"
	if split {
		head += "server\tgenerator\truntime\t"
	}
	fmt.Fprintln(tw, head)
	for _, r := range reports {
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t", r.Label, r.PhonesPerSecond, r.TransfersPerSecond,
			ms(r.Transfer.P50), ms(r.Transfer.P99), ms(r.Transfer.Max), ms(r.Boot.P50), ms(r.Boot.P99),
			r.ErrorCount(), human(r.Bytes), r.cpuPerPhone(), r.steal())
		if split {
			if c := r.CPUSplit; c != nil && r.Phones > 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t", perPhone(c.Server, r.Phones), perPhone(c.Generator, r.Phones), perPhone(c.Other, r.Phones))
			} else {
				fmt.Fprint(tw, "-\t-\t-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// perPhone prints d per phone in microseconds.
func perPhone(d time.Duration, phones int) string {
	return fmt.Sprintf("%.0fµs", float64(d.Microseconds())/float64(phones))
}

// steal prints Steal as a percentage.
func (r *Report) steal() string {
	if r.Steal < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*r.Steal)
}

// cpuPerPhone is ProcessCPU per phone that started, in microseconds.
func (r *Report) cpuPerPhone() string {
	if r.ProcessCPU <= 0 || r.Phones == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fµs", float64(r.ProcessCPU.Microseconds())/float64(r.Phones))
}

func optional(n int) string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprint(n)
}

// ms prints a latency in milliseconds with three significant digits,
// the unit every row of a table shares.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fms", v)
}

// human prints a byte count in binary units.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n)/unit, "KiB"
	for _, next := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, u = v/unit, next
	}
	return fmt.Sprintf("%.1f %s", v, u)
}
