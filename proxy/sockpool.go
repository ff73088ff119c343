package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// socketPool keeps the sockets of transfers that ended, by local address,
// for the next transfers: opening and closing one per transfer (socket,
// bind, getsockname, connect, two epoll_ctl, close, and some 14
// allocations in package net) was about a quarter of the server's CPU
// for a warm phone-sized transfer. Each transfer still has a socket of
// its own, connected to its client, for as long as it runs: a socket
// taken from the pool is connected to the new client (connect(2) on a
// connected UDP socket replaces the peer) and emptied first of whatever
// the previous client's late packets left queued, and of an ICMP error
// pending from it, so the new transfer starts clean.
//
// At most maxIdleSockets wait in the pool, none longer than
// idleSocketTimeout: a quiet gateway holds no descriptor it does not
// use. Addresses with a zone (IPv6 link-local) are not pooled. Safe for
// concurrent use.
type socketPool struct {
	mu     sync.Mutex
	idle   map[netip.Addr][]*pooledSocket // oldest first
	n      int
	closed bool
	// expiry closes sockets idle too long; armed while any is idle.
	expiry *time.Timer
	armed  bool
	// gauge is ctftp_transfer_sockets_idle (nil: not counted).
	gauge *metrics.Gauge
}

// count publishes the number of idle sockets; mu must be held.
func (p *socketPool) count() {
	if p.gauge != nil {
		p.gauge.Set(float64(p.n))
	}
}

// maxIdleSockets bounds the descriptors idle sockets hold: a storm's
// concurrency, not its size, is what reuse needs.
const maxIdleSockets = 256

// idleSocketTimeout is how long a socket may wait for its next transfer.
const idleSocketTimeout = 5 * time.Second

// pooledSocket is a transfer socket with what reusing it needs.
type pooledSocket struct {
	conn  *net.UDPConn
	raw   syscall.RawConn
	local netip.Addr
	// fresh: never connected, so nothing is queued on it yet.
	fresh bool
	// idleSince is when it was handed back.
	idleSince time.Time
}

// get returns a socket bound to local (port chosen by the OS) and
// connected to client: an idle one when there is one.
func (p *socketPool) get(v4 bool, local netip.Addr, client netip.AddrPort) (*pooledSocket, error) {
	s := p.take(local)
	if s == nil {
		network := "udp6"
		if v4 {
			network = "udp4"
		}
		conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
		if err != nil {
			return nil, err
		}
		raw, err := conn.SyscallConn()
		if err != nil {
			conn.Close()
			return nil, err
		}
		s = &pooledSocket{conn: conn, raw: raw, local: local, fresh: true}
	}
	if err := s.connect(v4, client); err != nil {
		s.conn.Close()
		return nil, err
	}
	return s, nil
}

func (p *socketPool) take(local netip.Addr) *pooledSocket {
	if local.Zone() != "" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[local]
	if len(list) == 0 {
		return nil
	}
	s := list[len(list)-1]
	p.idle[local] = list[:len(list)-1]
	p.n--
	p.count()
	return s
}

// put hands back the socket of a transfer that ended, or closes it.
func (p *socketPool) put(s *pooledSocket) {
	p.mu.Lock()
	if p.closed || p.n >= maxIdleSockets || s.local.Zone() != "" {
		p.mu.Unlock()
		s.conn.Close()
		return
	}
	if p.idle == nil {
		p.idle = make(map[netip.Addr][]*pooledSocket)
	}
	s.idleSince = time.Now()
	p.idle[s.local] = append(p.idle[s.local], s)
	p.n++
	p.count()
	if !p.armed {
		p.armed = true
		if p.expiry == nil {
			p.expiry = time.AfterFunc(idleSocketTimeout, p.expire)
		} else {
			p.expiry.Reset(idleSocketTimeout)
		}
	}
	p.mu.Unlock()
}

// expire closes the sockets idle for idleSocketTimeout or more.
func (p *socketPool) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = false
	if p.closed {
		return
	}
	cutoff := time.Now().Add(-idleSocketTimeout)
	for local, list := range p.idle {
		i := 0
		for i < len(list) && !list[i].idleSince.After(cutoff) {
			list[i].conn.Close()
			i++
		}
		p.n -= i
		if i == len(list) {
			delete(p.idle, local)
		} else {
			p.idle[local] = append(list[:0], list[i:]...)
		}
	}
	p.count()
	if p.n > 0 {
		p.armed = true
		p.expiry.Reset(idleSocketTimeout)
	}
}

// close closes every idle socket and every one handed back later.
func (p *socketPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.expiry != nil {
		p.expiry.Stop()
	}
	for _, list := range p.idle {
		for _, s := range list {
			s.conn.Close()
		}
	}
	p.idle, p.n = nil, 0
	p.count()
}

// connect points s at client and drops what an earlier client left.
func (s *pooledSocket) connect(v4 bool, client netip.AddrPort) error {
	sa, err := sockaddrOf(v4, client)
	if err != nil {
		return err
	}
	fresh := s.fresh
	s.fresh = false
	var cerr error
	err = s.raw.Control(func(fd uintptr) {
		if cerr = syscall.Connect(int(fd), sa); cerr != nil || fresh {
			return
		}
		// The socket is non-blocking: read until nothing is left. A
		// pending error (ECONNREFUSED from the previous client) is
		// returned, and cleared, by one of these reads.
		var buf [1]byte
		for range 1024 {
			if _, err := syscall.Read(int(fd), buf[:]); err == syscall.EAGAIN {
				return
			}
		}
		cerr = errors.New("proxy: could not drain a reused transfer socket")
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("connect to %s: %w", client, err)
	}
	return nil
}

// sockaddrOf converts a client address for connect(2) on an IPv4 (v4)
// or IPv6 socket.
func sockaddrOf(v4 bool, ap netip.AddrPort) (syscall.Sockaddr, error) {
	a := ap.Addr()
	if v4 {
		a = a.Unmap()
		if !a.Is4() {
			return nil, fmt.Errorf("%s is not an IPv4 address", ap)
		}
		return &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, nil
	}
	if a.Zone() != "" {
		// Zones are interface names here; resolving them is what
		// net.DialUDP does. Pooled sockets never have one.
		return nil, fmt.Errorf("zoned address %s", ap)
	}
	return &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}, nil
}
