package proxy

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Single-port mode (Config.SinglePort): every transfer uses the listening
// socket. Its reader hands each packet from a client address:port with a
// transfer running to that transfer (demux below); everything else is a
// new request or refused as usual. The transfer engine is the same as in
// the default mode: it sees a sharedTransport instead of a connTransport.

// errSuperseded is the cause a transfer is cancelled with when a new
// request arrives from its client's address and port: the client has
// moved on, and the port now belongs to the new transfer, so the old one
// must fall silent.
var errSuperseded = errors.New("proxy: superseded by a new request from the same client address and port")

// demux maps client address:port to the transfer that serves it on one
// listening socket. Safe for concurrent use.
type demux struct {
	mu    sync.Mutex
	ports map[netip.AddrPort]*sharedTransport
}

// lookup returns the transport of from's running transfer, or nil.
func (d *demux) lookup(from netip.AddrPort) *sharedTransport {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ports[from]
}

// register makes st the receiver of its client's packets and returns the
// transport it replaces (nil if none).
func (d *demux) register(st *sharedTransport) *sharedTransport {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ports == nil {
		d.ports = make(map[netip.AddrPort]*sharedTransport)
	}
	old := d.ports[st.client]
	d.ports[st.client] = st
	return old
}

func (d *demux) unregister(st *sharedTransport) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ports[st.client] == st {
		delete(d.ports, st.client)
	}
}

// len is how many transfers the socket carries.
func (d *demux) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ports)
}

// inboxSize is how many packets may wait for a transfer; more are
// dropped, as a socket buffer would. A transfer reads an ACK per window,
// so a few slots absorb a client's retransmissions.
const inboxSize = 4

// inPacket is a copy of a packet for a transfer: an ACK, or an ERROR
// whose message is cut at 124 bytes (it only reaches the log).
type inPacket struct {
	n int
	b [128]byte
}

// sharedTransport is one transfer's share of the listening socket.
type sharedTransport struct {
	l      *listener
	client netip.AddrPort
	oob    []byte // source address pinning on a wildcard socket, built once
	ctx    context.Context
	cancel context.CancelCauseFunc
	// superseded is set (before cancel) when another request took the
	// client's address and port: from then on nothing is sent.
	superseded atomic.Bool

	inbox chan inPacket
	timer *time.Timer
	last  inPacket // the packet recv returned, valid until the next call
}

func newSharedTransport(ctx context.Context, cancel context.CancelCauseFunc, l *listener, client netip.AddrPort, d dest) *sharedTransport {
	return &sharedTransport{
		l:      l,
		client: client,
		oob:    l.sourceOOB(d),
		ctx:    ctx,
		cancel: cancel,
		inbox:  make(chan inPacket, inboxSize),
	}
}

// deliver hands pkt to the transfer without blocking the reader.
func (st *sharedTransport) deliver(pkt []byte) {
	var p inPacket
	p.n = copy(p.b[:], pkt)
	select {
	case st.inbox <- p:
	default:
	}
}

// supersede silences and cancels the transfer.
func (st *sharedTransport) supersede() {
	st.superseded.Store(true)
	st.cancel(errSuperseded)
}

func (st *sharedTransport) send(pkt []byte) error {
	if st.superseded.Load() {
		return errSuperseded
	}
	_, _, err := st.l.conn.WriteMsgUDPAddrPort(pkt, st.oob, st.client)
	return err
}

func (st *sharedTransport) recv(deadline time.Time) ([]byte, error) {
	select {
	case st.last = <-st.inbox:
		return st.last.b[:st.last.n], nil
	default:
	}
	wait := time.Until(deadline)
	if wait <= 0 {
		return nil, os.ErrDeadlineExceeded
	}
	// One timer per transfer, reset per wait (Go 1.23 timers: Reset and
	// Stop leave no stale tick in the channel).
	if st.timer == nil {
		st.timer = time.NewTimer(wait)
	} else {
		st.timer.Reset(wait)
	}
	select {
	case st.last = <-st.inbox:
		st.timer.Stop()
		return st.last.b[:st.last.n], nil
	case <-st.timer.C:
		return nil, os.ErrDeadlineExceeded
	case <-st.ctx.Done():
		st.timer.Stop()
		return nil, context.Cause(st.ctx)
	}
}

func (st *sharedTransport) close() {
	st.l.demux.unregister(st)
	if st.timer != nil {
		st.timer.Stop()
	}
}

// sourceOOB is the control message that pins a reply's source address on
// a wildcard socket to d (the address the client talked to); nil
// otherwise.
func (l *listener) sourceOOB(d dest) []byte {
	if !l.wildcard || !d.addr.IsValid() {
		return nil
	}
	if l.v4 {
		return (&ipv4.ControlMessage{Src: d.addr.AsSlice()}).Marshal()
	}
	return (&ipv6.ControlMessage{Src: d.addr.AsSlice(), IfIndex: d.ifIndex}).Marshal()
}
