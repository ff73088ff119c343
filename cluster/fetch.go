package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftpclient"
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
	// windowSize is the RFC 7440 windowsize asked for; 0 or 1 asks for
	// none.
	windowSize int
	// answered, when set, is called at every DATA block received: the
	// backend is answering (the hedge timer starts over).
	answered func()
	// streamOver: a file whose announced tsize is larger is passed on
	// while it arrives, through commit (0: never).
	streamOver int64
	// commit, when set, is offered the Stream of a file over streamOver
	// once its length is announced and before its first byte; true means
	// the caller reads it, and the attempt then writes every byte into
	// it and ends it. false (a sibling streams already) leaves the
	// attempt a whole fetch.
	commit func(*ctftp.Stream) bool
	// resume, when set, is a stream whose backend broke off half-way:
	// this attempt carries it on, from a backend that must announce the
	// same length, skipping the bytes already arrived. A failure leaves
	// the stream open for the next sibling.
	resume *ctftp.Stream
}

// attemptStream is what an attempt may do with a stream: commit a new
// one, or carry one on (resume).
type attemptStream struct {
	commit func(*ctftp.Stream) bool
	resume *ctftp.Stream
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

// tftpFetcher fetches with internal/tftpclient and probes with a raw
// socket. It has no state; it is safe for concurrent use.
type tftpFetcher struct{}

var _ fetcher = tftpFetcher{}

// fetch holds the whole file in memory before passing it on, for the
// files a phone boots from (a few KB): failover stays possible until the
// last byte (a stream that breaks half-way reaches the phone as a broken
// transfer), and the tsize the backend announced and the file's own
// lengths (checkIntegrity) are checked before anything is passed on. A
// larger file (a firmware load: a.streamOver, backend.stream_over) would
// keep the phone waiting for its first block longer than the phone waits
// behind a WAN: its bytes go through a.commit's Stream as they arrive,
// and the Stream checks the announced length at the end instead.
// max_file_size bounds both.
//
// The client is the project's own (internal/tftpclient): it takes the
// first answer only from the backend's address and then only from that
// answer's port (the transfer ID), reports the backend's ERROR packet as
// a typed error, stops as soon as ctx is done (hedging cancels the
// loser), and asks for windowsize, which a backend that does not know it
// ignores.
func (tftpFetcher) fetch(ctx context.Context, addr netip.AddrPort, name string, a attempt) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	retries := a.retries
	if retries == 0 {
		retries = -1 // tftpclient reads 0 as its default
	}
	o := tftpclient.Options{
		// A backend whose daemon was killed answers ICMP port
		// unreachable: failing at once hands over to its sibling now
		// instead of after a hedge delay or every retransmission.
		FailRefused:  true,
		TransferSize: true,
		Timeout:      a.timeout,
		Retries:      retries,
		MaxSize:      a.maxSize,
		WindowSize:   a.windowSize,
	}
	if a.blockSize > minBlockSize {
		o.BlockSize = a.blockSize
	}
	w := &progressWriter{progress: a.answered}
	switch {
	case a.resume != nil:
		skip, _ := a.resume.Progress()
		w.carry = true
		o.Announced = func(tsize int64) error {
			if tsize != a.resume.Size() {
				return fmt.Errorf("announces %d bytes where the stream it would carry on has %d", tsize, a.resume.Size())
			}
			w.stream, w.skip = a.resume, skip
			return nil
		}
	case a.commit != nil && a.streamOver > 0 && streamable(name):
		o.Announced = func(tsize int64) error {
			if tsize > a.streamOver {
				if st := ctftp.NewStream(tsize); a.commit(st) {
					w.stream = st
				}
			}
			return nil
		}
	}
	res, err := tftpclient.Get(ctx, addr, name, w, o)
	if err != nil {
		err = classifyClientError(ctx, err)
	}
	// A stream that failed stays open: whoever committed it may carry it
	// on from a sibling (Set.carryOn), and ends it.
	return w.result(res, err)
}

// errCarryDiffers: a sibling asked to carry a broken stream on sent other
// bytes than those that had arrived.
var errCarryDiffers = errors.New("sibling's file differs from the stream's")

// progressWriter collects a transfer, or passes it on through stream,
// and calls progress at each DATA block: the backend is answering, and
// hedging waits for a stall, not for the whole file.
type progressWriter struct {
	b        []byte
	n        int64
	stream   *ctftp.Stream
	progress func()
	// carry: the transfer carries a stream on (attempt.resume); skip
	// bytes of it have arrived already.
	carry bool
	skip  int64
}

func (w *progressWriter) Write(p []byte) (int, error) {
	if w.progress != nil {
		w.progress()
	}
	w.n += int64(len(p))
	if w.carry && w.stream == nil {
		return 0, errors.New("no tsize announced: cannot carry a stream on")
	}
	if w.stream != nil {
		rest := p
		if w.skip > 0 {
			k := min(w.skip, int64(len(rest)))
			if off := w.n - int64(len(p)); !w.stream.Matches(off, rest[:k]) {
				// Same length, other bytes: another build of the load
				// (a sibling upgraded first). Spliced, the phone would
				// get neither file; ended, it retries and gets one.
				return 0, fmt.Errorf("%w at bytes %d-%d: not the file the stream carries", errCarryDiffers, off, off+k)
			}
			w.skip -= k
			rest = rest[k:]
		}
		if len(rest) > 0 {
			if _, err := w.stream.Write(rest); err != nil {
				return 0, err
			}
		}
		return len(p), nil
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

// result checks a finished Get against the tsize the backend announced
// and returns the bytes.
func (w *progressWriter) result(res tftpclient.Result, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if res.TransferSize >= 0 && w.n != res.TransferSize {
		return nil, fmt.Errorf("%w: received %d bytes, backend announced tsize %d", ErrBackendUnavailable, w.n, res.TransferSize)
	}
	if w.stream != nil {
		w.stream.Finish(nil)
		b, err := w.stream.Wait(context.Background())
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBackendUnavailable, err)
		}
		return b, nil
	}
	if w.b == nil {
		w.b = []byte{}
	}
	return w.b, nil
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

// classifyClientError turns an error from tftpclient into one of this
// package's, by type, never by text:
//
//   - ctx's error and ErrTooLarge come back as themselves;
//   - a *tftpclient.ServerError is a *TFTPError (code 1 reads as
//     ctftp.ErrNotFound, others as ErrRefused);
//   - no answer, a protocol violation (a garbage opcode, a bad OACK) or a
//     socket error is ErrBackendUnavailable.
func classifyClientError(ctx context.Context, err error) error {
	var se *tftpclient.ServerError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, tftpclient.ErrTooLarge):
		return ErrTooLarge
	case errors.Is(err, errCarryDiffers):
		return err // the backend answered: its file is another one
	case errors.As(err, &se):
		return &TFTPError{Code: se.Code, Message: cleanMessage(se.Message)}
	case errors.Is(err, tftpclient.ErrTimeout):
		return fmt.Errorf("%w: no answer: %w", ErrBackendUnavailable, err)
	case errors.Is(err, tftpclient.ErrProtocol):
		return fmt.Errorf("%w: malformed answer: %w", ErrBackendUnavailable, err)
	}
	return fmt.Errorf("%w: %w", ErrBackendUnavailable, err)
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
// than tftpclient because it must stop at the first packet and
// must be cancellable: closing the socket when ctx ends unblocks the read,
// which a whole-file client has no use for. On DATA or OACK it sends the backend
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
	// A killed daemon's port unreachable marks it down at once.
	if err := tftpclient.ReportRefused(conn); err != nil {
		return fmt.Errorf("%w: %w", ErrBackendUnavailable, err)
	}
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
				if errors.Is(err, syscall.ECONNREFUSED) {
					// The socket sent to addr alone: its port is closed.
					return fmt.Errorf("%w: %w", ErrBackendUnavailable, tftpclient.ErrRefused)
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
