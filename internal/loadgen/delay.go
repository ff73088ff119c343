package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ctftp/ctftp/internal/tftpwire"
)

// DelayLink stands between TFTP clients and one TFTP server and delays
// every datagram by Delay in each direction, as a WAN link with a round
// trip of 2×Delay would: a lock-step transfer of n blocks then costs
// about n+1 round trips, which is what the gateway-to-backend leg pays on
// a miss. It is the portable stand-in for `tc qdisc ... netem delay` on a
// test network namespace.
//
// TFTP answers from a new port per transfer (the server's TID), so the
// link keeps one session per client address: an upstream socket that
// talks to the server and a downstream socket that the client sees as the
// server's TID. Datagrams are never dropped, duplicated or reordered
// (beyond timer jitter); the queue holds up to 65,536 of them.
//
// Goroutines: one reading the listening socket, one delivering delayed
// datagrams, and two per session; Close stops all of them and waits. A
// session ends with Close or after Idle without traffic; its statistics
// (a few hundred bytes) stay for Sessions until the link is dropped.
// DelayLink is safe for concurrent use.
type DelayLink struct {
	server netip.AddrPort
	delay  time.Duration
	idle   time.Duration
	front  *net.UDPConn
	addr   netip.AddrPort
	queue  chan delayed
	done   chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[netip.AddrPort]*linkSession
	all      []*linkSession // every session, for Sessions
	closed   bool

	toServer, toClient, dropped atomic.Int64
}

type linkSession struct {
	client netip.AddrPort
	up     *net.UDPConn // to the server
	down   *net.UDPConn // to the client; its port is the TID the client sees
	tid    atomic.Pointer[netip.AddrPort]
	// prev is the TID of the session's previous transfer: where a
	// client's last ACK of it goes when the link's reader of requests
	// saw the next request first (the two sockets are read by two
	// goroutines, so a client's back-to-back final ACK and new request
	// can cross). Sent to the well-known port instead, that ACK draws an
	// ERROR that would pass for the new request's answer.
	prev atomic.Pointer[netip.AddrPort]
	last atomic.Int64 // unix nanoseconds of the last datagram

	mu    sync.Mutex
	stats LinkSession
	rrq   []byte // the last request, to tell a retransmission from a new transfer
}

// newTransferIdle is how long a session must have been quiet for the same
// request again to be a new transfer rather than a retransmission.
const newTransferIdle = time.Second

// LinkSession is what one client session carried across the link: a
// copy, plain data.
type LinkSession struct {
	// Client is the client's address; File the name in its first read
	// request ("" if its first datagram was not one).
	Client netip.AddrPort
	File   string
	// ToServer and ToClient count datagrams delivered each way.
	ToServer, ToClient int
	// First is when the first datagram entered the link, Last when the
	// last one left it: Last-First is the transfer as the WAN saw it.
	First, Last time.Time
}

type delayed struct {
	s    *linkSession
	due  time.Time
	conn *net.UDPConn
	to   netip.AddrPort
	pkt  []byte
	up   bool
}

// linkQueue bounds the datagrams in flight on the link.
const linkQueue = 1 << 16

// StartDelayLink starts a link to server on a loopback port of server's
// address family. idle 0 means 30s.
func StartDelayLink(server netip.AddrPort, delay, idle time.Duration) (*DelayLink, error) {
	if delay < 0 {
		return nil, fmt.Errorf("loadgen: delay link: negative delay %s", delay)
	}
	if idle <= 0 {
		idle = 30 * time.Second
	}
	server = netip.AddrPortFrom(server.Addr().Unmap(), server.Port())
	lo := netip.MustParseAddr("127.0.0.1")
	network := "udp4"
	if server.Addr().Is6() {
		lo, network = netip.IPv6Loopback(), "udp6"
	}
	front, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
	if err != nil {
		return nil, fmt.Errorf("loadgen: delay link: %w", err)
	}
	l := &DelayLink{
		server:   server,
		delay:    delay,
		idle:     idle,
		front:    front,
		addr:     netip.AddrPortFrom(lo, uint16(front.LocalAddr().(*net.UDPAddr).Port)),
		queue:    make(chan delayed, linkQueue),
		done:     make(chan struct{}),
		sessions: map[netip.AddrPort]*linkSession{},
	}
	l.wg.Add(2)
	go l.readFront()
	go l.deliver()
	return l, nil
}

// Addr is where clients send their requests.
func (l *DelayLink) Addr() netip.AddrPort { return l.addr }

// Datagrams returns how many datagrams went to the server and to clients
// so far, and how many were dropped because the queue was full.
func (l *DelayLink) Datagrams() (toServer, toClient, dropped int64) {
	return l.toServer.Load(), l.toClient.Load(), l.dropped.Load()
}

// Sessions returns every session the link carried, expired ones
// included, in the order they started.
func (l *DelayLink) Sessions() []LinkSession {
	l.mu.Lock()
	all := slices.Clone(l.all)
	l.mu.Unlock()
	out := make([]LinkSession, len(all))
	for i, s := range all {
		s.mu.Lock()
		out[i] = s.stats
		s.mu.Unlock()
	}
	return out
}

// Close stops the link and waits for its goroutines.
func (l *DelayLink) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	l.front.Close()
	for _, s := range l.sessions {
		s.up.Close()
		s.down.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	return nil
}

func (l *DelayLink) readFront() {
	defer l.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := l.front.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		s := l.session(from)
		if s == nil {
			continue
		}
		req, err := tftpwire.ParseRequest(buf[:n])
		isRRQ := err == nil && req.Opcode == tftpwire.OpRRQ
		idle := time.Since(time.Unix(0, s.last.Load()))
		s.mu.Lock()
		if s.stats.First.IsZero() {
			s.stats.First = time.Now()
			if isRRQ {
				s.stats.File = req.Filename
			}
		}
		if isRRQ {
			if s.tid.Load() != nil && (!bytes.Equal(buf[:n], s.rrq) || idle >= newTransferIdle) {
				// A request from a port whose transfer was answered: the
				// client reused its port for a new transfer (the kernel
				// hands ephemeral ports out again), which the server
				// answers from a new TID. A retransmission of the request
				// the server already answers (it was slow to answer, as a
				// queueing server is) is the same request, close behind.
				if t := s.tid.Swap(nil); t != nil {
					s.prev.Store(t)
				}
			}
			s.rrq = append(s.rrq[:0], buf[:n]...)
		}
		s.mu.Unlock()
		// Requests (and their retransmissions) go to the server's
		// well-known port.
		l.enqueue(s, s.up, l.server, buf[:n], true)
		s.last.Store(time.Now().UnixNano())
	}
}

// session returns client's session, creating it (and its two readers) on
// the first datagram; nil once the link is closed or a socket fails.
func (l *DelayLink) session(client netip.AddrPort) *linkSession {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	if s, ok := l.sessions[client]; ok {
		return s
	}
	// Upstream from the phone's own address (a new port): the server
	// sees each phone as itself, as it would without the link.
	up, err := listenFor(l.server, client.Addr())
	if err != nil {
		return nil
	}
	down, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.addr.Addr(), 0)))
	if err != nil {
		up.Close()
		return nil
	}
	s := &linkSession{client: client, up: up, down: down}
	s.stats.Client = client
	s.last.Store(time.Now().UnixNano())
	l.sessions[client] = s
	l.all = append(l.all, s)
	l.wg.Add(2)
	go l.readUp(s)
	go l.readDown(s)
	return s
}

// readUp carries the server's datagrams to the client, from the
// session's downstream socket.
func (l *DelayLink) readUp(s *linkSession) {
	defer l.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := s.up.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if from.Addr() != l.server.Addr() {
			continue
		}
		if s.tid.Load() == nil {
			s.tid.Store(&from)
		}
		l.enqueue(s, s.down, s.client, buf[:n], false)
		s.last.Store(time.Now().UnixNano())
	}
}

// readDown carries the client's datagrams (ACKs, ERRORs) to the server's
// TID; before the server has answered the session's current request, to
// the previous transfer's TID (a late ACK of it), or to the well-known
// port when there was none.
func (l *DelayLink) readDown(s *linkSession) {
	defer l.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := s.down.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != s.client {
			continue
		}
		to := l.server
		if t := s.tid.Load(); t != nil {
			to = *t
		} else if p := s.prev.Load(); p != nil {
			to = *p
		}
		l.enqueue(s, s.up, to, buf[:n], true)
		s.last.Store(time.Now().UnixNano())
	}
}

func (l *DelayLink) enqueue(s *linkSession, conn *net.UDPConn, to netip.AddrPort, pkt []byte, up bool) {
	d := delayed{s: s, due: time.Now().Add(l.delay), conn: conn, to: to, pkt: append([]byte(nil), pkt...), up: up}
	select {
	case l.queue <- d:
	default:
		l.dropped.Add(1)
	}
}

// deliver sends each queued datagram when it is due, and closes idle
// sessions. The delay is the same for every datagram, so the queue is in
// due order and one timer suffices.
func (l *DelayLink) deliver() {
	defer l.wg.Done()
	sweep := time.NewTicker(min(l.idle, time.Second))
	defer sweep.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-sweep.C:
			l.expire()
		case d := <-l.queue:
			if wait := time.Until(d.due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-l.done:
					return
				}
			}
			if _, err := d.conn.WriteToUDPAddrPort(d.pkt, d.to); err != nil {
				if !errors.Is(err, net.ErrClosed) {
					l.dropped.Add(1)
				}
				continue
			}
			d.s.mu.Lock()
			if d.up {
				l.toServer.Add(1)
				d.s.stats.ToServer++
			} else {
				l.toClient.Add(1)
				d.s.stats.ToClient++
			}
			d.s.stats.Last = time.Now()
			d.s.mu.Unlock()
		}
	}
}

// expire closes sessions idle for longer than l.idle; their readers end
// when their sockets close.
func (l *DelayLink) expire() {
	cutoff := time.Now().Add(-l.idle).UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	for c, s := range l.sessions {
		if s.last.Load() < cutoff {
			s.up.Close()
			s.down.Close()
			delete(l.sessions, c)
		}
	}
}
