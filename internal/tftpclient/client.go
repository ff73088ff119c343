package tftpclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/ctftp/ctftp/internal/tftpwire"
)

// Options tune one Get. The zero value is a plain RFC 1350 octet read
// with a 1 s timeout and 5 retries.
type Options struct {
	// Mode is "octet" (default) or "netascii"; netascii data is turned
	// back into local line ends (CR LF -> LF, CR NUL -> CR).
	Mode string
	// BlockSize asks for RFC 2348 blksize when not 0 or 512.
	BlockSize int
	// WindowSize asks for RFC 7440 windowsize when > 1.
	WindowSize int
	// TransferSize asks for RFC 2349 tsize.
	TransferSize bool
	// Timeout is the retransmit timeout (default 1s).
	Timeout time.Duration
	// Retries is how many timeouts in a row end the transfer: 0 means
	// the default, 5; a negative value means none (the first timeout
	// ends it).
	Retries int
	// MaxSize, when > 0, aborts a transfer that grows past it (or
	// announces a tsize past it) with ErrTooLarge.
	MaxSize int64
	// LocalAddr, when valid, is the address the client's socket binds
	// (port chosen by the OS). A load generator gives each simulated
	// phone its own loopback address (127.x.y.z), as real phones have
	// their own: otherwise every phone shares one address's ports, and a
	// late answer to a phone's retransmitted request can reach another
	// phone's new socket on a reused port and be taken for its answer.
	LocalAddr netip.Addr
	// Conn, when set, is a socket of the caller's (from Listen) that Get
	// uses instead of opening and closing one of its own: a load
	// generator's phone reads its whole boot through one socket, as
	// opening and closing one per file was most of the generator's own
	// system calls. Get drops whatever an earlier transfer left queued on
	// it first, and a stale packet arriving later is not taken for this
	// transfer's first answer unless it is a DATA 1 from the server's
	// address (possible only when that earlier transfer's last
	// acknowledgement was lost and the server resent a one-block file:
	// not on loopback). A request sent more than once may be served more
	// than once, and such a late transfer's DATA 1 would pass for the
	// next request's answer: after a transfer with Retransmits, take a
	// new socket (loadgen's phones do). One Get at a time per Conn;
	// LocalAddr is then ignored.
	Conn *net.UDPConn
	// FailRefused makes an ICMP port unreachable that answers the
	// request (the server's host is up and its TFTP port closed: the
	// daemon was killed) end the transfer at once with ErrRefused, where
	// it would otherwise wait out every retransmission (ReportRefused;
	// Linux). Such an error after the first answer is ignored: it may
	// concern an earlier TID of the server's that this transfer told off.
	// Only with a socket of Get's own (Conn nil).
	FailRefused bool
	// Announced, when set, is called once with the tsize the server's
	// OACK announced, before the first DATA is written: a caller that
	// passes the file on while it arrives (the gateway's streamed
	// fetches) learns its length first. An error aborts the transfer.
	Announced func(tsize int64) error
}

// Result describes a finished transfer.
type Result struct {
	// Bytes written to the writer.
	Bytes int64
	// TransferSize is the tsize the server announced, or -1.
	TransferSize int64
	// BlockSize and WindowSize are what was negotiated.
	BlockSize, WindowSize int
	// Retransmits counts ACKs (or the request) sent again after a timeout.
	Retransmits int
	// Server is the transfer's server address (its TID).
	Server netip.AddrPort
}

// Errors of Get. A server's ERROR packet comes back as *ServerError.
var (
	// ErrTimeout: the server stopped answering.
	ErrTimeout = errors.New("tftp: server did not answer")
	// ErrTooLarge: the file is larger than Options.MaxSize.
	ErrTooLarge = errors.New("tftp: file larger than the allowed maximum")
	// ErrProtocol: the server broke the protocol (bad OACK, bad packet).
	ErrProtocol = errors.New("tftp: protocol violation by the server")
	// ErrRefused: the server's host answered the request with ICMP port
	// unreachable (Options.FailRefused).
	ErrRefused = errors.New("tftp: server port unreachable (nothing listening)")
)

// ServerError is an ERROR packet from the server.
type ServerError struct {
	Code    uint16
	Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("tftp: server error %d: %s", e.Code, e.Message)
}

// NotFound reports whether the server said "file not found" (code 1).
func (e *ServerError) NotFound() bool { return e.Code == tftpwire.CodeFileNotFound }

// minBuffer is the smallest receive buffer: an ERROR or OACK is never
// longer in practice, and a longer one is cut, not misread.
const minBuffer = 1024

// Get reads name from server into w. ctx bounds the whole transfer.
func Get(ctx context.Context, server netip.AddrPort, name string, w io.Writer, o Options) (Result, error) {
	res := Result{TransferSize: -1, BlockSize: tftpwire.DefaultBlockSize, WindowSize: 1}
	if o.Mode == "" {
		o.Mode = "octet"
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	switch {
	case o.Retries == 0:
		o.Retries = 5
	case o.Retries < 0:
		o.Retries = 0
	}
	server = netip.AddrPortFrom(server.Addr().Unmap(), server.Port())
	conn := o.Conn
	if conn == nil {
		var err error
		if conn, err = Listen(server, o.LocalAddr); err != nil {
			return res, err
		}
		defer conn.Close()
		if o.FailRefused {
			if err := ReportRefused(conn); err != nil {
				return res, fmt.Errorf("tftp: socket: %w", err)
			}
		}
	} else if err := drain(conn); err != nil {
		return res, fmt.Errorf("tftp: reused socket: %w", err)
	}
	// The context bounds the whole transfer: a deadline from it (none
	// otherwise, which also clears one an earlier transfer on a reused
	// socket left) and a wake-up when it is cancelled.
	d, _ := ctx.Deadline()
	conn.SetDeadline(d)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	var opts []tftpwire.Option
	if o.BlockSize != 0 && o.BlockSize != tftpwire.DefaultBlockSize {
		opts = append(opts, tftpwire.Option{Name: tftpwire.OptBlockSize, Value: strconv.Itoa(o.BlockSize)})
	}
	if o.TransferSize {
		opts = append(opts, tftpwire.Option{Name: tftpwire.OptTransferSize, Value: "0"})
	}
	if o.WindowSize > 1 {
		opts = append(opts, tftpwire.Option{Name: tftpwire.OptWindowSize, Value: strconv.Itoa(o.WindowSize)})
	}
	rrq := tftpwire.AppendRequest(nil, tftpwire.OpRRQ, name, o.Mode, opts)

	var out io.Writer = w
	var na *netasciiWriter
	if o.Mode == "netascii" {
		na = &netasciiWriter{w: w}
		out = na
	}
	// The receive buffer holds the largest DATA the transfer may carry
	// plus one byte (so an oversized one is seen as such), and at least
	// what any ERROR or OACK needs: a load generator runs thousands of
	// transfers, and 64 KiB cleared for each was most of its own cost.
	bufLen := max(tftpwire.HeaderSize+max(o.BlockSize, tftpwire.DefaultBlockSize)+1, minBuffer)
	t := &transfer{conn: conn, ctx: ctx, o: o, res: &res, w: out, buf: make([]byte, bufLen)}
	err := t.run(server, rrq, len(opts) > 0)
	if err == nil && na != nil {
		err = na.flush()
	}
	return res, err
}

// Listen opens a client socket for transfers from server: on local when
// valid (port chosen by the OS), else on the server's own address when
// that is loopback (a loopback server is only reachable from loopback:
// binding there keeps the socket off every other interface), else on
// every address. Get opens one per transfer unless Options.Conn hands it
// one from here.
func Listen(server netip.AddrPort, local netip.Addr) (*net.UDPConn, error) {
	network := "udp4"
	if server.Addr().Unmap().Is6() {
		network = "udp6"
	}
	var laddr *net.UDPAddr
	switch {
	case local.IsValid():
		laddr = &net.UDPAddr{IP: local.Unmap().AsSlice()}
	case server.Addr().IsLoopback():
		laddr = &net.UDPAddr{IP: server.Addr().Unmap().AsSlice()}
	}
	conn, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, fmt.Errorf("tftp: socket: %w", err)
	}
	return conn, nil
}

// drain drops the datagrams queued on a reused socket (late duplicates
// of an earlier transfer), and a pending ICMP error, without waiting.
func drain(conn *net.UDPConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var buf [1]byte
	cerr := raw.Read(func(fd uintptr) bool {
		for range 1024 {
			if _, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_DONTWAIT); err == syscall.EAGAIN {
				return true
			}
		}
		return true
	})
	return cerr
}

type transfer struct {
	conn *net.UDPConn
	ctx  context.Context
	o    Options
	res  *Result
	w    io.Writer
	buf  []byte
	ack  [tftpwire.HeaderSize]byte
}

func (t *transfer) ctxErr(err error) error {
	if t.ctx.Err() != nil {
		return fmt.Errorf("tftp: %w", t.ctx.Err())
	}
	return err
}

// run drives the transfer: request, optional OACK, then DATA blocks,
// acknowledging each window (every block in lock-step mode).
func (t *transfer) run(server netip.AddrPort, rrq []byte, askedOptions bool) error {
	var peer netip.AddrPort // the server's TID, learned from its first answer
	last := uint16(0)       // last block received in order
	inWindow := 0
	var pending []byte = rrq // what a timeout sends again
	sendTo := server
	if _, err := t.conn.WriteToUDPAddrPort(rrq, server); err != nil {
		return fmt.Errorf("tftp: send request: %w", err)
	}
	timeouts := 0
	// armed is the read deadline set on conn. Each wait runs until
	// Timeout after it starts; the deadline is re-armed only when the one
	// set for an earlier wait fires first, so a transfer sets it about
	// once per Timeout rather than once per packet.
	var armed time.Time
	for {
		deadline := time.Now().Add(t.o.Timeout)
		if armed.IsZero() || armed.After(deadline) {
			t.conn.SetReadDeadline(deadline)
			armed = deadline
		}
		n, from, err := t.conn.ReadFromUDPAddrPort(t.buf[:])
		for err != nil && t.ctx.Err() == nil && errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(deadline) {
			// An earlier wait's deadline: this one has time left.
			t.conn.SetReadDeadline(deadline)
			armed = deadline
			n, from, err = t.conn.ReadFromUDPAddrPort(t.buf[:])
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && t.ctx.Err() == nil {
				timeouts++
				if timeouts > t.o.Retries {
					return ErrTimeout
				}
				t.res.Retransmits++
				if _, err := t.conn.WriteToUDPAddrPort(pending, sendTo); err != nil {
					return fmt.Errorf("tftp: resend: %w", err)
				}
				inWindow = 0
				continue
			}
			if errors.Is(err, syscall.ECONNREFUSED) && t.ctx.Err() == nil {
				if !peer.IsValid() && t.o.FailRefused && t.o.Conn == nil {
					return ErrRefused
				}
				continue // about a datagram to a TID no longer listening
			}
			return t.ctxErr(fmt.Errorf("tftp: read: %w", err))
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if from.Addr() != server.Addr() {
			continue // not our server at all
		}
		if peer.IsValid() && from != peer {
			// RFC 1350: a packet from another TID gets ERROR 5 and does
			// not disturb the transfer.
			t.conn.WriteToUDPAddrPort(tftpwire.AppendError(nil, tftpwire.CodeUnknownTID, "unknown transfer ID"), from)
			continue
		}
		pkt := t.buf[:n]
		op, err := tftpwire.PacketOpcode(pkt)
		if err != nil {
			continue
		}
		switch op {
		case tftpwire.OpERROR:
			code, msg, err := tftpwire.ParseError(pkt)
			if err != nil {
				return fmt.Errorf("%w: malformed ERROR packet", ErrProtocol)
			}
			return &ServerError{Code: code, Message: msg}
		case tftpwire.OpOACK:
			if peer.IsValid() {
				continue // a duplicate OACK; our ACK 0 is on its way
			}
			if !askedOptions {
				return t.abort(from, fmt.Errorf("%w: OACK to a request without options", ErrProtocol))
			}
			if err := t.applyOACK(pkt); err != nil {
				return t.abort(from, err)
			}
			if t.o.Announced != nil && t.res.TransferSize >= 0 {
				if err := t.o.Announced(t.res.TransferSize); err != nil {
					return t.abort(from, err)
				}
			}
			peer, sendTo = from, from
			t.res.Server = from
			pending = tftpwire.AppendACK(t.ack[:0], 0)
			timeouts = 0
			if _, err := t.conn.WriteToUDPAddrPort(pending, peer); err != nil {
				return fmt.Errorf("tftp: send ACK: %w", err)
			}
		case tftpwire.OpDATA:
			block, payload, err := tftpwire.ParseData(pkt)
			if err != nil {
				continue
			}
			if !peer.IsValid() && block != 1 {
				// Not an answer to this request (the first one is DATA 1,
				// an OACK or an ERROR): a late duplicate from an earlier
				// transfer on a reused socket.
				continue
			}
			if !peer.IsValid() {
				// The server ignored our options: RFC 1350 defaults.
				peer, sendTo = from, from
				t.res.Server = from
				t.res.BlockSize, t.res.WindowSize = tftpwire.DefaultBlockSize, 1
			}
			if len(payload) > t.res.BlockSize {
				return t.abort(peer, fmt.Errorf("%w: DATA of %d bytes with blksize %d", ErrProtocol, len(payload), t.res.BlockSize))
			}
			if block != last+1 {
				// Out of order or a duplicate: acknowledge the last block
				// received in order so the server resends from there
				// (RFC 7440 section 4), once per window.
				if inWindow != 0 || block == last {
					pending = tftpwire.AppendACK(t.ack[:0], last)
					t.conn.WriteToUDPAddrPort(pending, peer)
					inWindow = 0
				}
				continue
			}
			timeouts = 0
			if t.o.MaxSize > 0 && t.res.Bytes+int64(len(payload)) > t.o.MaxSize {
				return t.abort(peer, ErrTooLarge)
			}
			if _, err := t.w.Write(payload); err != nil {
				return t.abort(peer, fmt.Errorf("tftp: write: %w", err))
			}
			t.res.Bytes += int64(len(payload))
			last = block
			inWindow++
			final := len(payload) < t.res.BlockSize
			if final || inWindow >= t.res.WindowSize {
				pending = tftpwire.AppendACK(t.ack[:0], last)
				inWindow = 0
				if _, err := t.conn.WriteToUDPAddrPort(pending, peer); err != nil {
					return fmt.Errorf("tftp: send ACK: %w", err)
				}
			}
			if final {
				return nil
			}
		default:
			return t.abort(from, fmt.Errorf("%w: unexpected %s", ErrProtocol, op))
		}
	}
}

// applyOACK checks the server's answer: it may only acknowledge options
// we asked for, with values no larger than asked.
func (t *transfer) applyOACK(pkt []byte) error {
	opts, err := tftpwire.ParseOACK(pkt)
	if err != nil {
		return fmt.Errorf("%w: malformed OACK", ErrProtocol)
	}
	for _, op := range opts {
		v, err := strconv.ParseInt(op.Value, 10, 64)
		if err != nil || v < 0 {
			return fmt.Errorf("%w: OACK %s=%q", ErrProtocol, op.Name, op.Value)
		}
		switch op.Name {
		case tftpwire.OptBlockSize:
			if v < 8 || (t.o.BlockSize != 0 && v > int64(t.o.BlockSize)) {
				return fmt.Errorf("%w: OACK blksize %d, asked %d", ErrProtocol, v, t.o.BlockSize)
			}
			t.res.BlockSize = int(v)
		case tftpwire.OptWindowSize:
			if v < 1 || v > int64(max(t.o.WindowSize, 1)) {
				return fmt.Errorf("%w: OACK windowsize %d, asked %d", ErrProtocol, v, t.o.WindowSize)
			}
			t.res.WindowSize = int(v)
		case tftpwire.OptTransferSize:
			t.res.TransferSize = v
			if t.o.MaxSize > 0 && v > t.o.MaxSize {
				return ErrTooLarge
			}
		case tftpwire.OptTimeout:
			// The server confirmed a timeout we did not ask for; harmless.
		default:
			return fmt.Errorf("%w: OACK has unrequested option %q", ErrProtocol, op.Name)
		}
	}
	return nil
}

// abort tells the server why we stop (ERROR 8 for a bad OACK, else 0).
func (t *transfer) abort(to netip.AddrPort, err error) error {
	code := tftpwire.CodeNotDefined
	msg := "transfer aborted by client"
	if errors.Is(err, ErrProtocol) {
		code, msg = tftpwire.CodeOptionRefused, "bad option acknowledgment"
	}
	if errors.Is(err, ErrTooLarge) {
		msg = "file too large"
	}
	t.conn.WriteToUDPAddrPort(tftpwire.AppendError(nil, code, msg), to)
	return err
}

// netasciiWriter undoes netascii: CR LF -> LF, CR NUL -> CR, keeping a CR
// that ends one block until the next says what it was.
type netasciiWriter struct {
	w     io.Writer
	cr    bool
	chunk []byte
}

func (n *netasciiWriter) Write(p []byte) (int, error) {
	n.chunk = n.chunk[:0]
	for _, c := range p {
		if n.cr {
			n.cr = false
			switch c {
			case '\n':
				n.chunk = append(n.chunk, '\n')
				continue
			case 0:
				n.chunk = append(n.chunk, '\r')
				continue
			default:
				n.chunk = append(n.chunk, '\r')
			}
		}
		if c == '\r' {
			n.cr = true
			continue
		}
		n.chunk = append(n.chunk, c)
	}
	if _, err := n.w.Write(n.chunk); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (n *netasciiWriter) flush() error {
	if n.cr {
		n.cr = false
		_, err := n.w.Write([]byte{'\r'})
		return err
	}
	return nil
}
