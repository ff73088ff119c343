package tests

// The boot storm of issue 5, end to end: 500 phones booting at once, 100
// at a time, against the real gateway binary in front of two real
// tftpd-hpa backends. Every phone must boot with byte-exact files, and
// the backends must see each (sub-cluster, file) once: the cache
// collapses the storm. The same storm at 2,000 phones, timed, is
// `ctftp bench --side-by-side` (README, Performance).

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/fleet"
	"github.com/ctftp/ctftp/internal/loadgen"
	"github.com/ctftp/ctftp/internal/tftptest"
)

// newStormFleet generates the project's fleet (internal/fleet, the world
// `ctftp bench --side-by-side` and `ctftp demo` serve) for n phones over
// sub-clusters east and west, written under a temp dir: the gateway root
// holds only files no phone asks for, so every request of the storm goes
// past the root. The files are real (each sub-cluster's ITL, the CTL and
// each phone's config signed by its cluster's keys), so the gateway's
// trust guard, which checks every forwarded .tlv and .sgn the way a phone
// would, does its real work on the miss path. 1024-bit keys keep the
// generation quick under the race detector.
func newStormFleet(t testing.TB, n int) (*fleet.World, string) {
	t.Helper()
	macs, err := loadgen.MACs("00AA55", 0, n)
	if err != nil {
		t.Fatal(err)
	}
	w, err := fleet.Generate(context.Background(), fleet.Options{Phones: fleet.Spread(macs, fleet.DefaultSubclusters()), KeyBits: 1024})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := w.Write(dir); err != nil {
		t.Fatal(err)
	}
	return w, dir
}

// stormConfig is the gateway's config: defaults except that "not found"
// answers and the phones' own files are remembered for 10 minutes
// instead of 30 s and the 5 s burst window, so that a slow
// (race-instrumented) storm cannot outlive them and the cache's entry
// count stays the number of distinct answers fetched (this test is about
// collapsing a storm's fetches, not about freshness). Backends keep the
// default cap of 5 fetches at once (CUCM's), so 100 phones fanning out
// to two sub-clusters queue for slots, as in a real storm.
func stormConfig(root, east, west string) string {
	return fmt.Sprintf(`
listen: ["127.0.0.1:0"]
admin_listen: "127.0.0.1:0"
root: %q
subclusters:
  - {name: east, version: "14", backends: [%q]}
  - {name: west, version: "14", backends: [%q]}
cache:
  negative_ttl: 10m
  ttl: {device: 10m}
`, root, east, west)
}

func TestBootStorm(t *testing.T) {
	// Most of this test's time is tftpd-hpa forking a process per
	// backend fetch (about 7 ms of CPU each on a 2-vCPU VM, 2,502
	// fetches); -short storms with fewer phones.
	phones, concurrency := 500, 100
	if testing.Short() {
		phones, concurrency = 100, 50
	}
	f, dir := newStormFleet(t, phones)
	east := tftptest.StartTFTPD(t, filepath.Join(dir, "east"))
	west := tftptest.StartTFTPD(t, filepath.Join(dir, "west"))
	gw := startGateway(t, stormConfig(filepath.Join(dir, fleet.Root), east, west))
	addr := netip.MustParseAddrPort(gw.TFTP[0])

	cfg := loadgen.DefaultConfig()
	cfg.Concurrency = concurrency
	// Phones retransmit after 1 s and give up after 5 more; a storm on a
	// loaded CI machine must not fail for want of patience.
	cfg.Retries = 10
	cfg.BootTimeout = 3 * time.Minute
	rep, err := loadgen.Run(context.Background(), cfg, addr, loadgen.Options{Label: "storm", MACs: f.MACs(), Check: f.Check})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Logf("\n%s", text.String())
	if rep.Booted != phones || rep.Failed != 0 {
		stormExplain(t, gw, rep)
		t.Fatalf("%d of %d phones booted, errors: %s", rep.Booted, phones, rep.ErrorSummary())
	}
	for _, l := range gw.Lines("trust: forwarded file a phone would reject (Trust List Verification Failed)") {
		t.Fatalf("the storm's files are not what a phone accepts: %v", l)
	}
	// Per phone: CTLSEP (miss), CTLFile.tlv, ITLSEP, config.
	if rep.Files != 3*phones || rep.Misses != phones {
		t.Fatalf("%d files and %d misses, want %d and %d", rep.Files, rep.Misses, 3*phones, phones)
	}

	// Every (sub-cluster, file) the gateway asked a backend for was
	// asked once: backend fetches equal the distinct answers the cache
	// holds (files and "not found"s). Each phone has three names of its
	// own, asked of at least its own sub-cluster and at most both; plus
	// CTLFile.tlv of one or both.
	m := perfWaitSeries(t, gw, 20*time.Second, "all transfers and backend fetches to end", func(m map[string]float64) bool {
		// A fan-out's losing fetch may outlive the phone's transfer.
		return m["ctftp_active_transfers"] == 0 && m["ctftp_backend_in_flight"] == 0 && m["ctftp_backend_waiting"] == 0
	})
	// A scrape is not one instant: a last fill ending during it can be
	// counted on one side of the cache's store and not the other.
	missSettle(t, gw)
	m = perfSeries(gw) // label-summed, as the wait's
	fetches := m["ctftp_backend_fetches_total"]
	distinct := m["ctftp_cache_entries"] + m["ctftp_cache_negative_entries"]
	t.Logf("backend fetches %v, distinct answers cached %v (%v files, %v not found), fills %v, fills shared %v, evictions %v",
		fetches, distinct, m["ctftp_cache_entries"], m["ctftp_cache_negative_entries"], m["ctftp_cache_fills_total"],
		m["ctftp_cache_fill_shared_total"], m["ctftp_cache_evictions_total"])
	if fetches != distinct {
		t.Errorf("%v backend fetches for %v distinct answers: some file was fetched more than once", fetches, distinct)
	}
	if lo, hi := float64(3*phones+1), float64(2*3*phones+2); distinct < lo || distinct > hi {
		t.Errorf("%v distinct answers; %d phones need between %v and %v", distinct, phones, lo, hi)
	}
	if m["ctftp_cache_evictions_total"] != 0 {
		t.Errorf("%v evictions: the count above is not the number of distinct answers", m["ctftp_cache_evictions_total"])
	}
	// CTLFile.tlv was asked by every phone but fetched at most once per
	// sub-cluster: 500 requests, at most 2 fetches. The other 498+ are
	// cache hits or joined the fill in flight.
	if hits := m["ctftp_cache_hits_total"] + m["ctftp_cache_fill_shared_total"]; hits < float64(phones-2) {
		t.Errorf("only %v requests were hits or shared a fill; CTLFile.tlv alone should give %d", hits, phones-2)
	}

	// A second storm of the same phones: everything is cached now.
	rep2, err := loadgen.Run(context.Background(), cfg, addr, loadgen.Options{Label: "storm again", MACs: f.MACs(), Check: f.Check})
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Booted != phones {
		t.Fatalf("second storm: %d of %d booted: %s", rep2.Booted, phones, rep2.ErrorSummary())
	}
	m2 := perfSeries(gw)
	if m2["ctftp_backend_fetches_total"] != fetches {
		t.Errorf("the second storm fetched %v files from backends; everything was cached", m2["ctftp_backend_fetches_total"]-fetches)
	}
}

// stormExplain logs what the gateway logged about the phones of the
// report's examples of failure.
func stormExplain(t testing.TB, gw *gateway, rep *loadgen.Report) {
	t.Helper()
	for _, e := range rep.Examples {
		_, rest, ok := strings.Cut(e, "phone ")
		if !ok || len(rest) < 12 {
			continue
		}
		mac := rest[:12]
		for _, line := range strings.Split(gw.Log(), "\n") {
			if strings.Contains(line, mac) {
				t.Logf("gateway: %s", line)
			}
		}
	}
}
