package sidebyside

import "testing"

func TestMedianRatios(t *testing.T) {
	pass := func(v float64) Pass {
		r := map[string]float64{}
		for _, q := range Ratios() {
			r[q[0]] = v
		}
		return Pass{Ratios: r}
	}
	if m := MedianRatios([]Pass{pass(1)}); m != nil {
		t.Errorf("one pass has no median line: %v", m)
	}
	for _, tc := range []struct {
		passes []float64
		want   float64
	}{{[]float64{1, 3}, 2}, {[]float64{1, 5, 2}, 2}, {[]float64{0.7, 0.6, 0.9, 0.8}, 0.75}} {
		var ps []Pass
		for _, v := range tc.passes {
			ps = append(ps, pass(v))
		}
		m := MedianRatios(ps)
		for _, q := range Ratios() {
			if d := m[q[0]] - tc.want; d > 1e-9 || d < -1e-9 {
				t.Errorf("%v: %s median %v, want %v", tc.passes, q[0], m[q[0]], tc.want)
			}
		}
	}
}
