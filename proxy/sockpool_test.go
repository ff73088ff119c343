package proxy

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ctftp/ctftp/internal/tftpwire"
)

// TestSocketPoolReuseStartsClean: a socket handed back and taken again is
// connected to its new client only, with nothing of the previous one's:
// neither datagrams it sent late nor the ICMP error its departure caused.
func TestSocketPoolReuseStartsClean(t *testing.T) {
	var p socketPool
	defer p.close()
	lo := netip.MustParseAddr("127.0.0.1")
	udp := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := udp(), udp()
	s, err := p.get(true, lo, a.LocalAddr().(*net.UDPAddr).AddrPort())
	if err != nil {
		t.Fatal(err)
	}
	tid := s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	for range 3 {
		if _, err := a.WriteToUDPAddrPort([]byte("late from a"), tid); err != nil {
			t.Fatal(err)
		}
	}
	// a goes away; a packet to it draws an ICMP port unreachable, which
	// the connected socket keeps as a pending error.
	a.Close()
	if _, err := s.conn.Write([]byte("to a")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the ICMP is delivered asynchronously
	p.put(s)

	s2, err := p.get(true, lo, b.LocalAddr().(*net.UDPAddr).AddrPort())
	if err != nil {
		t.Fatal(err)
	}
	defer p.put(s2)
	if s2 != s {
		t.Fatal("the idle socket was not reused")
	}
	if _, err := b.WriteToUDPAddrPort([]byte("from b"), tid); err != nil {
		t.Fatal(err)
	}
	s2.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := s2.conn.Read(buf)
	if err != nil || string(buf[:n]) != "from b" {
		t.Fatalf("first read after reuse: %q, %v; want b's datagram", buf[:n], err)
	}
	// And it talks to b: what it sends arrives there.
	if _, err := s2.conn.Write([]byte("to b")); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := b.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "to b" || from != tid {
		t.Fatalf("b got %q from %v, %v", buf[:n], from, err)
	}
}

// TestSocketPoolBounds: the pool closes sockets beyond its bound and
// every socket once closed.
func TestSocketPoolBounds(t *testing.T) {
	var p socketPool
	lo := netip.MustParseAddr("127.0.0.1")
	peer := netip.MustParseAddrPort("127.0.0.1:9")
	var socks []*pooledSocket
	for range maxIdleSockets + 2 {
		s, err := p.get(true, lo, peer)
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, s)
	}
	for _, s := range socks {
		p.put(s)
	}
	if p.n != maxIdleSockets {
		t.Errorf("%d idle, want %d", p.n, maxIdleSockets)
	}
	closed := func(s *pooledSocket) bool {
		_, err := s.conn.Write([]byte("x"))
		return errors.Is(err, net.ErrClosed)
	}
	if !closed(socks[len(socks)-1]) || closed(socks[0]) {
		t.Error("the sockets over the bound were not the ones closed")
	}
	p.close()
	for _, s := range socks {
		if !closed(s) {
			t.Fatal("close left an idle socket open")
		}
	}
	s, err := p.get(true, lo, peer)
	if err != nil {
		t.Fatal(err)
	}
	p.put(s)
	if !closed(s) {
		t.Error("a socket handed back after close stays open")
	}
}

// TestTransfersReuseSockets: consecutive transfers from different
// clients are served from the same socket (the same TID) and each gets
// its file intact.
func TestTransfersReuseSockets(t *testing.T) {
	data := pattern(3000)
	ts := startServer(t, memSource(map[string][]byte{"f": data}, bodyReaderAt), testConfig())
	var tids []netip.AddrPort
	for range 3 {
		c := newRawClient(t, ts.addr)
		res := c.fetch("f", "octet", nil, 1)
		if !bytes.Equal(res.data, data) {
			t.Fatal("content differs")
		}
		tids = append(tids, res.tid)
		want := uint64(len(tids))
		waitFor(t, "transfer recorded", func() bool { return ts.counter(`ctftp_transfers_total{source="cache",result="ok"}`) == want })
		// A late duplicate ACK of the finished transfer lands on the
		// idle socket; the next transfer must not take it for its own.
		c.sendTo(res.tid, tftpwire.AppendACK(nil, 1))
	}
	if tids[0] != tids[1] || tids[1] != tids[2] {
		t.Errorf("TIDs %v: the socket was not reused", tids)
	}
	if n := ts.counter("ctftp_transfer_retransmits_total"); n != 0 {
		t.Errorf("%d retransmissions", n)
	}
}

// TestSocketPoolExpiry: an idle socket is closed once it has waited
// idleSocketTimeout; one handed back since waits its own.
func TestSocketPoolExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p socketPool
		defer p.close()
		lo := netip.MustParseAddr("127.0.0.1")
		peer := netip.MustParseAddrPort("127.0.0.1:9")
		get := func() *pooledSocket {
			s, err := p.get(true, lo, peer)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		closed := func(s *pooledSocket) bool {
			_, err := s.conn.Write([]byte("x"))
			return errors.Is(err, net.ErrClosed)
		}
		old, young := get(), get()
		p.put(old)
		time.Sleep(idleSocketTimeout / 2)
		p.put(young)
		time.Sleep(idleSocketTimeout/2 + time.Millisecond)
		synctest.Wait()
		if !closed(old) || closed(young) {
			t.Fatalf("after %v: old closed %v, young closed %v", idleSocketTimeout, closed(old), closed(young))
		}
		time.Sleep(idleSocketTimeout)
		synctest.Wait()
		if !closed(young) || p.n != 0 {
			t.Fatalf("young closed %v, %d idle", closed(young), p.n)
		}
	})
}
