package tests

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftptest"
)

// fwdNoCache turns the cache off (positive and negative) so that every
// request reaches the backends and their fetch counts show routing, not
// caching. Probes are off so backends see only the test's requests. The
// backend timeout is long because timeouts are not what these tests are
// about, and a loaded 2-core machine can keep tftpd-hpa from answering
// for seconds.
const fwdNoCache = `
backend:
  timeout: 5s
  probe_interval: 0s
cache:
  max_bytes: 0
  negative_ttl: 0s
`

// fwdWaitFetches waits until each sub-cluster in want has made exactly
// want[sub] more backend attempts than in base, and fails at once if one
// made more. Polling is needed because a fan-out's losing fetches run in
// cache fills that outlive the request (no phone can cancel a fill), so
// they may be counted after the phone already has its file.
func fwdWaitFetches(t testing.TB, gw *gateway, base map[string]float64, want map[string]int) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := gw.scrape()
		done := true
		for sub, w := range want {
			got := fwdFetches(m, sub) - fwdFetches(base, sub)
			if got > w {
				t.Fatalf("subcluster %s: %d backend fetches, want %d; changes:\n%s", sub, got, w, fwdDelta(base, m))
			}
			if got < w {
				done = false
			}
		}
		if done {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend fetches did not reach %v; changes:\n%s", want, fwdDelta(base, m))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fwdWaitMetric polls a series until it has the value want.
func fwdWaitMetric(t testing.TB, gw *gateway, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := gw.scrape()
		if m[series] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %g, want %g", series, m[series], want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fwdDecisions(m map[string]float64, kind string) int {
	return int(m[fmt.Sprintf(`ctftp_routing_decisions_total{kind=%q}`, kind)])
}

// TestForwardThreeClusters is issue 4's main scenario: three real
// tftpd-hpa backends, one per sub-cluster, each holding its own phones'
// ITLSEP/SEP files, behind the gateway. A fourth sub-cluster with no
// phones, served by an in-process server that counts what it is asked,
// witnesses fan-outs independently of the gateway's own metrics.
func TestForwardThreeClusters(t *testing.T) {
	clusters := []string{"east", "west", "north"}
	phones := map[string][]string{} // the phones the real clients fetch
	learner := map[string]string{}  // a phone first seen by the learned-route case
	var subs []fwdSub
	for i, c := range clusters {
		prefix := fmt.Sprintf("00AA%02X", i+1)
		phones[c] = []string{fwdMAC(prefix, 1), fwdMAC(prefix, 2)}
		learner[c] = fwdMAC(prefix, 0x100)
		root := fwdPhonesRoot(t, c, append(phones[c], learner[c])...)
		subs = append(subs, fwdSub{Name: c, Backends: []string{tftptest.StartTFTPD(t, root)}})
	}
	spare := tftptest.NewServer(t, nil)
	subs = append(subs, fwdSub{Name: "spare", Backends: []string{spare.Addr()}})
	all := append(slices.Clone(clusters), "spare")
	gw := startGateway(t, fwdConfig(t, "", subs, fwdNoCache))
	addr := gw.TFTP[0]
	// spareAsked waits until the witness has been asked for name n times
	// (it counts requests as it reads them, which may be after the phone
	// has its answer), and fails if it was asked more.
	spareAsked := func(t *testing.T, name string, n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for spare.Requests(name) < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := spare.Requests(name); got != n {
			t.Errorf("the spare sub-cluster was asked for %s %d times, want %d", name, got, n)
		}
	}

	t.Run("every phone gets its own cluster's bytes", func(t *testing.T) {
		fetched := map[string]int{} // transfer log lines expected per file
		for _, c := range clients {
			if c.tool != ctftpBinName {
				needTool(t, c.tool)
			}
			for _, cl := range clusters {
				for _, mac := range phones[cl] {
					for _, file := range fwdPhoneFiles(mac) {
						t.Run(c.name+"/"+file, func(t *testing.T) {
							out := filepath.Join(t.TempDir(), "out")
							if err := c.get(t, addr, file, out, 0, false); err != nil {
								t.Fatal(err)
							}
							got, want := mustRead(t, out), fwdContent(cl, file)
							if !bytes.Equal(got, want) {
								t.Fatalf("got %d bytes starting %q, want %d bytes of %s", len(got), fwdHead(got), len(want), cl)
							}
							fetched[file]++
							line := fwdWaitTransferLine(gw, file, fetched[file])
							if line["subcluster"] != cl || line["result"] != "ok" {
								t.Fatalf("transfer log: subcluster %v result %v, want %s ok: %v", line["subcluster"], line["result"], cl, line)
							}
						})
					}
				}
			}
		}
	})

	t.Run("an unknown phone gets not found", func(t *testing.T) {
		// Each client reports TFTP error 1 its own way.
		wantText := map[string]string{
			"curl":      "(68)", // CURLE_TFTP_NOTFOUND
			"tftp-hpa":  "Error code 1",
			"ctftp-get": "server error 1",
		}
		const file = "SEP00AAFF000001.cnf.xml.sgn"
		for _, c := range clients {
			if c.tool != ctftpBinName {
				needTool(t, c.tool)
			}
			t.Run(c.name, func(t *testing.T) {
				before := gw.scrape()
				err := c.get(t, addr, file, filepath.Join(t.TempDir(), "out"), 0, false)
				if err == nil || !strings.Contains(err.Error(), wantText[c.name]) {
					t.Fatalf("err = %v, want one containing %q", err, wantText[c.name])
				}
				// "Not found" is only answered once every sub-cluster said so.
				after := gw.scrape()
				for _, cl := range all {
					if d := after[fwdFetchSeries(cl, "not_found")] - before[fwdFetchSeries(cl, "not_found")]; d != 1 {
						t.Errorf("%s: %g not_found fetches, want 1; changes:\n%s", cl, d, fwdDelta(before, after))
					}
				}
			})
		}
		fwdWaitMetric(t, gw, `ctftp_transfers_total{source="none",result="not_found"}`, float64(len(clients)))
		spareAsked(t, file, len(clients))
	})

	t.Run("the second request goes straight to the learned cluster", func(t *testing.T) {
		for _, cl := range clusters {
			t.Run(cl, func(t *testing.T) {
				itl, cnf := fwdPhoneFiles(learner[cl])[0], fwdPhoneFiles(learner[cl])[1]
				// First request: nobody knows the phone, every sub-cluster
				// is asked, the owner answers.
				before := gw.scrape()
				fwdMustGet(t, addr, itl, fwdContent(cl, itl))
				everyone := map[string]int{}
				for _, c := range all {
					everyone[c] = 1
				}
				mid := fwdWaitFetches(t, gw, before, everyone)
				spareAsked(t, itl, 1)
				if d := fwdDecisions(mid, "fanout") - fwdDecisions(before, "fanout"); d != 1 {
					t.Errorf("first request: %d fan-out decisions, want 1", d)
				}
				if d := mid[fwdFetchSeries(cl, "ok")] - before[fwdFetchSeries(cl, "ok")]; d != 1 {
					t.Errorf("first request: %s served %g, want 1", cl, d)
				}
				// Second request: the learned route, one fetch, from the owner only.
				fwdMustGet(t, addr, cnf, fwdContent(cl, cnf))
				only := map[string]int{}
				for _, c := range all {
					only[c] = 0
				}
				only[cl] = 1
				after := fwdWaitFetches(t, gw, mid, only)
				spareAsked(t, cnf, 0)
				if d := fwdDecisions(after, "learned") - fwdDecisions(mid, "learned"); d != 1 {
					t.Errorf("second request: %d learned decisions, want 1; changes:\n%s", d, fwdDelta(mid, after))
				}
				if d := fwdDecisions(after, "fanout") - fwdDecisions(mid, "fanout"); d != 0 {
					t.Errorf("second request: %d fan-outs, want 0; changes:\n%s", d, fwdDelta(mid, after))
				}
				if d := after[fwdFetchSeries(cl, "ok")] - mid[fwdFetchSeries(cl, "ok")]; d != 1 {
					t.Errorf("second request: %s served %g, want 1", cl, d)
				}
			})
		}
	})
}

// TestForwardKilledBackendFailsOver kills the first of a sub-cluster's
// two tftpd-hpa backends: phones keep getting their files from the
// sibling, the dead one is marked down after backend.max_fails failures,
// and from then on it costs nothing.
func TestForwardKilledBackendFailsOver(t *testing.T) {
	for _, c := range clients {
		if c.tool != ctftpBinName {
			needTool(t, c.tool)
		}
	}
	mac := fwdMAC("00BB01", 1)
	// Siblings serve the same files (one CUCM cluster's TFTP servers).
	root := fwdPhonesRoot(t, "east", mac)
	a := fwdStartTFTPD(t, "127.0.0.1", root)
	b := fwdStartTFTPD(t, "127.0.0.1", root)
	west := tftptest.StartTFTPD(t, fwdPhonesRoot(t, "west", fwdMAC("00BB02", 1)))
	gw := startGateway(t, fwdConfig(t, "", []fwdSub{
		{Name: "east", Backends: []string{a.Addr, b.Addr}},
		{Name: "west", Backends: []string{west}},
	}, `
backend:
  timeout: 1s
  retries: 1
  max_fails: 2
  probe_interval: 0s
  hedge_max: 0s # a slow fork of a must not hand the first file to b: the test is about the kill
cache:
  max_bytes: 0
  negative_ttl: 0s
`))
	addr := gw.TFTP[0]
	itl, cnf := fwdPhoneFiles(mac)[0], fwdPhoneFiles(mac)[1]
	upA := fmt.Sprintf(`ctftp_backend_up{subcluster="east",backend=%q}`, a.Addr)
	upB := fmt.Sprintf(`ctftp_backend_up{subcluster="east",backend=%q}`, b.Addr)

	fwdMustGet(t, addr, itl, fwdContent("east", itl))
	if line := fwdWaitTransferLine(gw, itl, 1); line["backend"] != a.Addr {
		t.Fatalf("before the kill: served by %v, want the first backend %s", line["backend"], a.Addr)
	}

	a.Kill()
	// Each request now costs one unanswered attempt on a, then b serves
	// it; after max_fails (2) of them a is down. Alternate real clients.
	drivers := map[string]client{}
	for _, c := range clients {
		drivers[c.name] = c
	}
	n := 0
	for i, name := range []string{"curl", "ctftp-get"} {
		before := gw.scrape()
		out := filepath.Join(t.TempDir(), "out")
		if err := drivers[name].get(t, addr, cnf, out, 0, false); err != nil {
			t.Fatalf("request %d after the kill (%s): %v", i+1, name, err)
		}
		if got := mustRead(t, out); !bytes.Equal(got, fwdContent("east", cnf)) {
			t.Fatalf("request %d after the kill: wrong bytes %q", i+1, fwdHead(got))
		}
		n++
		if line := fwdWaitTransferLine(gw, cnf, n); line["backend"] != b.Addr {
			t.Fatalf("request %d after the kill: served by %v, want the sibling %s", i+1, line["backend"], b.Addr)
		}
		after := gw.scrape()
		if d := after[fwdFetchSeries("east", "error")] - before[fwdFetchSeries("east", "error")]; d != 1 {
			t.Fatalf("request %d after the kill: %g failed attempts, want 1 (the dead backend); changes:\n%s", i+1, d, fwdDelta(before, after))
		}
	}
	m := gw.scrape()
	if m[upA] != 0 || m[upB] != 1 {
		t.Fatalf("after %d failures: up{a}=%g up{b}=%g, want 0 and 1", 2, m[upA], m[upB])
	}
	gw.waitLine("cluster: backend down", func(l map[string]any) bool { return l["backend"] == a.Addr })

	// Marked down, the dead backend is tried last: no more failed attempts.
	for i := range 3 {
		before := gw.scrape()
		fwdMustGet(t, addr, cnf, fwdContent("east", cnf))
		after := gw.scrape()
		if d := after[fwdFetchSeries("east", "error")] - before[fwdFetchSeries("east", "error")]; d != 0 {
			t.Fatalf("request %d after a was marked down: %g failed attempts, want 0", i+1, d)
		}
		n++
		if line := fwdWaitTransferLine(gw, cnf, n); line["backend"] != b.Addr {
			t.Fatalf("served by %v, want %s", line["backend"], b.Addr)
		}
	}
}

// TestForwardSilentBackend puts a backend that takes requests and never
// answers before a healthy sibling: the phone's file comes from the
// sibling after at most one attempt's timeouts, the silent one is marked
// down (max_fails 1), and later requests skip it. Two ways to be silent:
// from the start (tftptest's Silent server), which the gateway's own
// start-up checks may already catch, and hung after the gateway started,
// which the phone's first request must pay for with exactly one failed
// attempt (backend.timeout × (retries+1)).
func TestForwardSilentBackend(t *testing.T) {
	cases := []struct {
		name string
		// start returns the backend's address, a function to make it
		// silent once the gateway is up, and its request count for a name.
		start func(t *testing.T) (addr string, hang func(), requests func(string) int)
		// mayBeDownAlready: the gateway may have caught it before any phone asked.
		mayBeDownAlready bool
	}{
		{
			name: "silent from the start",
			start: func(t *testing.T) (string, func(), func(string) int) {
				s := tftptest.NewServer(t, nil, tftptest.Silent())
				return s.Addr(), func() {}, s.Requests
			},
			mayBeDownAlready: true,
		},
		{
			name: "hung after start",
			start: func(t *testing.T) (string, func(), func(string) int) {
				h := fwdStartHangingBackend(t)
				return h.Addr(), h.Hang, h.Requests
			},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mac := fwdMAC(fmt.Sprintf("00CC%02X", i+1), 1)
			itl, cnf := fwdPhoneFiles(mac)[0], fwdPhoneFiles(mac)[1]
			silent, hang, requests := tc.start(t)
			healthy := tftptest.StartTFTPD(t, fwdPhonesRoot(t, "east", mac))
			west := tftptest.StartTFTPD(t, fwdPhonesRoot(t, "west", fwdMAC("00CCFF", i+1)))
			gw := startGateway(t, fwdConfig(t, "", []fwdSub{
				{Name: "east", Backends: []string{silent, healthy}},
				{Name: "west", Backends: []string{west}},
			}, `
backend:
  timeout: 1s
  retries: 1
  max_fails: 1
  probe_interval: 0s
cache:
  max_bytes: 0
  negative_ttl: 0s
`))
			hang()
			addr := gw.TFTP[0]
			upSilent := fmt.Sprintf(`ctftp_backend_up{subcluster="east",backend=%q}`, silent)

			before := gw.scrape()
			wantErrors := 1
			if before[upSilent] != 1 {
				if !tc.mayBeDownAlready {
					t.Fatalf("%s = %g before any phone asked, want 1", upSilent, before[upSilent])
				}
				// Caught by the gateway's own start-up checks (an
				// ITLFile.tlv probe of every sub-cluster): no phone pays.
				t.Logf("the silent backend was marked down before any phone asked")
				wantErrors = 0
			}
			start := time.Now()
			fwdMustGet(t, addr, itl, fwdContent("east", itl))
			t.Logf("first request with a silent first backend (timeout 1s, retries 1): %s", time.Since(start))
			after := fwdWaitFetches(t, gw, before, map[string]int{"east": 1 + wantErrors, "west": 1})
			for _, c := range []struct {
				series string
				want   int
			}{
				{fwdFetchSeries("east", "error"), wantErrors}, // the one failed attempt
				{fwdFetchSeries("east", "ok"), 1},
				{fwdFetchSeries("west", "not_found"), 1},
			} {
				if d := after[c.series] - before[c.series]; d != float64(c.want) {
					t.Errorf("%s: %+g, want %+d; changes:\n%s", c.series, d, c.want, fwdDelta(before, after))
				}
			}
			if after[upSilent] != 0 {
				t.Errorf("%s = %g, want 0 (marked down)", upSilent, after[upSilent])
			}
			gw.waitLine("cluster: backend down", func(l map[string]any) bool { return l["backend"] == silent })
			// The request, cancelled when the hedge (after the delay
			// learnt from answers, tens of ms) got the file from the
			// sibling, usually before its retransmission at 1 s.
			if n := requests(itl); n < wantErrors || n > 2*wantErrors {
				t.Errorf("silent backend got %d requests for %s, want %d to %d (the request, maybe its one retransmission)", n, itl, wantErrors, 2*wantErrors)
			}
			if line := fwdWaitTransferLine(gw, itl, 1); line["backend"] != healthy {
				t.Errorf("served by %v, want %s", line["backend"], healthy)
			}

			// Down, the silent backend is no longer asked first.
			before = gw.scrape()
			fwdMustGet(t, addr, cnf, fwdContent("east", cnf))
			after = fwdWaitFetches(t, gw, before, map[string]int{"east": 1, "west": 0})
			if d := after[fwdFetchSeries("east", "error")] - before[fwdFetchSeries("east", "error")]; d != 0 {
				t.Errorf("second request: %g failed attempts, want 0", d)
			}
			if n := requests(cnf); n != 0 {
				t.Errorf("silent backend got %d requests for %s, want 0", n, cnf)
			}
		})
	}
}
