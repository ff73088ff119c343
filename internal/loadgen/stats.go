package loadgen

import (
	"slices"
	"time"
)

// Latency summarises a set of durations. Every sample is kept until the
// summary is made (8 bytes each, bounded by MaxPhones), so percentiles
// are exact rather than estimated from buckets. Plain data.
type Latency struct {
	Count int           `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summarize computes the summary of samples, sorting them in place.
// Percentiles use the nearest-rank method: P99 of 100 samples is the
// 99th smallest, so it is always a value that was measured.
func Summarize(samples []time.Duration) Latency {
	n := len(samples)
	if n == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	rank := func(p int) time.Duration {
		// ceil(p/100 * n) - 1, in integers.
		i := (p*n + 99) / 100
		return samples[max(i, 1)-1]
	}
	return Latency{
		Count: n,
		Mean:  sum / time.Duration(n),
		P50:   rank(50),
		P90:   rank(90),
		P99:   rank(99),
		Max:   samples[n-1],
	}
}
