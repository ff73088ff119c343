package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftpwire"
)

// Server is the TFTP front end: it reads requests on its listening
// sockets and serves each RRQ from its Source in a transfer of its own.
// Create it with NewServer, bind with Listen (or let Serve bind), run
// Serve, stop with Shutdown or by cancelling Serve's context. Its methods
// are safe for concurrent use.
type Server struct {
	cfg    Config
	src    ctftp.Source
	log    *slog.Logger
	met    *serverMetrics
	limits tftpwire.Limits
	bufs   bufferPool
	acl    *ACL
	rates  *clientRates
	// xferPool recycles transfers (newTransfer, releaseTransfer).
	xferPool sync.Pool
	// socks keeps ended transfers' sockets for the next ones.
	socks socketPool
	// bind opens one listening socket; tests replace it to play a host
	// without IPv6.
	bind func(netip.AddrPort) (*listener, error)

	mu        sync.Mutex
	listeners []*listener
	serving   bool
	closed    bool
	closing   chan struct{} // closed when shutdown begins
	base      context.Context
	cancel    context.CancelCauseFunc
	// inflight maps (client, requested name) to the running transfer, so
	// a retransmitted RRQ does not start a second one.
	inflight map[transferKey]*transfer
	// perClient counts running transfers per client address, for
	// MaxTransfersPerClient; an address leaves it with its last transfer,
	// so it never holds more than MaxTransfers entries.
	perClient map[netip.Addr]int

	active  atomic.Int64   // running transfers, for MaxTransfers
	readers sync.WaitGroup // one per listener, started by Serve
	xfers   sync.WaitGroup // one per transfer; Add only from readers
}

type transferKey struct {
	client netip.AddrPort
	name   string
}

// listener is one bound listening socket.
type listener struct {
	conn *net.UDPConn
	addr netip.AddrPort // as bound, port resolved
	v4   bool
	// wildcard listeners learn each request's destination address from
	// IP_PKTINFO / IPV6_PKTINFO control messages, so that replies and
	// transfers leave from the address the client talked to (a client
	// rejects packets from any other).
	wildcard bool
	// demux routes packets to the transfers this socket carries in
	// single-port mode; unused otherwise.
	demux demux
}

// dest is the local address a request arrived on.
type dest struct {
	addr    netip.Addr
	ifIndex int
}

// NewServer checks cfg and returns a server that will serve src. logger
// nil discards logs; m nil keeps metrics private (tests, tools).
func NewServer(cfg Config, src ctftp.Source, logger *slog.Logger, m *metrics.Set) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxy: invalid config: %w", err)
	}
	if src == nil {
		return nil, errors.New("proxy: nil Source")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.NewSet()
	}
	acl, err := NewACL(cfg.Allow, cfg.Deny)
	if err != nil {
		return nil, fmt.Errorf("proxy: invalid config: %w", err)
	}
	single := 0.0
	if cfg.SinglePort {
		single = 1
	}
	m.GetOrCreateGauge("ctftp_tftp_single_port", nil).Set(single)
	cfg.Listen = append([]string(nil), cfg.Listen...)
	s := &Server{
		cfg:       cfg,
		src:       src,
		log:       logger,
		met:       newServerMetrics(m),
		limits:    tftpwire.Limits{MaxBlockSize: cfg.MaxBlockSize, MaxWindowSize: cfg.MaxWindowSize},
		acl:       acl,
		rates:     newClientRates(cfg, m),
		bind:      listenUDP,
		closing:   make(chan struct{}),
		inflight:  make(map[transferKey]*transfer),
		perClient: make(map[netip.Addr]int),
	}
	s.socks.gauge = s.met.socketsIdle
	return s, nil
}

// Listen binds every address of Config.Listen. An IPv6 address that
// fails because the host has IPv6 disabled (EAFNOSUPPORT,
// EADDRNOTAVAIL, EPROTONOSUPPORT) is skipped with a warning as long as
// another address bound: a gateway must not die on an IPv4-only host, the
// most-reported tftp-hpa bug. Any other failure closes what was bound and
// is returned. Listen after a successful Listen does nothing.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listenLocked()
}

func (s *Server) listenLocked() error {
	if s.closed {
		return ErrServerClosed
	}
	if s.listeners != nil {
		return nil
	}
	var ls []*listener
	type skip struct {
		addr string
		err  error
	}
	var skipped []skip
	for _, a := range s.cfg.Listen {
		ap := netip.MustParseAddrPort(a) // Validate parsed it
		l, err := s.bind(ap)
		if err != nil {
			if ap.Addr().Is6() && !ap.Addr().Is4In6() && ipv6Unavailable(err) {
				skipped = append(skipped, skip{a, err})
				continue
			}
			for _, l := range ls {
				l.conn.Close()
			}
			return fmt.Errorf("proxy: listen %s: %w", a, err)
		}
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		errs := make([]error, len(skipped))
		for i, sk := range skipped {
			errs[i] = fmt.Errorf("listen %s: %w", sk.addr, sk.err)
		}
		return fmt.Errorf("proxy: no listen address could be bound: %w", errors.Join(errs...))
	}
	for _, sk := range skipped {
		s.log.Warn("IPv6 listen address skipped: IPv6 is unavailable on this host", "addr", sk.addr, "err", sk.err)
	}
	s.listeners = ls
	return nil
}

func ipv6Unavailable(err error) bool {
	return errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EADDRNOTAVAIL) ||
		errors.Is(err, syscall.EPROTONOSUPPORT)
}

func listenUDP(ap netip.AddrPort) (*listener, error) {
	addr := ap.Addr()
	network := "udp6"
	if addr.Is4() || addr.Is4In6() {
		network, addr = "udp4", addr.Unmap()
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, ap.Port())))
	if err != nil {
		return nil, err
	}
	l := &listener{conn: conn, v4: network == "udp4", wildcard: addr.IsUnspecified()}
	if l.wildcard {
		if err := l.reportDestinations(); err != nil {
			conn.Close()
			return nil, err
		}
	}
	l.addr = conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if l.v4 {
		l.addr = netip.AddrPortFrom(l.addr.Addr().Unmap(), l.addr.Port())
	}
	return l, nil
}

// reportDestinations asks the kernel to attach each datagram's
// destination address (IP_PKTINFO / IPV6_RECVPKTINFO) and turns on the
// wildcard handling of the read loop and of replies.
func (l *listener) reportDestinations() error {
	var err error
	if l.v4 {
		err = ipv4.NewPacketConn(l.conn).SetControlMessage(ipv4.FlagDst, true)
	} else {
		err = ipv6.NewPacketConn(l.conn).SetControlMessage(ipv6.FlagDst, true)
	}
	if err != nil {
		return fmt.Errorf("enable destination address reporting: %w", err)
	}
	l.wildcard = true
	return nil
}

// Addrs returns the bound listening addresses (nil before Listen), with
// the ports the OS picked for port 0.
func (s *Server) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netip.AddrPort
	for _, l := range s.listeners {
		out = append(out, l.addr)
	}
	return out
}

// Serve binds (unless Listen did) and serves until Shutdown is called or
// ctx ends. Cancelling ctx shuts down gracefully: no new requests, and
// transfers in flight get ShutdownGrace to finish before they are
// cancelled. Serve returns nil after a shutdown, once every transfer has
// ended; it returns an error if binding or reading a socket fails.
//
// Goroutines: one reader per listening socket and one per transfer, all
// ended before Serve returns. ctx's values reach the Source; its
// cancellation does not cut transfers short, the grace period does.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.serving && !s.closed {
		s.mu.Unlock()
		return errors.New("proxy: Serve called twice")
	}
	if err := s.listenLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.serving = true
	s.base, s.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	errc := make(chan error, len(s.listeners))
	for _, l := range s.listeners {
		s.readers.Add(1)
		go func() {
			defer s.readers.Done()
			errc <- s.readLoop(l)
		}()
	}
	s.mu.Unlock()

	var err error
	select {
	case <-ctx.Done():
		if serr := s.Shutdown(context.WithoutCancel(ctx)); serr != nil {
			s.log.Warn("shutdown", "err", serr)
		}
	case <-s.closing:
	case err = <-errc:
		// A reader only ends by itself on a socket error; nil means
		// Shutdown closed its socket.
		if err != nil {
			s.log.Error("listener failed; shutting down", "err", err)
			_ = s.Shutdown(context.WithoutCancel(ctx))
		}
	}
	s.readers.Wait()
	s.xfers.Wait()
	s.socks.close()
	return err
}

// Shutdown stops accepting requests, lets transfers in flight finish
// until ctx ends or ShutdownGrace passes, then cancels the rest (their
// clients get error 0 "Server shutting down") and waits for them to end.
// It returns nil if every transfer finished in time, otherwise an error
// wrapping context.DeadlineExceeded (or ctx's error). It is safe to call
// more than once and from any goroutine.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
		if !s.cfg.SinglePort {
			s.closeListenersLocked()
		}
	}
	cancel := s.cancel
	s.mu.Unlock()
	// Readers are the only callers of xfers.Add, under mu and only while
	// the server is not closed: from here on waiting on xfers is
	// race-free. In single-port mode the transfers' packets go through
	// the listening sockets and their readers, so those are closed only
	// once the transfers have ended.
	defer func() {
		s.mu.Lock()
		s.closeListenersLocked()
		s.mu.Unlock()
		s.readers.Wait()
	}()
	drained := make(chan struct{})
	go func() { // ends when the last transfer does, which the cancel below guarantees
		s.xfers.Wait()
		close(drained)
	}()
	grace := time.NewTimer(s.cfg.ShutdownGrace)
	defer grace.Stop()
	var why error
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		why = ctx.Err()
	case <-grace.C:
		why = context.DeadlineExceeded
	}
	n := s.active.Load()
	if cancel != nil {
		cancel(ErrServerClosed)
		s.wakeTransfers()
	}
	<-drained
	return fmt.Errorf("proxy: shutdown: cancelled %d transfers still running: %w", n, why)
}

// wakeTransfers ends the wait of every transfer blocked on its socket, so
// it sees its cancelled context at once instead of at its next
// retransmission timeout. One sweep at shutdown instead of a
// cancellation hook registered (and removed) by every transfer: a
// transfer that publishes its socket after the sweep finds its context
// already cancelled (transfer.run checks after publishing).
func (s *Server) wakeTransfers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.inflight {
		if c := t.wake.Load(); c != nil {
			c.wake()
		}
	}
}

// TransferProgress is a running transfer, for /status: a firmware load
// to a phone across a slow WAN runs for minutes or hours.
type TransferProgress struct {
	Client  string    `json:"client"`
	File    string    `json:"file"`
	Started time.Time `json:"started"`
	// Bytes the client has acknowledged; Size is the file's, -1 while
	// unknown (the file is still being opened).
	Bytes int64 `json:"bytes_acknowledged"`
	Size  int64 `json:"size"`
	// Ends is the transfer's time limit (tftp.transfer_timeout, or the
	// file's size at tftp.transfer_min_rate).
	Ends time.Time `json:"time_limit"`
}

// LongTransfers returns the transfers that have run for at least min,
// longest first, at most n of them, and how many transfers run in all.
func (s *Server) LongTransfers(min time.Duration, n int) (long []TransferProgress, running int) {
	now := time.Now()
	s.mu.Lock()
	running = len(s.inflight)
	for _, t := range s.inflight {
		if now.Sub(t.start) < min {
			continue
		}
		long = append(long, TransferProgress{
			Client: t.client.String(), File: t.req.Name, Started: t.start,
			Bytes: t.acked.Load(), Size: t.size.Load(), Ends: time.Unix(0, t.limit.Load()),
		})
	}
	s.mu.Unlock()
	slices.SortFunc(long, func(a, b TransferProgress) int { return a.Started.Compare(b.Started) })
	if len(long) > n {
		long = long[:n]
	}
	return long, running
}

func (s *Server) closeListenersLocked() {
	for _, l := range s.listeners {
		l.conn.Close()
	}
}

// readLoop reads requests from one listening socket until it is closed.
// It handles each packet inline (parsing, refusals and starting a
// transfer are all quick) and reuses its own read buffers.
func (s *Server) readLoop(l *listener) error {
	buf := make([]byte, 65536) // any UDP datagram fits: no truncated reads
	var oob []byte
	if l.wildcard {
		if l.v4 {
			oob = ipv4.NewControlMessage(ipv4.FlagDst)
		} else {
			oob = ipv6.NewControlMessage(ipv6.FlagDst)
		}
	}
	var cm4 ipv4.ControlMessage
	var cm6 ipv6.ControlMessage
	for {
		n, oobn, _, from, err := l.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("proxy: read %s: %w", l.addr, err)
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		d := l.destination(oob[:oobn], &cm4, &cm6)
		s.handlePacket(l, buf[:n], from, d)
	}
}

// destination returns the local address a datagram arrived on: the
// bound address, or for a wildcard listener the one its control message
// reports. cm4 and cm6 are reused between calls so that parsing does not
// allocate.
func (l *listener) destination(oob []byte, cm4 *ipv4.ControlMessage, cm6 *ipv6.ControlMessage) dest {
	d := dest{addr: l.addr.Addr()}
	if !l.wildcard || len(oob) == 0 {
		return d
	}
	if l.v4 {
		if cm4.Parse(oob) == nil {
			if a, ok := netip.AddrFromSlice(cm4.Dst); ok {
				d = dest{addr: a.Unmap(), ifIndex: cm4.IfIndex}
			}
		}
		return d
	}
	if cm6.Parse(oob) == nil {
		if a, ok := netip.AddrFromSlice(cm6.Dst); ok {
			d = dest{addr: a, ifIndex: cm6.IfIndex}
			if a.IsLinkLocalUnicast() {
				// A numeric zone: resolving the interface name would
				// cost a netlink dump per request.
				d.addr = a.WithZone(strconv.Itoa(cm6.IfIndex))
			}
		}
	}
	return d
}

// ACL returns the client access list of Config.Allow and Config.Deny,
// for other front ends to apply the same lists.
func (s *Server) ACL() *ACL { return s.acl }

// ACLRejections returns the ctftp_requests_rejected_total series of
// clients the ACL refused, for other front ends to count theirs in.
func (s *Server) ACLRejections() *metrics.Counter { return s.met.rejected[reasonACL] }

// handlePacket decides what a packet at the listening port gets: a
// transfer (RRQ), an error, or silence (ERROR packets, retransmitted RRQs,
// clients refused by the ACL or over their rate).
func (s *Server) handlePacket(l *listener, pkt []byte, from netip.AddrPort, d dest) {
	if s.cfg.SinglePort && s.deliver(l, pkt, from) {
		return
	}
	// Refusals that cost nothing come first and answer nothing: an
	// answer to a spoofed source is a reflection.
	if !s.acl.Permits(from.Addr()) {
		s.drop(from, reasonACL)
		return
	}
	if !s.rates.allow(from.Addr(), time.Now()) {
		s.drop(from, reasonRateLimited)
		return
	}
	op, err := tftpwire.PacketOpcode(pkt)
	if err != nil {
		s.refusePacket(l, from, d, reasonMalformed, err)
		return
	}
	switch op {
	case tftpwire.OpRRQ:
		s.handleRRQ(l, pkt, from, d)
	case tftpwire.OpWRQ:
		req, _ := tftpwire.ParseRequest(pkt)
		s.refuseRequest(l, from, d, req.Filename, reasonWrite, ErrWriteRefused)
	case tftpwire.OpERROR:
		// Never answer an ERROR: two servers would bounce errors forever.
		s.met.rejected[reasonIllegalOpcode].Inc()
		s.log.Debug("packet ignored", "client", from, "opcode", op)
	case tftpwire.OpDATA, tftpwire.OpACK, tftpwire.OpOACK:
		if s.cfg.SinglePort {
			// Here the listening port is every transfer's TID: a
			// transfer packet from a peer without one is RFC 1350's
			// "unknown transfer ID" (a late ACK of a finished transfer,
			// say).
			s.refusePacket(l, from, d, reasonIllegalOpcode, fmt.Errorf("%w: %v from a client without a transfer", errUnknownTID, op))
			return
		}
		s.refusePacket(l, from, d, reasonIllegalOpcode, fmt.Errorf("%w: %v at the listening port", errIllegalOperation, op))
	default:
		s.refusePacket(l, from, d, reasonIllegalOpcode, fmt.Errorf("%w: %v at the listening port", errIllegalOperation, op))
	}
}

// deliver hands a single-port packet to the transfer of its client's
// address and port, if one runs; requests are left to handlePacket (a
// new request from the same port supersedes the transfer there).
func (s *Server) deliver(l *listener, pkt []byte, from netip.AddrPort) bool {
	if op, err := tftpwire.PacketOpcode(pkt); err == nil && (op == tftpwire.OpRRQ || op == tftpwire.OpWRQ) {
		return false
	}
	st := l.demux.lookup(from)
	if st == nil {
		return false
	}
	st.deliver(pkt)
	return true
}

func (s *Server) handleRRQ(l *listener, pkt []byte, from netip.AddrPort, d dest) {
	req, err := tftpwire.ParseRequest(pkt)
	if err != nil {
		s.refuseRequest(l, from, d, req.Filename, reasonMalformed, err)
		return
	}
	name, err := CleanName(req.Filename)
	if err != nil {
		s.refuseRequest(l, from, d, req.Filename, reasonBadName, err)
		return
	}
	neg, err := tftpwire.Negotiate(req, s.limits)
	if err != nil {
		s.refuseRequest(l, from, d, req.Filename, reasonBadOption, err)
		return
	}
	t := s.newTransfer()
	t.s, t.l = s, l
	t.key = transferKey{client: from, name: req.Filename}
	t.client, t.local, t.neg = from, d, neg
	t.req = ctftp.Request{Name: name, Client: from, Mode: req.Mode}
	t.start = time.Now()
	t.reqLen = len(pkt)
	// Before the transfer is in s.inflight, where /status reads them.
	t.size.Store(-1)
	t.limit.Store(t.start.Add(s.cfg.TransferTimeout).UnixNano())
	s.mu.Lock()
	if s.closed {
		// Shutting down (in single-port mode the reader runs until the
		// last transfer is done): new requests go unanswered.
		s.mu.Unlock()
		return
	}
	if old, dup := s.inflight[t.key]; dup && (!old.established.Load() || s.cfg.SinglePort) {
		s.mu.Unlock()
		// The client retransmitted before our first packet reached it;
		// the running transfer answers it. (Once the client has
		// acknowledged anything it knows that transfer's TID, so the same
		// request again is a new one, e.g. a second "get" from a client
		// that keeps its socket. Not in single-port mode, where the
		// new one would take the running one's address and port: a
		// retransmitted request that arrives late must not kill the
		// transfer it asked for.)
		s.met.rejected[reasonDuplicate].Inc()
		s.log.Debug("retransmitted request ignored", "client", from, "file", logName(req.Filename))
		return
	}
	if n := s.cfg.MaxTransfersPerClient; n > 0 && s.perClient[from.Addr()] >= n {
		s.mu.Unlock()
		// Dropped, not answered: the client retransmits once one of its
		// transfers has ended.
		s.drop(from, reasonClientBusy)
		return
	}
	if s.active.Add(1) > int64(s.cfg.MaxTransfers) {
		s.active.Add(-1)
		s.mu.Unlock()
		s.refuseRequest(l, from, d, req.Filename, reasonBusy, ErrBusy)
		return
	}
	s.perClient[from.Addr()]++
	s.inflight[t.key] = t
	s.xfers.Add(1)
	s.mu.Unlock()
	s.met.active.Inc()
	t.ctx, t.cancel = context.WithCancelCause(s.base)
	t.deadline = t.start.Add(s.cfg.TransferTimeout)
	// The closure holds cancel, not t: a timer that fires as the
	// transfer ends cancels only that transfer's context, never the next
	// use of the pooled transfer.
	cancel := t.cancel
	t.timer = time.AfterFunc(s.cfg.TransferTimeout, func() { cancel(ErrTransferTimeout) })
	if s.cfg.SinglePort {
		ctx, cancel := context.WithCancelCause(t.ctx)
		t.ctx = ctx
		st := newSharedTransport(ctx, cancel, l, from, d)
		t.tr = st
		if old := l.demux.register(st); old != nil {
			// The client asked anew from the same port: it has given up
			// on the transfer there, whose packets would now reach the
			// new one's client.
			old.supersede()
		}
	}
	go s.runTransfer(t)
}

// drop counts a packet refused without an answer. It logs at debug level
// only: a flood must not become a flood of log lines.
func (s *Server) drop(from netip.AddrPort, r reason) {
	s.met.rejected[r].Inc()
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.LogAttrs(context.Background(), slog.LevelDebug, "packet dropped",
			slog.String("client", from.String()), slog.String("reason", r.String()))
	}
}

// refusePacket answers a packet that is not a request with an error (and
// does not log it above debug: garbage is not a transfer).
func (s *Server) refusePacket(l *listener, from netip.AddrPort, d dest, r reason, err error) {
	s.met.rejected[r].Inc()
	s.log.Debug("packet refused", "client", from, "reason", r, "err", err)
	l.sendError(err, from, d)
}

// refuseRequest answers a request refused before its transfer started,
// and records it like any transfer.
func (s *Server) refuseRequest(l *listener, from netip.AddrPort, d dest, file string, r reason, err error) {
	s.met.rejected[r].Inc()
	l.sendError(err, from, d)
	s.record(from, file, nil, nil, 0, 0, err)
}

// sendError answers from the listening socket. On a wildcard socket the
// source address is pinned to the one the request arrived on.
func (l *listener) sendError(err error, to netip.AddrPort, d dest) {
	code, msg := WireError(err)
	var b [128]byte
	pkt := tftpwire.AppendError(b[:0], code, msg)
	// A lost error is recovered by the client's retransmission.
	_, _, _ = l.conn.WriteMsgUDPAddrPort(pkt, l.sourceOOB(d), to)
}

// runTransfer runs one transfer and records it. It is the goroutine
// handleRRQ starts; the server's xfers group tracks it.
func (s *Server) runTransfer(t *transfer) {
	defer s.xfers.Done()
	res := t.run()
	t.timer.Stop()
	t.cancel(context.Canceled)

	s.mu.Lock()
	if s.inflight[t.key] == t {
		delete(s.inflight, t.key)
	}
	if n := s.perClient[t.client.Addr()] - 1; n > 0 {
		s.perClient[t.client.Addr()] = n
	} else {
		delete(s.perClient, t.client.Addr())
	}
	s.mu.Unlock()
	s.active.Add(-1)
	s.met.active.Dec()

	dur := time.Since(t.start)
	s.met.duration.Update(dur.Seconds())
	s.record(t.client, t.key.name, res.file, &t.neg, res.bytes, dur, res.err)
	s.releaseTransfer(t)
}

// newTransfer returns a cleared transfer, reused from one that ended: a
// transfer carries its packet buffers, about 1 KiB a request.
func (s *Server) newTransfer() *transfer {
	if t, ok := s.xferPool.Get().(*transfer); ok {
		return t
	}
	return new(transfer)
}

// releaseTransfer hands t back once nothing refers to it: it has left
// inflight and been recorded. Its buffers keep their bytes (each use
// writes before it reads); everything else is cleared.
func (s *Server) releaseTransfer(t *transfer) {
	t.s, t.l, t.tr, t.ctx, t.cancel, t.timer, t.deadline = nil, nil, nil, nil, nil, nil, time.Time{}
	t.key, t.client, t.local = transferKey{}, netip.AddrPort{}, dest{}
	t.neg, t.req, t.start = tftpwire.Negotiation{}, ctftp.Request{}, time.Time{}
	t.reqLen, t.firstLen = 0, 0
	t.acked.Store(0)
	t.established.Store(false)
	t.wake.Store(nil)
	t.conn.conn, t.conn.sock, t.conn.pool, t.conn.armed = nil, nil, nil, time.Time{}
	t.conn.woken.Store(false)
	t.blocks = readerAtBlocks{}
	s.xferPool.Put(t)
}

// record counts a finished (or refused) request and logs its one
// "transfer" line.
func (s *Server) record(client netip.AddrPort, file string, f *ctftp.File, neg *tftpwire.Negotiation, n int64, dur time.Duration, err error) {
	result := resultOf(err)
	s.met.transfer(f, result).Inc()
	if n > 0 {
		s.met.bytes.AddInt64(n)
	}
	ctx := context.Background()
	if !s.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	source, subcluster, backend := "none", "", ""
	if f != nil {
		source, subcluster, backend = string(f.Origin), f.Subcluster, f.Backend
	}
	blksize, window := 0, 0
	if neg != nil {
		blksize, window = neg.BlockSize, neg.WindowSize
	}
	errText := ""
	if err != nil {
		errText = err.Error()
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "transfer",
		slog.String("client", client.String()),
		slog.String("file", logName(file)),
		slog.String("source", source),
		slog.String("subcluster", subcluster),
		slog.String("backend", backend),
		slog.Int64("bytes", n),
		slog.Duration("duration", dur),
		slog.Int("blksize", blksize),
		slog.Int("windowsize", window),
		slog.String("result", result),
		slog.String("err", errText),
	)
}

// logName bounds a client-chosen name before it reaches a log line; the
// log handler escapes whatever bytes it holds.
func logName(s string) string {
	const max = 300
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
