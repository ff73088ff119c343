package loadgen

import "testing"

func TestStealFraction(t *testing.T) {
	a := parseCPULine("cpu  100 0 50 800 10 0 5 35 0 0")
	b := parseCPULine("cpu  200 0 100 1500 10 0 5 185 0 0")
	if !a.ok || a.total != 1000 || a.steal != 35 {
		t.Fatalf("%+v", a)
	}
	// 150 of the 1,000 ticks between them were stolen.
	if f := stealFraction(a, b); f != 0.15 {
		t.Fatalf("steal %v, want 0.15", f)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 3", "cpu 1 2 3 4 5 6 7 x"} {
		if c := parseCPULine(bad); c.ok {
			t.Errorf("%q parsed: %+v", bad, c)
		}
	}
	if f := stealFraction(a, cpuTimes{}); f != -1 {
		t.Errorf("unknown: %v", f)
	}
	if now := readCPUTimes(); !now.ok {
		t.Skip("no /proc/stat here")
	}
}
