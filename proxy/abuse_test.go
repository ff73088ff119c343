package proxy

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftpwire"
)

// loopbackClient returns the i-th of many distinct loopback addresses
// (127.2.0.1, 127.2.0.2, ...): each plays a client host of its own, as
// phones have.
func loopbackClient(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 2, byte(i / 250), byte(i%250 + 1)})
}

// TestVanishedClientsFreeTheirSlots: 2,000 clients each send an RRQ and
// close their socket at once. Their ports answer the first DATA with
// ICMP port unreachable, which the transfer's connected socket reports:
// the transfers end and the active-transfer gauge returns to its
// baseline without waiting for the retransmissions to run out.
func TestVanishedClientsFreeTheirSlots(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 clients")
	}
	const n = 2000
	ts := startServer(t, memSource(map[string][]byte{"ITLFile.tlv": pattern(5000)}, bodyReaderAt), testConfig())
	active := func() float64 { return ts.set.GetOrCreateGauge("ctftp_active_transfers", nil).Get() }
	ended := func() uint64 { return ts.counter(`ctftp_transfers_total{source="cache",result="error"}`) }
	rrq := tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "ITLFile.tlv", "octet", nil)
	start := time.Now()
	peak := 0.0
	for i := range n {
		conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopbackClient(i), 0)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteToUDPAddrPort(rrq, ts.addr); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if i%50 == 49 {
			// Pace the burst so that the listening socket's receive
			// buffer does not overflow: the subject is the transfers,
			// not the kernel dropping requests.
			for wait := time.Now().Add(2 * time.Second); uint64(active())+ended() < uint64(i+1) && time.Now().Before(wait); {
				time.Sleep(time.Millisecond)
			}
			peak = max(peak, active())
		}
	}
	sent := time.Since(start)
	deadline := time.Now().Add(30 * time.Second)
	for active() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%v transfers still active", active())
		}
		time.Sleep(10 * time.Millisecond)
	}
	unreachable := ts.counter("ctftp_transfer_unreachable_total")
	seen := ended()
	if seen < n/2 {
		t.Fatalf("only %d of %d requests reached the server", seen, n)
	}
	// Timing is reported, not asserted (a loaded host may be slow); the
	// counter proves the ICMP path ended transfers. The kernel sends at
	// most net.ipv4.icmp_msgs_per_sec (1000 by default) ICMP errors per
	// second, so some transfers may end by their own timeout instead.
	t.Logf("%d RRQs sent in %v, %d reached the server; gauge peaked at %v, back to 0 after %v; %d ended by ICMP unreachable",
		n, sent.Round(time.Millisecond), seen, peak, time.Since(start).Round(time.Millisecond), unreachable)
	if unreachable == 0 {
		t.Fatal("no transfer was ended by an ICMP unreachable")
	}
}
