package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftpwire"
)

// transfer is one RRQ being served. Only its own goroutine touches it.
type transfer struct {
	s      *Server
	l      *listener
	key    transferKey
	client netip.AddrPort
	local  dest
	neg    tftpwire.Negotiation
	req    ctftp.Request
	start  time.Time
	// reqLen is the request's size and firstLen that of the first packet
	// sent (OACK or DATA 1), for maxAmplification.
	reqLen, firstLen int
	// established is set once the client acknowledged a packet: from then
	// on it knows our TID and will not retransmit its RRQ, so the same
	// request again is a new transfer, not a duplicate.
	established atomic.Bool

	// tr carries the packets: a connected socket of the transfer's own
	// (connTransport) or the listening socket shared through the
	// single-port demultiplexer.
	tr transport
	// ctx is the transfer's context (its time limit, the server's
	// shutdown; in single-port mode also a newer request superseding
	// it); cancel ends it. timer ends it with ErrTransferTimeout at
	// deadline: a timer rather than a context deadline, because the
	// limit grows once the file's size is known (extend).
	ctx      context.Context
	cancel   context.CancelCauseFunc
	timer    *time.Timer
	deadline time.Time
	// For /status, read under Server.mu while the transfer runs: the
	// bytes the client acknowledged so far, the file's size (-1 while
	// unknown) and deadline in Unix nanoseconds.
	acked, size, limit atomic.Int64
	// conn is tr when the transfer has a socket of its own (kept here so
	// a transfer allocates no transport); wake publishes it to
	// Server.wakeTransfers, which runs on another goroutine.
	conn connTransport
	wake atomic.Pointer[connTransport]
	// blocks reads an io.ReaderAt body (newBlocks); kept here so a
	// transfer allocates no reader of its own.
	blocks readerAtBlocks
	// obuf holds the OACK (kept for retransmission), ebuf builds ERROR
	// packets.
	obuf [128]byte
	ebuf [128]byte
}

type transferResult struct {
	file  *ctftp.File
	bytes int64 // file bytes the client acknowledged
	err   error
}

// errAckTimeout is internal: one wait for an ACK ran out; the caller
// retransmits or gives up with ErrClientGone.
var errAckTimeout = errors.New("proxy: no acknowledgement before the retransmission timeout")

// run serves the transfer. Unless the single-port demultiplexer already
// gave it a transport, it opens a socket of its own (the server's TID),
// bound to the address the request arrived on, so every packet the
// client sees comes from the address it asked, and connected to the
// client, so that the kernel keeps strangers' packets away and reports an
// ICMP port unreachable from a vanished client on the next read.
func (t *transfer) run() (res transferResult) {
	ctx := t.ctx
	if t.tr == nil {
		if err := dialTransport(&t.conn, &t.s.socks, t.l.v4, t.local.addr, t.client); err != nil {
			res.err = fmt.Errorf("proxy: transfer socket: %w", err)
			t.l.sendError(res.err, t.client, t.local)
			return res
		}
		t.tr = &t.conn
		// Cancellation must wake a blocked read. The TransferTimeout is
		// a deadline awaitAck never waits past; a shutdown wakes every
		// published socket (Server.wakeTransfers) after cancelling, and
		// awaitAck checks ctx before each read, so a sweep that ran
		// before this store is seen there.
		t.wake.Store(&t.conn)
	}
	defer t.tr.close()

	f, err := t.s.src.Open(ctx, t.req)
	if err == nil && f == nil {
		err = errors.New("proxy: source returned neither a file nor an error")
	}
	if err != nil {
		// No name here: the transfer's log line carries it as `file`,
		// and a source's own error names what it tried.
		res.err = t.fail(fmt.Errorf("proxy: open: %w", err))
		return res
	}
	res.file = f
	t.size.Store(f.Size)
	t.extend(f.Size)
	defer f.Body.Close()
	defer closeWhenDone(ctx, f)()
	res.bytes, res.err = t.send(f)
	return res
}

// extend gives the transfer the time its file's size needs at
// TransferMinRate when that is longer than TransferTimeout (a size < 0 is
// unknown: no more time). Called once, after Open; a timer that already
// fired keeps the transfer's end.
func (t *transfer) extend(size int64) {
	rate := int64(t.s.cfg.TransferMinRate)
	if size <= 0 || rate <= 0 {
		return
	}
	secs := min(size/rate+1, 1<<32) // 136 years: no Duration overflow
	need := time.Duration(secs) * time.Second
	if need <= t.s.cfg.TransferTimeout || !t.timer.Stop() {
		return
	}
	t.deadline = t.start.Add(need)
	t.limit.Store(t.deadline.UnixNano())
	t.timer.Reset(time.Until(t.deadline))
}

// closeWhenDone closes f's Body when ctx ends if its reads may wait for
// bytes still on their way from a backend (a ctftp.StreamingBody), so
// that the end of whoever reads it (a transfer's timeout, a shutdown, an
// HTTP client gone) ends the wait too. Call the result when done reading.
func closeWhenDone(ctx context.Context, f *ctftp.File) (stop func() bool) {
	if _, ok := f.Body.(ctftp.StreamingBody); !ok {
		return func() bool { return false }
	}
	return context.AfterFunc(ctx, func() { f.Body.Close() })
}

// fail tells the client why the transfer ends and returns err, joined
// with the context's cause when the context ended (a Source usually
// reports a cancelled open as plain context.Canceled).
func (t *transfer) fail(err error) error {
	if t.ctx.Err() != nil && !errors.Is(err, context.Cause(t.ctx)) {
		err = fmt.Errorf("%w: %w", context.Cause(t.ctx), err)
	}
	t.sendError(err)
	return err
}

// sendError tells the client why the transfer ends, unless there is no
// one to tell: a client that is unreachable, or one that never
// acknowledged anything (it may not exist: a spoofed request must draw
// as few bytes as possible, and a real client that lost everything
// retransmits its request rather than give up on an error).
func (t *transfer) sendError(err error) {
	if errors.Is(err, ErrClientUnreachable) || errors.Is(err, ErrNoAcknowledgement) || errors.Is(err, errSuperseded) {
		return
	}
	code, msg := WireError(err)
	// A lost error is recovered by the peer's own timeout.
	_ = t.tr.send(tftpwire.AppendError(t.ebuf[:0], code, msg))
}

// send negotiates (OACK) and then sends the file. It returns how many
// file bytes the client acknowledged.
func (t *transfer) send(f *ctftp.File) (int64, error) {
	tsize := int64(-1)
	if t.neg.TransferSize {
		var err error
		if tsize, err = sizeOf(f); err != nil {
			return 0, t.fail(err)
		}
	}
	if t.neg.HasOACK(tsize) {
		pkt := t.neg.AppendOACK(t.obuf[:0], tsize)
		// ACK 0 acknowledges the OACK: block 0 is the OACK's place.
		if err := t.exchange(pkt, 0); err != nil {
			return 0, err
		}
	}

	var body io.Reader = f.Body
	if t.req.Mode == tftpwire.ModeNetASCII {
		body = tftpwire.NetASCIIReader(f.Body)
	}
	blocks := t.newBlocks(body)
	defer blocks.release()
	return t.sendBlocks(blocks)
}

// sizeOf returns the file's size for tsize: File.Size when known, else a
// seekable Body's length, else -1 (tsize is then left out of the OACK).
func sizeOf(f *ctftp.File) (int64, error) {
	if f.Size >= 0 {
		return f.Size, nil
	}
	sk, ok := f.Body.(io.Seeker)
	if !ok {
		return -1, nil
	}
	end, err := sk.Seek(0, io.SeekEnd)
	if err != nil {
		return -1, nil // not really seekable; the body is still unread
	}
	if _, err := sk.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("proxy: rewind after measuring size: %w", err)
	}
	return end, nil
}

// exchange sends pkt until the client acknowledges block (wire number),
// retransmitting on timeout.
func (t *transfer) exchange(pkt []byte, block uint16) error {
	for attempt := 0; ; attempt++ {
		if err := t.write(pkt); err != nil {
			return err
		}
		_, err := t.awaitAck(time.Now().Add(t.interval(attempt)), block-1, 1)
		if !errors.Is(err, errAckTimeout) {
			return err
		}
		if attempt >= t.retries() {
			return t.fail(t.silence())
		}
		t.s.met.resends.Inc()
	}
}

// sendBlocks is the data phase: lock-step when the window is 1, RFC 7440
// windows otherwise. Block numbers are tracked as absolute 64-bit counts
// and put on the wire modulo 2^16, so files past block 65535 wrap to 0 as
// tftp-hpa, pin/tftp and most clients expect.
//
// Duplicate ACKs (and any ACK outside the window) are ignored and do not
// extend the deadline, so neither Sorcerer's Apprentice (RFC 1123
// 4.2.3.1) nor a chatty peer can make a transfer live forever. An ACK in
// the middle of the window means the client lost what follows (RFC 7440
// section 4): the window restarts after it at once.
func (t *transfer) sendBlocks(blocks blockSource) (int64, error) {
	window := uint64(t.neg.WindowSize)
	var (
		acked    uint64 // last block acknowledged
		next     uint64 = 1
		final    uint64 // last block of the file, once read
		finalLen int    // its payload length
		attempt  int
	)
	acknowledged := func() int64 {
		if final != 0 && acked == final {
			return int64(final-1)*int64(t.neg.BlockSize) + int64(finalLen)
		}
		return int64(acked) * int64(t.neg.BlockSize)
	}
	for {
		for next <= acked+window && (final == 0 || next <= final) {
			pkt, last, err := blocks.packet(next)
			if err != nil {
				return acknowledged(), t.fail(fmt.Errorf("proxy: read: %w", err))
			}
			if last {
				final, finalLen = next, len(pkt)-tftpwire.HeaderSize
			}
			if err := t.write(pkt); err != nil {
				return acknowledged(), err
			}
			next++
		}
		n, err := t.awaitAck(time.Now().Add(t.interval(attempt)), uint16(acked), int(next-1-acked))
		switch {
		case errors.Is(err, errAckTimeout):
			attempt++
			if attempt > t.retries() {
				return acknowledged(), t.fail(t.silence())
			}
			t.s.met.resends.Add(int(next - 1 - acked))
			next = acked + 1
		case err != nil:
			return acknowledged(), err
		default:
			acked += uint64(n)
			attempt = 0
			t.acked.Store(acknowledged())
			if final != 0 && acked == final {
				return acknowledged(), nil
			}
			next = acked + 1
		}
	}
}

// preAckRetries bounds what a request nobody acknowledges can draw: the
// first packet and one retransmission, then the transfer ends in silence.
// A spoofed RRQ thus reflects at most two DATA packets (2 x 516 bytes
// against a 20-byte "ITLFile.tlv" request: a factor of 51.6) or two OACKs.
// A real client that lost both retransmits its RRQ, which starts afresh.
const preAckRetries = 1

// maxAmplification caps the bytes sent before the first acknowledgement
// at this many times the request's size: a request shorter than 19 bytes
// (a name of a few characters) gets no retransmission of a full first
// DATA packet, so no request, however short, draws more than 55 times its
// size (the shortest possible RRQ, 10 bytes, draws one 516-byte packet).
const maxAmplification = 55

// retries is how many times the packet in flight may be sent again:
// Config.Retries once the client has acknowledged something; before, at
// most preAckRetries and only within maxAmplification (the client may not
// exist: the request may be spoofed).
func (t *transfer) retries() int {
	if t.established.Load() {
		return t.s.cfg.Retries
	}
	sends := maxAmplification * t.reqLen / max(t.firstLen, 1)
	return max(min(t.s.cfg.Retries, preAckRetries, sends-1), 0)
}

// silence is the error of a client that stopped answering: ErrClientGone,
// or ErrNoAcknowledgement if it never answered at all (counted: spoofed
// requests and vanished clients whose ICMP went missing end this way).
func (t *transfer) silence() error {
	if t.established.Load() {
		return ErrClientGone
	}
	t.s.met.unacknowledged.Inc()
	return ErrNoAcknowledgement
}

// interval is the retransmission timeout for the given retry: the
// client's RFC 2349 timeout as asked, or Config.Timeout doubling up to
// four times itself (the adaptive back-off of RFC 1123 4.2.3.2).
func (t *transfer) interval(attempt int) time.Duration {
	if t.neg.Timeout > 0 {
		return t.neg.Timeout
	}
	return t.s.cfg.Timeout << min(attempt, 2)
}

func (t *transfer) write(pkt []byte) error {
	if t.firstLen == 0 {
		t.firstLen = len(pkt)
	}
	if err := t.tr.send(pkt); err != nil {
		if t.ctx.Err() != nil {
			return context.Cause(t.ctx)
		}
		return t.transportError("send", err)
	}
	return nil
}

// transportError wraps a socket error; an ICMP unreachable (reported by
// a connected socket as ECONNREFUSED, EHOSTUNREACH or ENETUNREACH) ends
// the transfer at once as ErrClientUnreachable, and is counted.
func (t *transfer) transportError(op string, err error) error {
	if unreachable(err) {
		t.s.met.unreachable.Inc()
		return fmt.Errorf("%w: %s: %w", ErrClientUnreachable, op, err)
	}
	return fmt.Errorf("proxy: %s: %w", op, err)
}

func unreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH)
}

// awaitAck waits until deadline for an ACK of one of the outstanding
// blocks after lastAcked (wire numbers, so the comparison wraps) and
// returns how many blocks it acknowledges. Only the client's packets
// reach it (the connected socket, or the demultiplexer, keeps strangers
// out); an ERROR from the client ends the transfer (and is not
// answered).
func (t *transfer) awaitAck(deadline time.Time, lastAcked uint16, outstanding int) (int, error) {
	end := t.deadline
	if end.Before(deadline) {
		deadline = end
	}
	for {
		if t.ctx.Err() != nil {
			err := context.Cause(t.ctx)
			t.sendError(err)
			return 0, err
		}
		pkt, err := t.tr.recv(deadline)
		if err != nil {
			if t.ctx.Err() != nil {
				continue // reported at the top of the loop
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if !time.Now().Before(end) {
					// The transfer's time is up; its context's own
					// timer may fire a moment after the read deadline.
					t.sendError(ErrTransferTimeout)
					return 0, ErrTransferTimeout
				}
				return 0, errAckTimeout
			}
			return 0, t.transportError("receive", err)
		}
		op, err := tftpwire.PacketOpcode(pkt)
		if err != nil {
			continue
		}
		switch op {
		case tftpwire.OpACK:
			block, err := tftpwire.ParseACK(pkt)
			if err != nil {
				continue
			}
			if d := int(block - lastAcked); d >= 1 && d <= outstanding {
				t.established.Store(true)
				return d, nil
			}
		case tftpwire.OpERROR:
			code, msg, _ := tftpwire.ParseError(pkt)
			return 0, fmt.Errorf("%w: error %d %q", ErrClientAbort, code, logName(msg))
		}
		// Anything else from the client (a DATA, a stray RRQ) is ignored:
		// answering could abort a transfer that is otherwise fine.
	}
}
