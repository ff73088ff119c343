package tests

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ctftp/ctftp/internal/dnstest"
)

// dnsWaitServed fetches name until the gateway serves want, and fails if
// it serves anything but want or old on the way (or nothing at all). It
// polls against a deadline because when the gateway looks a name up again
// is its business (the record's TTL, bounded by dns.min_ttl); the test
// only needs the move to happen, and to stick.
func dnsWaitServed(t *testing.T, addr, name string, old, want []byte) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for {
		got, err := fwdGet(addr, name)
		if err != nil {
			t.Fatalf("get %s while the record moves: %v", name, err)
		}
		switch {
		case bytes.Equal(got, want):
			return time.Since(start)
		case !bytes.Equal(got, old):
			t.Fatalf("get %s: got %q, neither the old nor the new backend's copy", name, fwdHead(got))
		case time.Now().After(deadline):
			t.Fatalf("get %s: still served by the old backend 30s after the record changed", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dnsAddrsChanged reports whether the gateway logged that backend (as
// configured) now resolves to an address list containing addr.
func dnsAddrsChanged(backend, addr string) func(map[string]any) bool {
	return func(l map[string]any) bool {
		return l["backend"] == backend && slices.Contains(strs(l["new"]), addr)
	}
}

// TestDNSBackendsMove names backends by DNS: an SRV name (east), a host
// name with an A record (west) and one with only an AAAA record (six),
// served by a miekg/dns server on loopback with 1-second TTLs. Changing
// the SRV record's port and the A record's address moves the traffic to
// another real tftpd-hpa, told apart by the bytes it serves; a resolver
// that then fails keeps the last good addresses.
func TestDNSBackendsMove(t *testing.T) {
	d := dnstest.NewServer(t)
	eastMAC, westMAC, sixMAC := fwdMAC("00DD01", 1), fwdMAC("00DD02", 1), fwdMAC("00DD03", 1)

	// east: one host, two tftpds on different ports; the SRV record picks the port.
	east1 := fwdStartTFTPD(t, "127.0.0.1", fwdPhonesRoot(t, "east-1", eastMAC))
	east2 := fwdStartTFTPD(t, "127.0.0.1", fwdPhonesRoot(t, "east-2", eastMAC))
	// west: one port, two loopback addresses; the A record picks the address.
	west := fwdStartTFTPDSamePort(t, []string{"127.0.0.1", "127.0.0.2"},
		[]string{fwdPhonesRoot(t, "west-1", westMAC), fwdPhonesRoot(t, "west-2", westMAC)})
	_, westPort, _ := net.SplitHostPort(west[0].Addr)

	const srvName, eastHost, westHost, sixHost = "_tftp._udp.east.test", "tftp.east.test", "tftp.west.test", "tftp.six.test"
	port := func(addr string) uint16 { return netip.MustParseAddrPort(addr).Port() }
	d.SetSRV(srvName, 1, dnstest.SRV{Target: eastHost, Port: port(east1.Addr), Priority: 10, Weight: 10})
	d.SetA(eastHost, 1, "127.0.0.1")
	d.SetA(westHost, 1, "127.0.0.1")
	subs := []fwdSub{
		{Name: "east", Backends: []string{srvName}},
		{Name: "west", Backends: []string{net.JoinHostPort(westHost, westPort)}},
	}
	// six: AAAA only, on ::1, where the host has IPv6 loopback.
	var six *fwdTFTPD
	if c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback}); err == nil {
		c.Close()
		six = fwdStartTFTPD(t, "::1", fwdPhonesRoot(t, "six", sixMAC))
		d.SetAAAA(sixHost, 1, "::1")
		subs = append(subs, fwdSub{Name: "six", Backends: []string{net.JoinHostPort(sixHost, strconv.Itoa(int(port(six.Addr))))}})
	} else {
		t.Logf("no IPv6 loopback, AAAA backend left out: %v", err)
	}

	gw := startGateway(t, fwdConfig(t, "", subs, fmt.Sprintf(`
dns:
  servers: [%q]
  timeout: 1s
  min_ttl: 100ms
  max_ttl: 1m
backend:
  timeout: 5s
  probe_interval: 0s
cache:
  max_bytes: 0
  negative_ttl: 0s
`, d.Addr())))
	addr := gw.TFTP[0]
	eastCnf, westCnf, sixCnf := fwdPhoneFiles(eastMAC)[1], fwdPhoneFiles(westMAC)[1], fwdPhoneFiles(sixMAC)[1]

	t.Run("names resolve", func(t *testing.T) {
		fwdMustGet(t, addr, eastCnf, fwdContent("east-1", eastCnf))
		fwdMustGet(t, addr, westCnf, fwdContent("west-1", westCnf))
		if six != nil {
			fwdMustGet(t, addr, sixCnf, fwdContent("six", sixCnf))
			if line := fwdWaitTransferLine(gw, sixCnf, 1); line["backend"] != six.Addr {
				t.Errorf("six served by %v, want %s (the AAAA address)", line["backend"], six.Addr)
			}
		}
		if n := d.Queries(srvName, dns.TypeSRV); n == 0 {
			t.Errorf("no SRV query for %s", srvName)
		}
	})

	t.Run("SRV port change moves east", func(t *testing.T) {
		before := gw.scrape()
		queries := d.Queries(srvName, dns.TypeSRV)
		d.SetSRV(srvName, 1, dnstest.SRV{Target: eastHost, Port: port(east2.Addr), Priority: 10, Weight: 10})
		took := dnsWaitServed(t, addr, eastCnf, fwdContent("east-1", eastCnf), fwdContent("east-2", eastCnf))
		t.Logf("east moved %s after the SRV change (TTL 1s)", took)
		gw.waitLine("cluster: backend addresses changed", dnsAddrsChanged(srvName, east2.Addr))
		if n := d.Queries(srvName, dns.TypeSRV); n <= queries {
			t.Errorf("SRV queries %d -> %d: the name was not looked up again", queries, n)
		}
		after := gw.scrape()
		if after[`ctftp_dns_resolutions_total{result="ok"}`] <= before[`ctftp_dns_resolutions_total{result="ok"}`] {
			t.Errorf("ctftp_dns_resolutions_total{result=\"ok\"} did not grow:\n%s", fwdDelta(before, after))
		}
		for range 5 {
			fwdMustGet(t, addr, eastCnf, fwdContent("east-2", eastCnf))
		}
	})

	t.Run("A record change moves west", func(t *testing.T) {
		d.SetA(westHost, 1, "127.0.0.2")
		took := dnsWaitServed(t, addr, westCnf, fwdContent("west-1", westCnf), fwdContent("west-2", westCnf))
		t.Logf("west moved %s after the A change (TTL 1s)", took)
		gw.waitLine("cluster: backend addresses changed", dnsAddrsChanged(net.JoinHostPort(westHost, westPort), west[1].Addr))
		for range 5 {
			fwdMustGet(t, addr, westCnf, fwdContent("west-2", westCnf))
		}
	})

	t.Run("a failing resolver keeps the last addresses", func(t *testing.T) {
		d.SetServfail(true)
		// Wait for a failed lookup of a due name, then check nothing moved.
		deadline := time.Now().Add(30 * time.Second)
		for gw.scrape()[`ctftp_dns_resolutions_total{result="error"}`] == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no failed lookup 30s after the resolver started failing")
			}
			time.Sleep(20 * time.Millisecond)
		}
		gw.waitLine("cluster: backend name lookup failed; keeping its addresses", func(map[string]any) bool { return true })
		fwdMustGet(t, addr, eastCnf, fwdContent("east-2", eastCnf))
		fwdMustGet(t, addr, westCnf, fwdContent("west-2", westCnf))
		if six != nil {
			fwdMustGet(t, addr, sixCnf, fwdContent("six", sixCnf))
		}
		d.SetServfail(false)
	})
}
