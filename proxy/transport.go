package proxy

import (
	"context"
	"net"
	"net/netip"
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
	ctx  context.Context
	conn *net.UDPConn
	stop func() bool // unregisters the context's wake-up
	// deadline is the last one set on conn, to skip redundant syscalls.
	deadline time.Time
	// rbuf receives ACKs and ERRORs; anything longer is truncated, which
	// loses nothing the transfer reads.
	rbuf [516]byte
}

// dialTransport opens the transfer's socket on local (port 0: a new TID)
// connected to client. Cancelling ctx (shutdown, TransferTimeout) wakes a
// blocked recv.
func dialTransport(ctx context.Context, v4 bool, local netip.Addr, client netip.AddrPort) (*connTransport, error) {
	network := "udp6"
	if v4 {
		network = "udp4"
	}
	conn, err := net.DialUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), net.UDPAddrFromAddrPort(client))
	if err != nil {
		return nil, err
	}
	c := &connTransport{ctx: ctx, conn: conn}
	// recv checks ctx after every deadline it sets, so this cannot be
	// overwritten unnoticed.
	c.stop = context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	return c, nil
}

func (c *connTransport) send(pkt []byte) error {
	_, err := c.conn.Write(pkt)
	return err
}

func (c *connTransport) recv(deadline time.Time) ([]byte, error) {
	if !deadline.Equal(c.deadline) {
		if err := c.conn.SetReadDeadline(deadline); err != nil {
			return nil, err
		}
		c.deadline = deadline
		if err := c.ctx.Err(); err != nil {
			return nil, err
		}
	}
	n, err := c.conn.Read(c.rbuf[:])
	if err != nil {
		return nil, err
	}
	return c.rbuf[:n], nil
}

func (c *connTransport) close() {
	c.stop()
	c.conn.Close()
}
