package tftptest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
)

// Server is a loopback TFTP server serving an in-memory file map. Its
// methods are safe for concurrent use.
type Server struct {
	conn    *net.UDPConn
	srv     *tftp.Server // nil in the raw fault modes
	closing chan struct{}
	done    chan struct{}
	closeMu sync.Mutex
	closed  bool

	// Fixed by options before the server starts.
	listen    netip.AddrPort
	delay     time.Duration
	silent    bool
	corrupt   bool
	failAfter int // -1: never
	refuse    *refusal
	pauseAt   int64 // with pause: bytes sent before the wait
	pause     <-chan struct{}

	mu       sync.Mutex
	files    map[string][]byte
	requests map[string]int
	total    int
	cur      int
	peak     int
}

type refusal struct {
	code uint16
	msg  string
}

// Option changes a Server before it starts.
type Option func(*Server)

// WithDelay makes the server wait d after each read request before it
// answers, like a backend that is slow to find or build a file. Keep d
// below the client's timeout, or the client's retransmissions start
// transfers of their own.
func WithDelay(d time.Duration) Option { return func(s *Server) { s.delay = d } }

// Silent makes the server keep its socket open and read requests (they
// are counted) but never answer: a backend that is up at the network
// level and dead above it.
func Silent() Option { return func(s *Server) { s.silent = true } }

// Corrupt makes the server lie: it announces the true size as tsize (when
// the client asks for it) but sends only the first half of each file, so
// the transfer ends early. A client that does not ask for tsize cannot
// tell.
func Corrupt() Option { return func(s *Server) { s.corrupt = true } }

// FailAfter makes the server answer its first n read requests and leave
// every later one unanswered, like a backend that hung mid-test.
func FailAfter(n int) Option { return func(s *Server) { s.failAfter = n } }

// Refuse makes the server answer every read request with a TFTP ERROR
// packet of the given code and message, which pin/tftp's server cannot
// send (it sends every handler error as code 1). Code 2 is what tftpd-hpa
// sends for a file that is not world-readable.
func Refuse(code uint16, msg string) Option {
	return func(s *Server) { s.refuse = &refusal{code: code, msg: msg} }
}

// PauseAt makes the server stop sending each file once n of its bytes
// have been read for sending, until release is closed (or the server
// is): a backend half-way through a long transfer, kept there for as
// long as a test needs to look at what the client has done meanwhile.
// Keep the pause below the client's retransmission budget.
func PauseAt(n int64, release <-chan struct{}) Option {
	return func(s *Server) { s.pauseAt, s.pause = n, release }
}

// ListenOn makes the server listen on ap instead of 127.0.0.1:0. It must
// be a loopback address; use [::1]:0 for IPv6.
func ListenOn(ap netip.AddrPort) Option { return func(s *Server) { s.listen = ap } }

// NewServer starts a server for files (copied; change them with SetFile)
// on 127.0.0.1 and a free port, and registers Close with t.Cleanup.
func NewServer(t testing.TB, files map[string][]byte, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		listen:    netip.MustParseAddrPort("127.0.0.1:0"),
		failAfter: -1,
		files:     map[string][]byte{},
		requests:  map[string]int{},
		closing:   make(chan struct{}),
		done:      make(chan struct{}),
	}
	for name, b := range files {
		s.files[name] = bytes.Clone(b)
	}
	for _, o := range opts {
		o(s)
	}
	if !s.listen.Addr().IsLoopback() {
		t.Fatalf("tftptest: %s is not a loopback address", s.listen)
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(s.listen))
	if err != nil {
		t.Fatalf("tftptest: listen on %s: %v", s.listen, err)
	}
	s.conn = conn
	if s.silent || s.refuse != nil {
		go s.serveRaw()
	} else {
		s.srv = tftp.NewServer(s.read, nil)
		// Short timeouts, no random backoff: a client that vanished
		// mid-transfer holds Close for at most a second or two.
		s.srv.SetTimeout(500 * time.Millisecond)
		s.srv.SetRetries(2)
		s.srv.SetBackoff(func(int) time.Duration { return 0 })
		// Honour the client's blksize on loopback instead of clamping it
		// to the interface MTU, as tftpd-hpa does.
		s.srv.SetBlockSizeNegotiation(false)
		go func() {
			defer close(s.done)
			s.srv.Serve(conn)
		}()
	}
	t.Cleanup(s.Close)
	return s
}

// Addr is the server's address as "ip:port".
func (s *Server) Addr() string { return s.AddrPort().String() }

// AddrPort is the server's address.
func (s *Server) AddrPort() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// SetFile adds, replaces or (with nil) removes a file.
func (s *Server) SetFile(name string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b == nil {
		delete(s.files, name)
		return
	}
	s.files[name] = bytes.Clone(b)
}

// Requests counts the read requests received for name, retransmitted
// ones included.
func (s *Server) Requests(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[name]
}

// TotalRequests counts every read request received.
func (s *Server) TotalRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// MaxConcurrent is the largest number of transfers that were in progress
// at once. A transfer counts from its read request until the server has
// read the last byte of the file, which is before the client can see the
// end of the transfer; so the figure never exceeds what the client side
// had in flight.
func (s *Server) MaxConcurrent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// Close stops the server and waits for its transfers. It is idempotent.
func (s *Server) Close() {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.closing)
	if s.srv != nil {
		s.srv.Shutdown()
	}
	// Shutdown closes the socket only if Serve got far enough to see it;
	// closing it here too makes Close safe right after NewServer.
	s.conn.Close()
	<-s.done
}

// count records a read request and reports whether it is within
// FailAfter's allowance.
func (s *Server) count(name string) (answer bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[name]++
	s.total++
	return s.failAfter < 0 || s.total <= s.failAfter
}

func (s *Server) begin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur++
	s.peak = max(s.peak, s.cur)
}

func (s *Server) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur--
}

// errNotFound is what pin/tftp sends as ERROR 1 with this text.
var errNotFound = fmt.Errorf("File not found")

// read is pin/tftp's read handler.
func (s *Server) read(name string, rf io.ReaderFrom) error {
	if !s.count(name) {
		<-s.closing // never answer; Close releases the handler
		return fmt.Errorf("tftptest: closed")
	}
	s.begin()
	ended := false
	finish := func() {
		if !ended {
			ended = true
			s.end()
		}
	}
	defer finish()
	if s.delay > 0 {
		t := time.NewTimer(s.delay)
		select {
		case <-t.C:
		case <-s.closing:
			t.Stop()
			return fmt.Errorf("tftptest: closed")
		}
	}
	s.mu.Lock()
	b, ok := s.files[name]
	s.mu.Unlock()
	if !ok {
		return errNotFound
	}
	if s.corrupt {
		if ot, ok := rf.(tftp.OutgoingTransfer); ok {
			ot.SetSize(int64(max(len(b), 1)))
		}
		// Not a Seeker, so pin/tftp keeps the announced size.
		_, err := rf.ReadFrom(&eofReader{r: bytes.NewReader(b[:len(b)/2]), eof: finish})
		return err
	}
	var r io.Reader = bytes.NewReader(b)
	if s.pause != nil && s.pauseAt < int64(len(b)) {
		r = io.MultiReader(bytes.NewReader(b[:s.pauseAt]), &pausedReader{r: bytes.NewReader(b[s.pauseAt:]), wait: s.pause, closing: s.closing})
		if ot, ok := rf.(tftp.OutgoingTransfer); ok {
			ot.SetSize(int64(len(b))) // not a Seeker: the size is told
		}
		_, err := rf.ReadFrom(&eofReader{r: r, eof: finish})
		return err
	}
	// A Seeker: pin/tftp derives tsize from it.
	_, err := rf.ReadFrom(&eofReadSeeker{eofReader{r: bytes.NewReader(b), eof: finish}})
	return err
}

// pausedReader waits for wait (or closing) before its first read.
type pausedReader struct {
	r       io.Reader
	wait    <-chan struct{}
	closing <-chan struct{}
	waited  bool
}

func (p *pausedReader) Read(b []byte) (int, error) {
	if !p.waited {
		select {
		case <-p.wait:
		case <-p.closing:
			return 0, fmt.Errorf("tftptest: closed")
		}
		p.waited = true
	}
	return p.r.Read(b)
}

// eofReader calls eof when its reader is exhausted, which pin/tftp's
// sender reaches before it sends the last block.
type eofReader struct {
	r   io.Reader
	eof func()
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.eof()
	}
	return n, err
}

// eofReadSeeker is an eofReader over an io.ReadSeeker.
type eofReadSeeker struct{ eofReader }

func (e *eofReadSeeker) Seek(off int64, whence int) (int64, error) {
	return e.r.(io.Seeker).Seek(off, whence)
}

// serveRaw is the loop of the Silent and Refuse modes, which pin/tftp
// cannot play: it reads requests, counts them and either ignores them or
// answers with an ERROR from the listening port.
func (s *Server) serveRaw() {
	defer close(s.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		if n < 4 || binary.BigEndian.Uint16(buf) != 1 {
			continue // not an RRQ
		}
		name, _, _ := bytes.Cut(buf[2:n], []byte{0})
		answer := s.count(string(name))
		if s.refuse == nil || !answer {
			continue
		}
		p := binary.BigEndian.AppendUint16(nil, 5)
		p = binary.BigEndian.AppendUint16(p, s.refuse.code)
		p = append(append(p, s.refuse.msg...), 0)
		s.conn.WriteToUDPAddrPort(p, from)
	}
}
