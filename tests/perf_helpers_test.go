package tests

// Helpers of the storm and perf tests (storm_test.go, perf_*_test.go).

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/loadgen"
)

// perfWriteRoot writes files (name -> bytes, world-readable, as tftpd-hpa
// requires) under a new temp dir and returns it.
func perfWriteRoot(t testing.TB, files map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	// t.TempDir is 0700; tftpd-hpa drops nothing (it runs as root here)
	// but the chroot must be traversable like any served tree.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// perfSeries sums every sample of each metric name in the gateway's
// /metrics, whatever the labels: perfSeries(g)["ctftp_backend_fetches_total"]
// is the total over sub-clusters and results.
func perfSeries(g *gateway) map[string]float64 {
	g.t.Helper()
	return perfParse(g.adminGet("/metrics"))
}

// perfParse sums each metric over its labels.
func perfParse(exposition string) map[string]float64 {
	out := map[string]float64{}
	for series, v := range parseExposition(exposition) {
		if j := strings.IndexByte(series, '{'); j >= 0 {
			series = series[:j]
		}
		out[series] += v
	}
	return out
}

// perfWaitSeries polls /metrics until ok accepts it, failing after d.
func perfWaitSeries(t testing.TB, g *gateway, d time.Duration, what string, ok func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		m := perfSeries(g)
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s; last /metrics: %v", what, perfPick(m))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// perfPick keeps the series the perf tests talk about, for messages.
func perfPick(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, "ctftp_active") || strings.HasPrefix(k, "ctftp_backend_fetches") || strings.HasPrefix(k, "ctftp_cache") ||
			k == "go_goroutines" || k == "process_open_fds" || k == "process_resident_memory_bytes" {
			out[k] = v
		}
	}
	return out
}

// perfRaiseNoFile raises this process's RLIMIT_NOFILE to at least n (the
// gateway it starts inherits it), or skips the test saying why.
func perfRaiseNoFile(t testing.TB, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	want := lim
	want.Cur = n
	if want.Max < n {
		want.Max = n // only root may raise the hard limit
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		t.Skipf("this test needs %d open files; RLIMIT_NOFILE is %d (hard %d) and cannot be raised: %v (ulimit -n %d)", n, lim.Cur, lim.Max, err, n)
	}
}

// perfBytes returns n bytes of a repeated, name-specific pattern, so a
// file served under another's name is noticed.
func perfBytes(name string, n int) []byte {
	return bytes.Repeat([]byte(name+"\n"), n/(len(name)+1)+1)[:n]
}

// startLink puts a loadgen.DelayLink delaying every datagram by delay
// each way in front of backend, closed when the test ends.
func startLink(t testing.TB, backend netip.AddrPort, delay time.Duration) *loadgen.DelayLink {
	t.Helper()
	link, err := loadgen.StartDelayLink(backend, delay, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	return link
}

// linkedGateway runs a gateway whose root holds rootFiles and whose one
// sub-cluster, west (CUCM 14), is the backend behind link, with active
// probing off and the YAML sections extra (e.g. "backend:\n  block_size:
// 1428" or "cache:\n  fetch_timeout: 2s") merged in.
func linkedGateway(t testing.TB, link *loadgen.DelayLink, rootFiles map[string][]byte, backendKeys, extra string) *gateway {
	t.Helper()
	return startGateway(t, fmt.Sprintf(`
listen: ["127.0.0.1:0"]
admin_listen: "127.0.0.1:0"
root: %q
subclusters:
  - {name: west, version: "14", backends: [%q]}
backend:
  probe_interval: 0s
  %s
%s
`, perfWriteRoot(t, rootFiles), link.Addr(), backendKeys, extra))
}
