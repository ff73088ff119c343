package tests

// Measurements of issue 4: what a miss costs when the phone's cluster is
// the last of ten (parallel vs sequential fan-out), and how many backend
// fetches repeated boots of the same phones cause (cache on; cache off
// with learned routes). Run them with
//
//	go test -run '^$' -bench 'MissLastOfTen|RepeatedBoots' -benchtime 50x ./tests/
//
// TestRepeatedBootsFetches asserts the fetch counts the benchmark reports.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ctftp/ctftp/internal/tftpclient"
	"github.com/ctftp/ctftp/internal/tftptest"
)

// missClusters starts k sub-clusters s01..sk, each one real tftpd-hpa
// serving its own root, holding the per-device files of the phones
// placed in it by owner (phone MAC -> sub-cluster).
func missClusters(tb testing.TB, k int, owner map[string]string) (roots []string, subs []fwdSub) {
	tb.Helper()
	for i := range k {
		name := fmt.Sprintf("s%02d", i+1)
		var macs []string
		for mac, o := range owner {
			if o == name {
				macs = append(macs, mac)
			}
		}
		root := fwdPhonesRoot(tb, name, macs...)
		roots = append(roots, root)
		subs = append(subs, fwdSub{Name: name, Backends: []string{tftptest.StartTFTPD(tb, root)}})
	}
	return roots, subs
}

// missCTLFile is the gateway's own CTLFile.tlv, the file a phone falls
// back to when its cluster has no CTLSEP<MAC>.tlv.
func missCTLFile() []byte { return bytes.Repeat([]byte("central CTLFile.tlv\n"), 235) }

// missGatewayRoot is a local root holding CTLFile.tlv.
func missGatewayRoot(tb testing.TB) string {
	tb.Helper()
	return fwdRoot(tb, map[string][]byte{"CTLFile.tlv": missCTLFile()})
}

// missGet is fwdGet with a patient client: a 5 s retransmit timeout
// (phones wait a few seconds too) and 6 retries. A client that
// retransmits its request while the gateway is still busy with it is
// ignored, but one whose retransmission crosses the gateway's answer
// starts a new request, as TFTP requires, and would add fetches the
// counts below do not expect; and this shared 2-core host can stall
// tftpd-hpa for seconds.
func missGet(addr, name string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var b bytes.Buffer
	_, err := tftpclient.Get(ctx, netip.MustParseAddrPort(addr), name, &b, tftpclient.Options{
		BlockSize: 1428, TransferSize: true, Timeout: 5 * time.Second, Retries: 6,
	})
	return b.Bytes(), err
}

// missBoot plays one phone's boot against the gateway, checking every
// answer: CTLSEP<MAC>.tlv (no cluster has one: not found), then the
// fallback CTLFile.tlv (the gateway's own), ITLSEP<MAC>.tlv and
// SEP<MAC>.cnf.xml.sgn from the phone's own sub-cluster, owner.
func missBoot(addr, mac, owner string) error {
	_, err := missGet(addr, "CTLSEP"+mac+".tlv")
	var se *tftpclient.ServerError
	if !errors.As(err, &se) || !se.NotFound() {
		return fmt.Errorf("CTLSEP%s.tlv: got %v, want file not found", mac, err)
	}
	got, err := missGet(addr, "CTLFile.tlv")
	if err != nil || !bytes.Equal(got, missCTLFile()) {
		return fmt.Errorf("CTLFile.tlv: %d bytes, %v", len(got), err)
	}
	for _, name := range fwdPhoneFiles(mac) {
		got, err := missGet(addr, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if want := fwdContent(owner, name); !bytes.Equal(got, want) {
			return fmt.Errorf("%s: got %q, want %s's copy", name, fwdHead(got), owner)
		}
	}
	return nil
}

// missBootAll boots every phone of owner at once, as after a power cut.
func missBootAll(addr string, owner map[string]string) error {
	var g errgroup.Group
	for mac, o := range owner {
		g.Go(func() error { return missBoot(addr, mac, o) })
	}
	return g.Wait()
}

// missTrouble is what the gateway logged about failed transfers and at
// warning level or above, for a failure message.
func missTrouble(gw *gateway) string {
	var b strings.Builder
	for _, line := range strings.Split(gw.Log(), "\n") {
		if strings.Contains(line, `"msg":"trust: forwarded file`) {
			continue // the test's files are not signed; that is not the trouble
		}
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) ||
			(strings.Contains(line, `"msg":"transfer"`) && !strings.Contains(line, `"result":"ok"`) && !strings.Contains(line, `"result":"not_found"`)) {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// missTransfers counts the transfers the gateway finished (any result).
func missTransfers(m map[string]float64) int {
	n := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, "ctftp_transfers_total{") {
			n += v
		}
	}
	return int(n)
}

// missSettle waits until no transfer or backend fetch is in flight and
// the counts hold still: a parallel fan-out answers the phone as soon as
// the winner is certain, while the losers' fills (which no phone can
// cancel) may still be running and would otherwise be counted in the
// next round; and the gateway counts a transfer only after the client's
// last ACK, which the client does not wait for.
func missSettle(tb testing.TB, gw *gateway) map[string]float64 {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	prev := gw.scrape()
	for {
		time.Sleep(20 * time.Millisecond)
		m := gw.scrape()
		busy := 0.0
		for k, v := range m {
			if strings.HasPrefix(k, "ctftp_backend_in_flight{") || strings.HasPrefix(k, "ctftp_backend_waiting{") {
				busy += v
			}
		}
		busy += m["ctftp_active_transfers"]
		if busy == 0 && fwdTotalFetches(m) == fwdTotalFetches(prev) && missTransfers(m) == missTransfers(prev) {
			return m
		}
		if time.Now().After(deadline) {
			tb.Fatalf("backend fetches still running after 20s")
		}
		prev = m
	}
}

// missBenchBackend is the only change to the default config the
// benchmarks make: a 5 s backend timeout instead of 2 s, so that a stall
// of this shared host does not turn a measurement into an outage. It
// changes nothing while backends answer.
const missBenchBackend = "backend: {timeout: 5s}\n"

// BenchmarkMissLastOfTen measures, through the gateway with our own
// client, one request for a phone the gateway has never seen whose files
// are only on the tenth of ten sub-clusters: every iteration is a new
// MAC, so neither the cache, the negative cache nor a learned route
// helps. parallel asks all ten at once; sequential asks them one after
// another, as CUCM's alternate file locations do; the backends are real
// tftpd-hpa on loopback. learned is the phone's next file once its route
// is known (one sub-cluster asked). The -slow20ms variants put in-process
// backends that wait 20 ms before each answer in place of tftpd-hpa, as a
// remote cluster's round trip would, to show how the two strategies scale
// with backend latency rather than with loopback fork costs. fetches/op
// counts backend attempts per request.
func BenchmarkMissLastOfTen(b *testing.B) {
	cases := []struct {
		name     string
		strategy string
		slow     time.Duration // 0: tftpd-hpa backends
		learned  bool
	}{
		{name: "parallel", strategy: "parallel"},
		{name: "sequential", strategy: "sequential"},
		{name: "learned", strategy: "parallel", learned: true},
		{name: "parallel-slow20ms", strategy: "parallel", slow: 20 * time.Millisecond},
		{name: "sequential-slow20ms", strategy: "sequential", slow: 20 * time.Millisecond},
	}
	for i, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var subs []fwdSub
			var addFile func(name string, body []byte) // on the tenth sub-cluster
			if tc.slow == 0 {
				var roots []string
				roots, subs = missClusters(b, 10, nil)
				addFile = func(name string, body []byte) { fwdWriteFile(b, roots[9], name, body) }
			} else {
				var last *tftptest.Server
				for j := range 10 {
					last = tftptest.NewServer(b, nil, tftptest.WithDelay(tc.slow))
					subs = append(subs, fwdSub{Name: fmt.Sprintf("s%02d", j+1), Backends: []string{last.Addr()}})
				}
				addFile = last.SetFile
			}
			gw := startGateway(b, fwdConfig(b, "", subs, missBenchBackend+fmt.Sprintf("routing:\n  strategy: %s\n", tc.strategy)))
			addr := gw.TFTP[0]
			n, fetches := 0, 0
			var took []time.Duration
			for b.Loop() {
				b.StopTimer()
				n++
				mac := fwdMAC(fmt.Sprintf("00EE%02X", i+1), n)
				itl, cnf := fwdPhoneFiles(mac)[0], fwdPhoneFiles(mac)[1]
				want := fwdContent("s10", cnf)
				addFile(cnf, want)
				if tc.learned {
					addFile(itl, fwdContent("s10", itl))
					if _, err := missGet(addr, itl); err != nil {
						b.Fatal(err)
					}
				}
				before := missSettle(b, gw)
				b.StartTimer()
				t0 := time.Now()
				got, err := missGet(addr, cnf)
				took = append(took, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if !bytes.Equal(got, want) {
					b.Fatalf("%s: got %q", cnf, fwdHead(got))
				}
				fetches += fwdTotalFetches(missSettle(b, gw)) - fwdTotalFetches(before)
				b.StartTimer()
			}
			b.ReportMetric(float64(fetches)/float64(n), "fetches/op")
			// Medians resist the stalls a shared 2-core host adds to the mean.
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2])/1e6, "p50-ms")
			b.ReportMetric(float64(took[len(took)*9/10])/1e6, "p90-ms")
		})
	}
}

// BenchmarkRepeatedBoots boots the same 5 phones (one in every other of
// ten sub-clusters, the last included) again and again, all at once; one
// iteration is one boot of all of them (CTLSEP, CTLFile, ITLSEP,
// SEP.cnf.xml.sgn each). It reports the backend fetches of the first
// boot and the average of the later ones: with the cache on (defaults)
// and with the cache off but learned routes on. The expected counts per
// phone are those TestRepeatedBootsFetches pins, with K = 10.
func BenchmarkRepeatedBoots(b *testing.B) {
	owner := map[string]string{}
	for i := range 5 {
		owner[fwdMAC("00EF00", i+1)] = fmt.Sprintf("s%02d", 2*i+2)
	}
	for _, tc := range []struct{ name, extra string }{
		{"cache", "cache:\n  ttl: {device: 10m}\n"},
		{"nocache-learned", "cache:\n  max_bytes: 0\n  negative_ttl: 0s\n"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			_, subs := missClusters(b, 10, owner)
			gw := startGateway(b, fwdConfig(b, missGatewayRoot(b), subs, missBenchBackend+tc.extra))
			addr := gw.TFTP[0]
			start := missSettle(b, gw)
			before := start
			var first, later, laterTransfers, boots int
			var took []time.Duration // of each boot; took[0] is the first
			for b.Loop() {
				t0 := time.Now()
				if err := missBootAll(addr, owner); err != nil {
					b.Fatalf("boot %d: %v\n%s", boots+1, err, missTrouble(gw))
				}
				took = append(took, time.Since(t0))
				b.StopTimer()
				after := missSettle(b, gw)
				d := fwdTotalFetches(after) - fwdTotalFetches(before)
				if boots == 0 {
					first = d
				} else {
					later += d
					laterTransfers += missTransfers(after) - missTransfers(before)
				}
				boots++
				before = after
				b.StartTimer()
			}
			b.ReportMetric(float64(len(owner)), "phones")
			b.ReportMetric(float64(first), "fetches/first-boot")
			b.ReportMetric(float64(took[0])/1e6, "first-boot-ms")
			if boots > 1 {
				rest := slices.Sorted(slices.Values(took[1:]))
				b.ReportMetric(float64(rest[len(rest)/2])/1e6, "later-boot-p50-ms")
				b.ReportMetric(float64(later)/float64(boots-1), "fetches/later-boot")
				// 4 per phone; more means retransmitted requests that
				// reached the gateway after it had answered, which
				// TFTP treats as new requests.
				b.ReportMetric(float64(laterTransfers)/float64(boots-1), "transfers/later-boot")
			}
			// The gateway's own CPU per boot, to tell its cost from the
			// backends' (tftpd-hpa forks a process per request).
			b.ReportMetric((before["process_cpu_seconds_total"]-start["process_cpu_seconds_total"])*1e3/float64(boots), "gateway-cpu-ms/boot")
			// Failed backend attempts (timeouts) over the whole run: on
			// an overloaded host tftpd-hpa itself can be too slow.
			errs := 0.0
			for _, s := range subs {
				errs += before[fwdFetchSeries(s.Name, "error")] - start[fwdFetchSeries(s.Name, "error")]
			}
			b.ReportMetric(errs, "fetch-errors")
		})
	}
}

// TestRepeatedBootsFetches pins the backend fetch counts of repeated
// boots. Phones sit in the last of three sub-clusters, so a fan-out
// answers only once every sub-cluster has, and the counts are exact for
// both strategies. Per phone (K = 3 sub-clusters):
//
//	first boot: CTLSEP fans out to all K (not found), ITLSEP fans out to
//	all K (found in the last: the route is learned), SEP goes to the
//	learned sub-cluster: 2K+1 fetches.
//	later boots, cache on (and within cache.ttl.device of each other): 0
//	fetches; every answer, "not found" included, is remembered per
//	sub-cluster and file, and the prefetches a learned route starts find
//	the files cached.
//	later boots, cache off: ITLSEP and SEP go to the learned sub-cluster
//	only (1 each), but CTLSEP, which no sub-cluster has, is asked of the
//	learned one and then of the K-1 others, because the forwarder cannot
//	tell "the phone moved" from "this file exists nowhere": K+2 fetches.
func TestRepeatedBootsFetches(t *testing.T) {
	const k, phones, boots = 3, 3, 3
	last := fmt.Sprintf("s%02d", k)
	owner := map[string]string{}
	for i := range phones {
		owner[fwdMAC("00EF10", i+1)] = last
	}
	_, subs := missClusters(t, k, owner)
	root := missGatewayRoot(t)
	cases := []struct {
		name, config  string
		first, later  int // fetches per phone
		laterPerOther int // later boots: fetches per phone from each sub-cluster but the owner
	}{
		// Boots follow each other within the 10m window, as a phone
		// rebooting in a loop; past it a boot fetches the phone's own
		// files again (TestDeviceFilesFresh).
		{"parallel/cache", "routing: {strategy: parallel, grace: 1s}\ncache: {ttl: {device: 10m}}\n", 2*k + 1, 0, 0},
		{"sequential/cache", "routing: {strategy: sequential}\ncache: {ttl: {device: 10m}}\n", 2*k + 1, 0, 0},
		{"parallel/nocache-learned", "routing: {strategy: parallel, grace: 1s}\ncache: {max_bytes: 0, negative_ttl: 0s}\n", 2*k + 1, k + 2, 1},
		{"sequential/nocache-learned", "routing: {strategy: sequential}\ncache: {max_bytes: 0, negative_ttl: 0s}\n", 2*k + 1, k + 2, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gw := startGateway(t, fwdConfig(t, root, subs, "backend: {probe_interval: 0s, timeout: 5s}\n"+tc.config))
			addr := gw.TFTP[0]
			before := gw.scrape()
			for boot := 1; boot <= boots; boot++ {
				if err := missBootAll(addr, owner); err != nil {
					t.Fatalf("boot %d: %v\n%s", boot, err, missTrouble(gw))
				}
				// Past the grace, a fan-out serves the owner and leaves
				// the others' fills to be counted after the phone has
				// its file: wait for every fetch to end.
				after := missSettle(t, gw)
				want := tc.later
				if boot == 1 {
					want = tc.first
				}
				got := fwdTotalFetches(after) - fwdTotalFetches(before)
				t.Logf("boot %d of %d phones: %d backend fetches", boot, phones, got)
				if got != want*phones {
					t.Fatalf("boot %d: %d backend fetches, want %d (%d per phone); changes:\n%s", boot, got, want*phones, want, fwdDelta(before, after))
				}
				if boot > 1 {
					for _, s := range subs {
						w := tc.laterPerOther * phones
						if s.Name == last && tc.later > 0 {
							w = (tc.later - (k-1)*tc.laterPerOther) * phones
						}
						if d := fwdFetches(after, s.Name) - fwdFetches(before, s.Name); d != w {
							t.Errorf("boot %d: %s made %d fetches, want %d", boot, s.Name, d, w)
						}
					}
					// Every per-device request of a later boot starts from
					// the learned route.
					if d := fwdDecisions(after, "learned") - fwdDecisions(before, "learned"); d != 3*phones {
						t.Errorf("boot %d: %d learned-route decisions, want %d", boot, d, 3*phones)
					}
				}
				before = after
			}
		})
	}
}
