package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/ctftp/ctftp/internal/loadgen"
	"github.com/ctftp/ctftp/internal/sidebyside"
	"github.com/ctftp/ctftp/internal/tftpd"
	"github.com/ctftp/ctftp/internal/tftptest"
)

func runBenchTest(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"bench"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// benchNoLeaks checks, after the test and its other cleanups, that
// nothing it started is still running. (TestMain cannot check: the
// package's other tests start nothing, but it also runs as ctftp.)
func benchNoLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func TestBenchUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // lines stderr must contain, each "ctftp bench: " + want
	}{
		{"nothing to storm", nil, []string{"--server HOST:PORT or --side-by-side is required"}},
		{"both modes", []string{"--server", "127.0.0.1:69", "--side-by-side"}, []string{"--server and --side-by-side exclude each other"}},
		{"bad server", []string{"--server", "nohostport"}, []string{`--server: "nohostport": want HOST:PORT`}},
		{"every storm problem at once", []string{"--server", "127.0.0.1:69", "--phones", "0", "--concurrency", "-1", "--blksize", "7", "--boot-timeout", "0s"},
			[]string{"--phones: must be between", "--concurrency: must be between", "--blksize: must be 0", "--boot-timeout: must be positive"}},
		{"macs and phones", []string{"--server", "127.0.0.1:69", "--macs", "x", "--phones", "3"}, []string{"--macs and --phones exclude each other"}},
		{"side-by-side flags without it", []string{"--server", "127.0.0.1:69", "--backend-delay", "25ms", "--dir", "/tmp/x"},
			[]string{"--backend-delay only applies to --side-by-side", "--dir only applies to --side-by-side"}},
		{"hold without a file", []string{"--server", "127.0.0.1:69", "--hold", "10"}, []string{"--hold needs --file NAME"}},
		{"hold side by side", []string{"--side-by-side", "--hold", "10", "--file", "x"}, []string{"--hold needs --server"}},
		{"hold flags alone", []string{"--server", "127.0.0.1:69", "--admin", "127.0.0.1:9069"}, []string{"--file, --hold-for and --admin only apply to --hold"}},
		{"positional", []string{"--server", "127.0.0.1:69", "extra"}, []string{`unexpected argument "extra"`}},
		{"bad backend blksize", []string{"--side-by-side", "--backend-blksize", "100"}, []string{"--backend-blksize: must be between 512 and 65464"}},
		{"side-by-side knobs alone", []string{"--server", "127.0.0.1:69", "--passes", "2", "--in-flight", "5"}, []string{"--passes only applies to --side-by-side", "--in-flight only applies to --side-by-side"}},
		{"bad passes", []string{"--side-by-side", "--passes", "0", "--in-flight", "-1", "--settle", "-1s"},
			[]string{"--passes: must be between 1 and 100", "--in-flight: must not be negative", "--settle: must not be negative"}},
		{"side-by-side measuring alone", []string{"--server", "127.0.0.1:69", "--settle", "1m", "--cpu-split"},
			[]string{"--settle only applies to --side-by-side", "--cpu-split only applies to --side-by-side"}},
		{"bad backend lists", []string{"--side-by-side", "--backend-blksize", "1428,x", "--backend-window", "8,8", "--backends", "cucm"},
			[]string{`--backend-blksize: "x": not a number`, "--backend-window: 8 listed twice", "--backends: want tftpd-hpa or ctftp"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runBenchTest(t, tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, "ctftp bench: "+w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestFlagName(t *testing.T) {
	tests := map[string]string{
		"boot_timeout: must be positive, got 0s": "--boot-timeout: must be positive, got 0s",
		"phones: must be between 1 and 1000000":  "--phones: must be between 1 and 1000000",
		"no key here":                            "no key here",
	}
	for in, want := range tests {
		if got := flagName(in); got != want {
			t.Errorf("flagName(%q) = %q, want %q", in, got, want)
		}
	}
}

// benchFiles is what a server holds for phones: CTLFile.tlv, and an
// ITLSEP and a config per phone (no CTLSEP: every boot starts with a miss).
func benchFiles(macs []string) map[string][]byte {
	files := map[string][]byte{"CTLFile.tlv": bytes.Repeat([]byte("ctl"), 1500)}
	for _, m := range macs {
		files["ITLSEP"+m+".tlv"] = bytes.Repeat([]byte("itl"), 1800)
		files["SEP"+m+".cnf.xml.sgn"] = bytes.Repeat([]byte(m), 600)
	}
	return files
}

func TestBenchAgainstServer(t *testing.T) {
	benchNoLeaks(t)
	macs, _ := loadgen.MACs("00AB", 0, 20)
	srv := tftptest.NewServer(t, benchFiles(macs))

	t.Run("text", func(t *testing.T) {
		code, stdout, stderr := runBenchTest(t, "--server", srv.Addr(), "--phones", "20", "--concurrency", "4", "--mac-prefix", "00ab")
		if code != exitOK {
			t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
		}
		for _, want := range []string{"20 booted, 0 failed of 20", "80 answered (60 files, 20 expected misses)", "errors     none"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
		// Not a terminal: progress comes as plain lines, ending with the
		// final count.
		if !strings.Contains(stderr, ": 20/20 phones, 0 failed, 80 transfers,") || strings.Contains(stderr, "\r") {
			t.Errorf("progress on stderr:\n%q", stderr)
		}
	})
	t.Run("json and a MAC file", func(t *testing.T) {
		list := filepath.Join(t.TempDir(), "macs.txt")
		os.WriteFile(list, []byte("# two desks\n00:ab:00:00:00:03\n00AB.0000.0007\n"), 0o644)
		code, stdout, stderr := runBenchTest(t, "--server", srv.Addr(), "--macs", list, "--json", "--quiet", "--blksize", "1428")
		if code != exitOK || stderr != "" {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		var rep loadgen.Report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("%v\n%s", err, stdout)
		}
		if rep.Phones != 2 || rep.Booted != 2 || rep.Files != 6 || rep.BlockSize != 1428 || rep.Transfer.Count != 8 || rep.Bytes == 0 {
			t.Fatalf("report %+v", rep)
		}
		if srv.Requests("SEP00AB00000007.cnf.xml.sgn") == 0 {
			t.Fatal("the MAC file's phones were not the ones that booted")
		}
	})
	t.Run("phones that fail", func(t *testing.T) {
		code, stdout, _ := runBenchTest(t, "--server", srv.Addr(), "--phones", "3", "--mac-prefix", "00CD", "--quiet")
		if code != exitFailure {
			t.Fatalf("exit %d, want %d", code, exitFailure)
		}
		if !strings.Contains(stdout, "0 booted, 3 failed of 3") || !strings.Contains(stdout, "errors     not_found 3") {
			t.Fatalf("stdout:\n%s", stdout)
		}
	})
	t.Run("bad MAC file", func(t *testing.T) {
		list := filepath.Join(t.TempDir(), "macs.txt")
		os.WriteFile(list, []byte("00AB00000001\nbogus\n"), 0o644)
		code, _, stderr := runBenchTest(t, "--server", srv.Addr(), "--macs", list)
		if code != exitUsage || !strings.Contains(stderr, "line 2:") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
}

func TestBenchHold(t *testing.T) {
	benchNoLeaks(t)
	// A file of several blocks: pin/tftp's server (no options: it answers
	// DATA 1) keeps the transfer until it gives up on the ACK.
	srv := tftptest.NewServer(t, map[string][]byte{"big.bin": bytes.Repeat([]byte("x"), 5000)})
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ctftp_active_transfers 0\ngo_goroutines 12\nprocess_resident_memory_bytes 1048576\ngo_memstats_heap_inuse_bytes 524288\n")
	}))
	defer admin.Close()
	code, stdout, stderr := runBenchTest(t, "--server", srv.Addr(), "--hold", "5", "--file", "big.bin", "--hold-for", "0s",
		"--admin", strings.TrimPrefix(admin.URL, "http://"))
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "held 5 transfers of big.bin") || !strings.Contains(stdout, "12 goroutines       1.0 MiB RSS") {
		t.Fatalf("stdout:\n%s", stdout)
	}
	if srv.MaxConcurrent() != 5 {
		t.Fatalf("the server had at most %d transfers at once, want 5", srv.MaxConcurrent())
	}
	code, _, stderr = runBenchTest(t, "--server", srv.Addr(), "--hold", "2", "--file", "nope.bin")
	if code != exitFailure || !strings.Contains(stderr, "0 of 2 transfers opened") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// TestBenchSideBySide runs the whole comparison small: it needs
// tftpd-hpa's in.tftpd and root, like the storm tests in tests/. The
// memory in flight is measured by this test binary run as `ctftp bench
// --hold` (TestMain).
func TestBenchSideBySide(t *testing.T) {
	if _, err := tftpd.Find(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	benchNoLeaks(t)
	t.Setenv(runAsMain, "1")
	code, stdout, stderr := runBenchTest(t, "--side-by-side", "--phones", "12", "--concurrency", "3", "--json", "--quiet", "--in-flight", "20")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	var out sidebyside.Result
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(out.Passes) != 1 || len(out.Passes[0].Runs) != 6 {
		t.Fatalf("%d passes: %+v", len(out.Passes), out.Passes)
	}
	p := out.Passes[0]
	var labels []string
	for _, r := range p.Runs {
		labels = append(labels, r.Label)
		if r.Booted != 12 || r.Failed != 0 || r.Files != 36 || r.Misses != 12 || r.PhonesPerSecond <= 0 {
			t.Errorf("%s: %+v", r.Label, r)
		}
	}
	if want := []string{sidebyside.RunDirect, sidebyside.RunPin, sidebyside.RunCold, sidebyside.RunWarm, sidebyside.RunRules, sidebyside.RunCeiling}; strings.Join(labels, ",") != strings.Join(want, ",") {
		t.Errorf("runs %q, want %q", labels, want)
	}
	// Per phone: CTLSEP and ITLSEP asked of both sub-clusters (the
	// phone is unknown, then not learned from a miss), its config of its
	// own; CTLFile.tlv of one or both.
	if b := p.Fanout; b.ColdFetches != b.DistinctFiles || b.PerFile != 1 || b.DistinctFiles < 5*12+1 || b.DistinctFiles > 5*12+2 || b.WarmFetches != 0 {
		t.Errorf("fan-out backend %+v", b)
	}
	// With device rules the gateway asks each phone's own sub-cluster
	// only: 3 fetches per phone, plus CTLFile.tlv (no MAC: still both).
	if b := p.Rules; b.ColdFetches != 3*12+2 || b.PerFile != 1 {
		t.Errorf("device rules backend %+v", b)
	}
	for _, q := range sidebyside.Ratios() {
		if p.Ratios[q[0]] <= 0 {
			t.Errorf("ratio %s = %v", q[0], p.Ratios[q[0]])
		}
	}
	// CTLSEP miss (1), CTLFile.tlv, ITLSEP and the config: a round trip
	// per 512-byte block of each, as the fleet's sizes make them.
	if p.CeilingRoundTrips < 1+3*10 || p.CeilingRoundTrips > 1+3*20 {
		t.Errorf("%v round trips per phone", p.CeilingRoundTrips)
	}
	if out.LoadStart == nil || out.LoadEnd == nil || out.CPUs < 1 {
		t.Errorf("load %v %v, %d CPUs", out.LoadStart, out.LoadEnd, out.CPUs)
	}
	m := out.Memory
	if m.CachedFiles < 2*12+1 || m.CachedFiles > 2*12+2 || m.CachedBytes <= 0 || m.HeapPerCachedByte <= 0 {
		t.Errorf("memory %+v", m)
	}
	if fl := m.InFlight; fl == nil || fl.Error != "" || fl.Transfers != 20 || fl.GoroutinesPerTransfer < 0.9 || fl.FDsPerTransfer < 0.9 {
		t.Errorf("in flight %+v", fl)
	}

	// Across an emulated WAN, with the engine's own backends (RFC 7440)
	// and a sweep of backend block and window sizes: every combination
	// runs cold, with the same fetch discipline, and the fastest is named.
	code, stdout, stderr = runBenchTest(t, "--side-by-side", "--phones", "4", "--concurrency", "2", "--json", "--quiet", "--in-flight", "0",
		"--backend-delay", "2ms", "--backends", "ctftp", "--backend-blksize", "1428,65464", "--backend-window", "1,4")
	out = sidebyside.Result{}
	if err := json.Unmarshal([]byte(stdout), &out); code != exitOK || err != nil {
		t.Fatalf("exit %d, %v\n%s%s", code, err, stdout, stderr)
	}
	if len(out.Sweep) != 3 || out.Best == nil || out.Backends != "ctftp" || out.BackendDelay == 0 {
		t.Fatalf("sweep %+v, best %+v", out.Sweep, out.Best)
	}
	for _, row := range out.Sweep {
		if r := row.Run; r.Booted != 4 || r.Failed != 0 || row.OverDirect <= 0 {
			t.Errorf("sweep blksize %d window %d: %+v", row.Blksize, row.Window, r)
		}
	}

	// The text form carries the same table, two passes and their
	// medians, no memory hold, the CPU split by side and the wait for a
	// quiet machine (which may or may not come in a millisecond: "settled
	// below 0.5 after", "did NOT settle below 0.5 in").
	code, stdout, _ = runBenchTest(t, "--side-by-side", "--phones", "2", "--concurrency", "1", "--quiet", "--backend-blksize", "65464", "--passes", "2", "--in-flight", "0",
		"--cpu-split", "--settle", "1ms")
	for _, want := range []string{"tftpd-hpa direct", "pin/tftp direct", "gateway cold, fan-out", "gateway cold, device rules", "gateway warm",
		"loopback lock-step ceiling", "warm/ceiling", "warm/pin", "pass 2 of 2", "load average at start", "backend blksize 65464", "= 1.00 per file", "bytes per cached byte",
		"median of 2 passes", " below 0.5 ", "server  generator  runtime"} {
		if code != exitOK || !strings.Contains(stdout, want) {
			t.Errorf("exit %d; stdout lacks %q:\n%s", code, want, stdout)
		}
	}
}
