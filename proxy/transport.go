package proxy

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"
)

// transport carries one transfer's packets to and from its client. The
// transfer engine (transfer.go) is the same for both socket models: a
// connected socket per transfer (connTransport, the default) and the
// listening socket shared by every transfer (single-port mode, demux.go).
// A transport is used by its transfer's goroutine only.
type transport interface {
	// send writes one packet to the client.
	send(pkt []byte) error
	// recv returns the next packet from the client, waiting until
	// deadline (then an error wrapping os.ErrDeadlineExceeded) or until
	// the transfer's context ends. The packet is valid until the next
	// call. Packets from anyone else never reach it.
	recv(deadline time.Time) ([]byte, error)
	// close releases the transport; the transfer calls it once, last.
	close()
}

// connTransport is a UDP socket of the transfer's own, connected to the
// client. Connecting buys two things over sendto/recvfrom on an
// unconnected socket: the kernel drops datagrams from any other address
// (they draw an ICMP port unreachable, as with tftpd-hpa, instead of
// error 5), and an ICMP port unreachable from the client is reported on
// the next read (ECONNREFUSED), so a vanished client frees its slot at
// once instead of after every retransmission.
type connTransport struct {
	conn *net.UDPConn
	// sock is conn as the socket pool knows it; nil when conn is not
	// pooled (an address with a zone) and closes with the transfer.
	sock *pooledSocket
	pool *socketPool
	// armed is the read deadline set on conn (zero: none yet). recv
	// re-arms it only when it would fire too late, so a transfer sets it
	// about once per retransmission interval instead of once per packet:
	// one timer per transfer, not one reset per block.
	armed time.Time
	woken atomic.Bool
	// rbuf receives ACKs and ERRORs; anything longer is truncated, which
	// loses nothing the transfer reads.
	rbuf [516]byte
}

// dialTransport gives the transfer a socket on local (a port of its own,
// its TID) connected to client, into c (the transfer's own, so nothing is
// allocated for it): one the pool kept from an earlier transfer, or a new
// one. The transfer's context does not wake a blocked recv
// by itself: the transfer bounds its waits by the context's deadline and
// the server calls wake on shutdown.
func dialTransport(c *connTransport, pool *socketPool, v4 bool, local netip.Addr, client netip.AddrPort) error {
	if local.Zone() == "" && client.Addr().Zone() == "" {
		s, err := pool.get(v4, local, client)
		if err != nil {
			return err
		}
		*c = connTransport{conn: s.conn, sock: s, pool: pool}
		return nil
	}
	network := "udp6"
	if v4 {
		network = "udp4"
	}
	conn, err := net.DialUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), net.UDPAddrFromAddrPort(client))
	if err != nil {
		return err
	}
	*c = connTransport{conn: conn}
	return nil
}

// wake makes a blocked recv (and every later one) return at once; any
// goroutine may call it.
func (c *connTransport) wake() {
	c.woken.Store(true)
	c.conn.SetReadDeadline(time.Unix(1, 0))
}

func (c *connTransport) send(pkt []byte) error {
	_, err := c.conn.Write(pkt)
	return err
}

func (c *connTransport) recv(deadline time.Time) ([]byte, error) {
	// The deadline armed for an earlier packet may come before this
	// one's: the read then wakes early and is re-armed below. Only one
	// that would fire too late is changed now.
	if c.armed.IsZero() || c.armed.After(deadline) {
		if err := c.arm(deadline); err != nil {
			return nil, err
		}
	}
	for {
		n, err := c.conn.Read(c.rbuf[:])
		if err == nil {
			return c.rbuf[:n], nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || c.woken.Load() || !time.Now().Before(deadline) {
			return nil, err
		}
		if err := c.arm(deadline); err != nil {
			return nil, err
		}
	}
}

func (c *connTransport) arm(d time.Time) error {
	if err := c.conn.SetReadDeadline(d); err != nil {
		return err
	}
	c.armed = d
	return nil
}

func (c *connTransport) close() {
	if c.sock != nil {
		c.pool.put(c.sock)
		return
	}
	c.conn.Close()
}
