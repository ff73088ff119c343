package loadgen

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	seq := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i+1) * time.Millisecond
		}
		rand.Shuffle(n, func(i, j int) { out[i], out[j] = out[j], out[i] })
		return out
	}
	ms := time.Millisecond
	tests := []struct {
		name    string
		samples []time.Duration
		want    Latency
	}{
		{"empty", nil, Latency{}},
		{"one", []time.Duration{7 * ms}, Latency{Count: 1, Mean: 7 * ms, P50: 7 * ms, P90: 7 * ms, P99: 7 * ms, Max: 7 * ms}},
		{"two", []time.Duration{3 * ms, ms}, Latency{Count: 2, Mean: 2 * ms, P50: ms, P90: 3 * ms, P99: 3 * ms, Max: 3 * ms}},
		{"1..100", seq(100), Latency{Count: 100, Mean: 50500 * time.Microsecond, P50: 50 * ms, P90: 90 * ms, P99: 99 * ms, Max: 100 * ms}},
		{"1..1000", seq(1000), Latency{Count: 1000, Mean: 500500 * time.Microsecond, P50: 500 * ms, P90: 900 * ms, P99: 990 * ms, Max: 1000 * ms}},
		{"outlier", append(make([]time.Duration, 99), time.Second), Latency{Count: 100, Mean: 10 * ms, Max: time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Summarize(tc.samples); got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
