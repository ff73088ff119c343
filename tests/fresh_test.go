package tests

// Issue 14, end to end with real tftpd-hpa backends: a phone's own files
// are fresh (served from the cache only within cache.ttl.device, then
// fetched again; the last copy kept for serve-stale), shared files keep
// their TTL, and a phone's first request prefetches the rest of its boot
// set into that window.

import (
	"fmt"
	"testing"
	"time"
)

// freshWindow is the burst window the freshness test configures: long
// enough that the request right after a fill falls inside it on a loaded
// machine, short enough to wait out.
const freshWindow = 4 * time.Second

// TestDeviceFilesFresh is the admin's routine: change a phone in CUCM
// (its TFTP server now serves new bytes), reset the phone. Within the
// burst window (a retransmitted or repeated request) the phone gets the
// copy it just got; its next boot gets the new file. The shared
// XMLDefault.cnf.xml keeps its TTL. With the backend killed, the last
// copy of the phone's file is still served.
func TestDeviceFilesFresh(t *testing.T) {
	mac := fwdMAC("00CC14", 1)
	cnf := "SEP" + mac + ".cnf.xml.sgn"
	// Really signed: the gateway checks that a .sgn is whole.
	pki := trNewPKI(t, "east")
	v1, v2 := pki.sign(t, cnf, fwdContent("v1", cnf)), pki.sign(t, cnf, fwdContent("v2", cnf))
	root := fwdRoot(t, map[string][]byte{
		cnf:                  v1,
		"XMLDefault.cnf.xml": fwdContent("v1", "XMLDefault.cnf.xml"),
	})
	backend := fwdStartTFTPD(t, "127.0.0.1", root)
	gw := startGateway(t, fwdConfig(t, "", []fwdSub{{Name: "east", Backends: []string{backend.Addr}}}, fmt.Sprintf(`
backend: {probe_interval: 0s, timeout: 1s, retries: 1}
cache:
  ttl: {device: %s}
`, freshWindow)))
	addr := gw.TFTP[0]

	// The copy's window starts when its fill ends, somewhere between
	// these two instants: the retransmit case is judged from the first,
	// the next boot waits from the second.
	start := time.Now()
	fwdMustGet(t, addr, cnf, v1)
	filled := time.Now()
	fwdMustGet(t, addr, "XMLDefault.cnf.xml", fwdContent("v1", "XMLDefault.cnf.xml"))
	fwdWriteFile(t, root, cnf, v2)
	fwdWriteFile(t, root, "XMLDefault.cnf.xml", fwdContent("v2", "XMLDefault.cnf.xml"))

	// A retransmitted request, within the window: the same bytes.
	got, err := fwdGet(addr, cnf)
	switch took := time.Since(start); {
	case took >= freshWindow:
		// Only a machine too slow for the window gets here; the rest of
		// the test still holds.
		t.Logf("the machine took %s for three transfers, past the %s window: the retransmit case is not checked", took, freshWindow)
	case err != nil || string(got) != string(v1):
		t.Fatalf("within the window: %d bytes, %v; want the copy just served", len(got), err)
	}

	// The phone's next boot, after the window: the admin's change.
	time.Sleep(freshWindow - time.Since(filled) + 100*time.Millisecond)
	fwdMustGet(t, addr, cnf, v2)
	fwdMustGet(t, addr, "XMLDefault.cnf.xml", fwdContent("v1", "XMLDefault.cnf.xml"))
	m := gw.scrape()
	if m[`ctftp_cache_changed_total{class="device"}`] != 1 || m[`ctftp_cache_changed_total{class="config"}`] != 0 {
		t.Errorf("changed: device %v, config %v; want 1 and 0\n%s", m[`ctftp_cache_changed_total{class="device"}`], m[`ctftp_cache_changed_total{class="config"}`], fwdDelta(nil, m))
	}
	gw.waitLine("cache: file changed on the backend", func(l map[string]any) bool {
		return l["file"] == cnf && l["class"] == "device" && l["level"] == "DEBUG"
	})
	if line := fwdWaitTransferLine(gw, cnf, 3); line["source"] != "backend" {
		t.Errorf("the request after the window was served from %v, want backend", line["source"])
	}

	// The backend dies; the phone reboots after the window: the last
	// copy, not an error.
	backend.Kill()
	time.Sleep(freshWindow + 100*time.Millisecond)
	fwdMustGet(t, addr, cnf, v2)
	if m := gw.scrape(); m["ctftp_cache_stale_served_total"] != 1 {
		t.Errorf("stale served %v, want 1", m["ctftp_cache_stale_served_total"])
	}
}

// TestPrefetchBootSet: a phone's first request (CTLSEP<MAC>.tlv, which
// its cluster does not have) makes the rest of its boot set cache hits,
// counted; the backend still sees each file once. Shared names never
// start a prefetch. With a backend allowed one fetch at a time, no
// prefetch is sent at all: that slot is the phones'.
func TestPrefetchBootSet(t *testing.T) {
	ruled, learned := fwdMAC("00CC14", 2), fwdMAC("00CC14", 3)
	// Really signed trust lists and configs: the gateway checks that
	// they are whole.
	pki := trNewPKI(t, "east")
	files := map[string][]byte{"XMLDefault.cnf.xml": fwdContent("east", "XMLDefault.cnf.xml")}
	for _, mac := range []string{ruled, learned} {
		itlName, cnf := fwdPhoneFiles(mac)[0], fwdPhoneFiles(mac)[1]
		files[itlName] = pki.itl(t, false)
		files[cnf] = pki.sign(t, cnf, fwdContent("east", cnf))
	}
	root := fwdRoot(t, files)
	east := fwdStartTFTPD(t, "127.0.0.1", root)
	west := fwdStartTFTPD(t, "127.0.0.1", fwdRoot(t, nil))
	subs := []fwdSub{{Name: "east", Backends: []string{east.Addr}}, {Name: "west", Backends: []string{west.Addr}}}
	// A long window: the subject is what is fetched, not when.
	config := func(maxInFlight int) string {
		return fwdConfig(t, "", subs, fmt.Sprintf(`
backend: {probe_interval: 0s, timeout: 2s, max_in_flight: %d}
cache:
  ttl: {device: 1m}
routing:
  rules: [{mac: ["%s"], subcluster: east}]
`, maxInFlight, ruled))
	}

	t.Run("placed by a rule", func(t *testing.T) {
		gw := startGateway(t, config(5))
		addr := gw.TFTP[0]
		if _, err := fwdGet(addr, "CTLSEP"+ruled+".tlv"); err == nil {
			t.Fatal("CTLSEP: found; the cluster has none")
		}
		perfWaitSeries(t, gw, 20*time.Second, "two prefetches", func(m map[string]float64) bool {
			return m["ctftp_cache_prefetch_issued_total"] == 2 && m["ctftp_backend_in_flight"] == 0
		})
		for i, name := range fwdPhoneFiles(ruled) {
			fwdMustGet(t, addr, name, files[name])
			if line := fwdWaitTransferLine(gw, name, 1); line["source"] != "cache" {
				t.Errorf("request %d (%s) served from %v, want cache", i+2, name, line["source"])
			}
		}
		// Shared files and the last file of the set start nothing.
		fwdMustGet(t, addr, "XMLDefault.cnf.xml", files["XMLDefault.cnf.xml"])
		m := gw.scrape()
		for series, want := range map[string]float64{
			"ctftp_cache_prefetch_issued_total": 2,
			"ctftp_cache_prefetch_used_total":   2,
			"ctftp_cache_prefetch_wasted_total": 0,
			fwdFetchSeries("east", "ok"):        3, // ITLSEP, SEP, XMLDefault: once each
			fwdFetchSeries("east", "not_found"): 1, // CTLSEP
			fwdFetchSeries("west", "ok"):        0,
		} {
			if m[series] != want {
				t.Errorf("%s = %v, want %v\n%s", series, m[series], want, fwdDelta(nil, m))
			}
		}
		// ITLSEP's request asks for the config again, found cached; the
		// config (last of the set) and the shared file ask for nothing.
		if c, b := m[`ctftp_cache_prefetch_skipped_total{reason="cached"}`], m[`ctftp_cache_prefetch_skipped_total{reason="busy"}`]; c != 1 || b != 0 {
			t.Errorf("prefetches skipped: %v cached, %v busy; want 1 and 0", c, b)
		}
		gw.waitLine("routing: prefetch", func(l map[string]any) bool { return l["mac"] == ruled && l["subcluster"] == "east" })
		if l := gw.Lines("routing: prefetch is configured but the source behind routing cannot prefetch; no prefetch will be made"); len(l) > 0 {
			t.Errorf("the gateway's chain hides the cache's prefetch: %v", l)
		}
	})

	t.Run("found by a fan-out", func(t *testing.T) {
		gw := startGateway(t, config(5))
		addr := gw.TFTP[0]
		// The phone no rule places: CTLSEP is nowhere, so nothing is
		// known yet; ITLSEP is found in east, which then prefetches
		// the config.
		fwdGet(addr, "CTLSEP"+learned+".tlv")
		if m := gw.scrape(); m["ctftp_cache_prefetch_issued_total"] != 0 {
			t.Fatalf("%v prefetches before the sub-cluster was known", m["ctftp_cache_prefetch_issued_total"])
		}
		itl, cnf := fwdPhoneFiles(learned)[0], fwdPhoneFiles(learned)[1]
		fwdMustGet(t, addr, itl, files[itl])
		perfWaitSeries(t, gw, 20*time.Second, "the config's prefetch", func(m map[string]float64) bool {
			return m["ctftp_cache_prefetch_issued_total"] == 1 && m["ctftp_backend_in_flight"] == 0
		})
		fwdMustGet(t, addr, cnf, files[cnf])
		if line := fwdWaitTransferLine(gw, cnf, 1); line["source"] != "cache" {
			t.Errorf("the config was served from %v, want cache", line["source"])
		}
		if m := gw.scrape(); m["ctftp_cache_prefetch_used_total"] != 1 || m[fwdFetchSeries("west", "ok")] != 0 {
			t.Errorf("used %v, west fetches %v; want 1 and 0", m["ctftp_cache_prefetch_used_total"], m[fwdFetchSeries("west", "ok")])
		}
	})

	t.Run("one slot: none", func(t *testing.T) {
		gw := startGateway(t, config(1))
		addr := gw.TFTP[0]
		fwdGet(addr, "CTLSEP"+ruled+".tlv")
		perfWaitSeries(t, gw, 20*time.Second, "both prefetches refused", func(m map[string]float64) bool {
			return m["ctftp_cache_prefetch_skipped_total"] == 2
		})
		for _, name := range fwdPhoneFiles(ruled) {
			fwdMustGet(t, addr, name, files[name])
		}
		m := gw.scrape()
		// CTLSEP asks for two, ITLSEP for one: all refused.
		if m[`ctftp_cache_prefetch_skipped_total{reason="busy"}`] != 3 || m["ctftp_cache_prefetch_issued_total"] != 0 {
			t.Errorf("busy %v, issued %v; want 3 and 0", m[`ctftp_cache_prefetch_skipped_total{reason="busy"}`], m["ctftp_cache_prefetch_issued_total"])
		}
		if m[fwdFetchSeries("east", "ok")] != 2 || m[fwdFetchSeries("east", "error")] != 0 {
			t.Errorf("east fetches ok %v error %v; want 2 and 0", m[fwdFetchSeries("east", "ok")], m[fwdFetchSeries("east", "error")])
		}
	})
}
