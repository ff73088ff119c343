package loadgen

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftptest"
)

// A client that starts a second transfer from the port of its first (the
// kernel hands ephemeral ports out again; a gateway making hundreds of
// backend fetches hits it in every storm) must reach the second
// transfer's TID, not the first's: its ACK must move the transfer on. A
// late retransmission of a request must not move it off either.
func TestDelayLinkPortReuse(t *testing.T) {
	small := []byte("one block")
	big := bytes.Repeat([]byte("x"), 700) // two blocks: DATA 2 needs the ACK of DATA 1
	srv := tftptest.NewServer(t, map[string][]byte{"a": small, "b": big})
	link, err := StartDelayLink(srv.AddrPort(), time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	rrq := func(name string) {
		p := binary.BigEndian.AppendUint16(nil, 1)
		p = append(append(append(append(p, name...), 0), "octet"...), 0)
		if _, err := conn.WriteToUDPAddrPort(p, link.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	// data waits for DATA block, ACKs it, and returns its payload.
	data := func(block uint16) []byte {
		t.Helper()
		buf := make([]byte, 1024)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("waiting for DATA %d: %v", block, err)
			}
			if n < 4 || binary.BigEndian.Uint16(buf) != 3 || binary.BigEndian.Uint16(buf[2:]) != block {
				continue // a retransmission of an earlier block
			}
			ack := binary.BigEndian.AppendUint16(nil, 4)
			ack = binary.BigEndian.AppendUint16(ack, block)
			if _, err := conn.WriteToUDPAddrPort(ack, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())); err != nil {
				t.Fatal(err)
			}
			return bytes.Clone(buf[4:n])
		}
	}

	rrq("a")
	if got := data(1); !bytes.Equal(got, small) {
		t.Fatalf("first transfer: %q", got)
	}
	rrq("b")
	first := data(1)
	// A retransmission of the request that crossed the server's answer
	// (a slow or queueing server) belongs to the transfer under way: the
	// ACK of DATA 1 must still reach it.
	rrq("b")
	got := append(first, data(2)...)
	if !bytes.Equal(got, big) {
		t.Fatalf("second transfer from the same port: %d bytes, want %d", len(got), len(big))
	}
}
