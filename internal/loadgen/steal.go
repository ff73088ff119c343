package loadgen

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// cpuTimes is the machine's CPU time so far (all CPUs, in clock ticks):
// the total and the part stolen by the hypervisor for other guests.
type cpuTimes struct {
	total, steal uint64
	ok           bool
}

// readCPUTimes reads /proc/stat's "cpu" line; ok is false where there is
// none.
func readCPUTimes() cpuTimes {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return cpuTimes{}
	}
	return parseCPULine(sc.Text())
}

// parseCPULine reads "cpu  user nice system idle iowait irq softirq
// steal ...": the total is every field up to steal (guest time is
// already inside user).
func parseCPULine(line string) cpuTimes {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}
	}
	var t cpuTimes
	for i := 1; i <= 8; i++ {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return cpuTimes{}
		}
		t.total += v
		if i == 8 {
			t.steal = v
		}
	}
	t.ok = true
	return t
}

// stealFraction is the share of the machine's CPU time between a and b
// that the hypervisor gave to other guests: on a virtual machine, the
// one sign of neighbours that the load average does not show. -1 when
// unknown.
func stealFraction(a, b cpuTimes) float64 {
	if !a.ok || !b.ok || b.total <= a.total {
		return -1
	}
	return float64(b.steal-a.steal) / float64(b.total-a.total)
}
