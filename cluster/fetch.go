package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pin/tftp/v3"
)

// attempt is what one fetch or probe of one backend is allowed.
type attempt struct {
	// timeout is the per-packet wait before a retransmission.
	timeout time.Duration
	// retries is how many retransmissions follow the first send.
	retries int
	// blockSize is the blksize asked for; 512 asks for none.
	blockSize int
	// maxSize bounds the file.
	maxSize int64
}

// budget is the longest an attempt can wait for a silent backend.
func (a attempt) budget() time.Duration { return a.timeout * time.Duration(a.retries+1) }

// fetcher talks TFTP to one backend address. The real one is tftpFetcher;
// tests substitute fakes to drive the Set without sockets. Implementations
// must be safe for concurrent use.
type fetcher interface {
	// fetch reads the whole file name from addr. Errors are classified:
	// *TFTPError for an ERROR packet, ErrBackendUnavailable for no or a
	// broken answer, ErrTooLarge, or ctx's error.
	fetch(ctx context.Context, addr netip.AddrPort, name string, a attempt) ([]byte, error)
	// probe asks addr for name and returns at the first answer: nil or a
	// *TFTPError mean the backend is alive.
	probe(ctx context.Context, addr netip.AddrPort, name string, a attempt) error
}

// tftpFetcher fetches with the pin/tftp client and probes with a raw
// socket. It has no state; it is safe for concurrent use.
type tftpFetcher struct{}

var _ fetcher = tftpFetcher{}

// fetch holds the whole file in memory instead of streaming it: failover
// stays possible until the last byte (a stream that breaks half-way
// would reach the phone as a broken transfer), the tsize the backend
// announced can be checked before anything is passed on, and the caller
// gets a seekable body, so the front end can answer tsize itself. The
// files a phone boots from are a few KB; max_file_size bounds the rest.
//
// pin/tftp's client takes no context. ctx is honoured three ways: the
// per-packet timeout is shortened so every retransmission fits before
// ctx's deadline, the writer fails as soon as ctx is done (which aborts
// the transfer at the next block), and an expired ctx is checked before
// the request is sent. A blocked read still finishes its own timeout.
func (tftpFetcher) fetch(ctx context.Context, addr netip.AddrPort, name string, a attempt) ([]byte, error) {
	c, err := newClient(addr, a)
	if err != nil {
		return nil, err
	}
	c.RequestTSize(true)
	if a.blockSize > minBlockSize {
		c.SetBlockSize(a.blockSize)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, classifyClientError(err)
	}
	// Size must be read before WriteTo: pin/tftp forgets the options once
	// the transfer starts.
	announced, hasSize := wt.(tftp.IncomingTransfer).Size()
	// pin/tftp reports the "0" it asked with when the backend ignored the
	// option, so a tsize of 0 says nothing; anything else is a promise.
	hasSize = hasSize && announced > 0
	w := &boundedBuffer{ctx: ctx, max: a.maxSize}
	if hasSize {
		if announced > a.maxSize {
			w.max = 0 // refuse the first block; WriteTo then closes the transfer
		} else {
			w.b = make([]byte, 0, min(announced, 1<<20))
		}
	}
	if _, err := wt.WriteTo(w); err != nil {
		return nil, classifyClientError(err)
	}
	if hasSize && int64(len(w.b)) != announced {
		return nil, fmt.Errorf("%w: received %d bytes, backend announced tsize %d", ErrBackendUnavailable, len(w.b), announced)
	}
	return w.b, nil
}

// newClient builds a pin/tftp client for addr. Retransmissions follow the
// timeout directly, without pin/tftp's default random 0-1 s sleep: the
// timeout already spaces them, and a phone waiting on this fetch has a
// budget of a few seconds in all.
func newClient(addr netip.AddrPort, a attempt) (*tftp.Client, error) {
	c, err := tftp.NewClient(addr.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBackendUnavailable, err)
	}
	if ip, ok := localBind(addr); ok {
		if err := c.SetLocalAddr(ip.String()); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBackendUnavailable, err)
		}
	}
	c.SetTimeout(a.timeout)
	c.SetRetries(a.retries)
	c.SetBackoff(func(int) time.Duration { return 0 })
	return c, nil
}

// localBind picks the local address to bind for talking to addr: a
// loopback backend is reached from the same loopback address, so no
// socket for it listens on every interface; anything else lets the
// kernel choose.
func localBind(addr netip.AddrPort) (netip.Addr, bool) {
	a := addr.Addr().Unmap()
	if a.IsLoopback() {
		return a.WithZone(""), true
	}
	return netip.Addr{}, false
}

// boundedBuffer collects a transfer, failing once it would exceed max or
// once ctx is done. pin/tftp answers a failing writer by sending the
// backend an ERROR and closing its socket, so no transfer is left behind.
type boundedBuffer struct {
	ctx context.Context
	b   []byte
	max int64
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	if int64(len(w.b))+int64(len(p)) > w.max {
		return 0, ErrTooLarge
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

// pinErrorPrefix and pinErrorSep frame the only text pin/tftp v3.2.0's
// client gives for an ERROR packet (receiver.go, receiveDatagram):
//
//	fmt.Errorf("code: %d, message: %s", p.code(), p.message())
//
// where message is every byte after the code, terminating NUL included.
const (
	pinErrorPrefix = "code: "
	pinErrorSep    = ", message: "
)

// classifyClientError turns an error from pin/tftp's client into one of
// this package's. It is the only code that reads pin/tftp's error text:
// the client has no typed error for a backend's ERROR packet, so its
// "code: N, message: M" string is parsed here and nowhere else.
//
//   - nil stays nil;
//   - errors this package's writer returned (ctx's error, ErrTooLarge)
//     come back unchanged, as pin/tftp returns a writer's error as is;
//   - a net.Error (timeouts, socket errors) is ErrBackendUnavailable;
//   - "code: N, message: M" is a *TFTPError (code 1 reads as
//     ctftp.ErrNotFound, others as ErrRefused);
//   - anything else (a malformed packet: "short packet", "unknown
//     opcode: 9", ...) is ErrBackendUnavailable.
func classifyClientError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTooLarge) {
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return fmt.Errorf("%w: no answer: %w", ErrBackendUnavailable, err)
		}
		return fmt.Errorf("%w: %w", ErrBackendUnavailable, err)
	}
	if te, ok := parseErrorText(err.Error()); ok {
		return te
	}
	return fmt.Errorf("%w: malformed answer: %w", ErrBackendUnavailable, err)
}

// parseErrorText reads pin/tftp's "code: N, message: M" text.
func parseErrorText(s string) (*TFTPError, bool) {
	rest, ok := strings.CutPrefix(s, pinErrorPrefix)
	if !ok {
		return nil, false
	}
	code, msg, ok := strings.Cut(rest, pinErrorSep)
	if !ok {
		return nil, false
	}
	n, err := strconv.ParseUint(code, 10, 16)
	if err != nil {
		return nil, false
	}
	return &TFTPError{Code: uint16(n), Message: cleanMessage(msg)}, true
}

// cleanMessage keeps a backend's error text fit for a log line: cut at
// the packet's NUL terminator, control bytes replaced, length bounded.
func cleanMessage(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

// TFTP opcodes (RFC 1350, RFC 2347) the probe reads and writes.
const (
	opRRQ   = 1
	opDATA  = 3
	opERROR = 5
	opOACK  = 6
)

// probe sends one RRQ (no options, so the first answer is DATA 1 or an
// ERROR) and waits for the first packet from the backend's address.
// DATA, OACK and ERROR all prove it alive. It uses a raw socket rather
// than pin/tftp's client because it must stop at the first packet and
// must be cancellable: closing the socket when ctx ends unblocks the read,
// which pin/tftp's client cannot do. On DATA or OACK it sends the backend
// an ERROR so its transfer ends at once instead of timing out.
func (tftpFetcher) probe(ctx context.Context, addr netip.AddrPort, name string, a attempt) error {
	laddr := &net.UDPAddr{}
	if ip, ok := localBind(addr); ok {
		laddr.IP = ip.AsSlice()
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBackendUnavailable, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	rrq := make([]byte, 0, 2+len(name)+1+len("octet")+1)
	rrq = binary.BigEndian.AppendUint16(rrq, opRRQ)
	rrq = append(append(append(append(rrq, name...), 0), "octet"...), 0)
	buf := make([]byte, 516)
	var last error
	for try := 0; try <= a.retries; try++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := conn.WriteToUDPAddrPort(rrq, addr); err != nil {
			return fmt.Errorf("%w: %w", ErrBackendUnavailable, err)
		}
		conn.SetReadDeadline(time.Now().Add(a.timeout))
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				last = err
				break
			}
			if from.Addr().Unmap() != addr.Addr().Unmap() {
				continue // not the backend
			}
			answered, te := probeAnswer(buf[:n])
			switch {
			case !answered:
				continue // not an answer to a read request
			case te != nil:
				return te
			}
			bye := binary.BigEndian.AppendUint16(nil, opERROR)
			bye = binary.BigEndian.AppendUint16(bye, 0)
			bye = append(bye, "health probe done\x00"...)
			conn.WriteToUDPAddrPort(bye, from)
			return nil
		}
	}
	return fmt.Errorf("%w: no answer to %d requests: %w", ErrBackendUnavailable, a.retries+1, last)
}

// probeAnswer reads the first packet a backend sent back to a read
// request. DATA and OACK are answers; so is ERROR, returned as te.
// Anything else (too short, another opcode) is not an answer.
func probeAnswer(p []byte) (answered bool, te *TFTPError) {
	if len(p) < 4 {
		return false, nil // every answer has an opcode and a block or code
	}
	switch binary.BigEndian.Uint16(p) {
	case opERROR:
		return true, &TFTPError{Code: binary.BigEndian.Uint16(p[2:]), Message: cleanMessage(string(p[4:]))}
	case opDATA, opOACK:
		return true, nil
	}
	return false, nil
}
