package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/goleak"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftpwire"
	"github.com/ctftp/ctftp/itl"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// bodyKind selects how a fake source hands out bytes, to reach each of
// the server's read paths.
type bodyKind int

const (
	bodyReaderAt     bodyKind = iota // bytes.Reader: ReaderAt + Seeker, Size known
	bodySeekNoSize                   // Seeker + ReaderAt but Size -1 (tsize by seeking)
	bodyStream                       // plain reader, Size known
	bodyStreamNoSize                 // plain reader, Size -1 (tsize unknown)
)

type readerAtCloser struct{ *bytes.Reader }

func (readerAtCloser) Close() error { return nil }

type streamCloser struct{ io.Reader }

func (streamCloser) Close() error { return nil }

// memSource serves files from a map, like fstest.MapFS but as a Source.
func memSource(files map[string][]byte, kind bodyKind) ctftp.Source {
	return ctftp.SourceFunc(func(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
		data, ok := files[req.Name]
		if !ok {
			return nil, ctftp.ErrNotFound
		}
		f := &ctftp.File{Size: int64(len(data)), Origin: ctftp.OriginCache, Subcluster: "east", Backend: "10.9.9.9:69"}
		switch kind {
		case bodyReaderAt:
			f.Body = readerAtCloser{bytes.NewReader(data)}
		case bodySeekNoSize:
			f.Body, f.Size = readerAtCloser{bytes.NewReader(data)}, -1
		case bodyStream:
			f.Body = streamCloser{bytes.NewReader(data)}
		case bodyStreamNoSize:
			f.Body, f.Size = streamCloser{bytes.NewReader(data)}, -1
		}
		return f, nil
	})
}

// pattern returns n bytes that differ block to block at any block size,
// so a misplaced or repeated block cannot go unnoticed.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// logSink collects JSON log records.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// records returns the records whose msg is msg.
func (s *logSink) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

type testServer struct {
	*Server
	addr netip.AddrPort
	set  *metrics.Set
	logs *logSink
	done chan error
}

// testConfig is fast to fail: short retransmission timeouts keep tests
// that exercise them quick. Tests never assert how long anything took.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.Timeout = time.Second
	cfg.Retries = 5
	cfg.ShutdownGrace = 10 * time.Second
	cfg.TransferTimeout = time.Minute
	return cfg
}

// startServer runs a server on a loopback port until the test ends,
// logging (at debug level) into ts.logs.
func startServer(t testing.TB, src ctftp.Source, cfg Config) *testServer {
	t.Helper()
	sink := &logSink{}
	return startServerLogging(t, src, cfg, sink, slog.LevelDebug)
}

func startServerLogging(t testing.TB, src ctftp.Source, cfg Config, w io.Writer, level slog.Level) *testServer {
	t.Helper()
	sink, _ := w.(*logSink)
	logger := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	set := metrics.NewSet()
	srv, err := NewServer(cfg, src, logger, set)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, addr: srv.Addrs()[0], set: set, logs: sink, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		// ErrServerClosed: Serve's goroutine had not started yet.
		if err := <-ts.done; err != nil && !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

// counter reads a series from the server's metric set.
func (ts *testServer) counter(name string) uint64 {
	return ts.set.GetOrCreateCounter(name).Get()
}

// waitFor polls cond (for state another goroutine changes) until it holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rawClient speaks TFTP packet by packet, to script what pin/tftp's
// client cannot: bad packets, windows, drops, duplicates.
type rawClient struct {
	t      testing.TB
	conn   *net.UDPConn
	server netip.AddrPort
	buf    []byte
}

func newRawClient(t testing.TB, server netip.AddrPort) *rawClient {
	t.Helper()
	network, local := "udp4", "127.0.0.1:0"
	if server.Addr().Is6() {
		network, local = "udp6", "[::1]:0"
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(local)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, server: server, buf: make([]byte, 70000)}
}

func (c *rawClient) addr() netip.AddrPort {
	return c.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (c *rawClient) sendTo(to netip.AddrPort, pkt []byte) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDPAddrPort(pkt, to); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next packet, failing the test after a generous wait.
func (c *rawClient) recv() ([]byte, netip.AddrPort) {
	c.t.Helper()
	pkt, from, ok := c.recvWithin(10 * time.Second)
	if !ok {
		c.t.Fatal("no packet from the server")
	}
	return pkt, from
}

func (c *rawClient) recvWithin(d time.Duration) ([]byte, netip.AddrPort, bool) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(d))
	n, from, err := c.conn.ReadFromUDPAddrPort(c.buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, netip.AddrPort{}, false
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return append([]byte(nil), c.buf[:n]...), from, true
}

// expectNothing checks that nothing arrives for a while. It can only
// miss a late wrong answer, never fail a correct server.
func (c *rawClient) expectNothing(d time.Duration) {
	c.t.Helper()
	if pkt, from, ok := c.recvWithin(d); ok {
		c.t.Fatalf("unexpected packet %q from %v", pkt, from)
	}
}

// wireMessages is every text WireError can produce: any other text on
// the wire would be a leak.
var wireMessages = map[string]bool{
	"File not found": true, "Access violation": true, "Illegal TFTP operation": true,
	"Unknown transfer ID": true, "Option negotiation failed": true, "Server busy": true,
	"Server shutting down": true, "Transfer timed out": true, "Temporarily unavailable": true,
	"Transfer failed": true,
}

func (c *rawClient) expectError(code uint16) netip.AddrPort {
	c.t.Helper()
	pkt, from := c.recv()
	checkError(c.t, pkt, code)
	return from
}

func checkError(t testing.TB, pkt []byte, code uint16) {
	t.Helper()
	got, msg, err := tftpwire.ParseError(pkt)
	if err != nil {
		t.Fatalf("want ERROR %d, got %q (%v)", code, pkt, err)
	}
	if got != code {
		t.Fatalf("error code %d %q, want %d", got, msg, code)
	}
	if !wireMessages[msg] {
		t.Fatalf("error text %q is not one of WireError's fixed texts", msg)
	}
	if strings.ContainsAny(msg, "/\\:") || strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "passwd") {
		t.Fatalf("error text %q leaks a path or address", msg)
	}
}

// fetchResult is what a raw download saw.
type fetchResult struct {
	data  []byte
	oack  []tftpwire.Option // nil when the server went straight to DATA
	tid   netip.AddrPort
	block int // payload size of the first DATA packet
}

// fetch downloads name with a raw RRQ, acknowledging every window blocks
// (RFC 7440 receiver; window 1 is lock-step).
func (c *rawClient) fetch(name, mode string, opts []tftpwire.Option, window int) fetchResult {
	c.t.Helper()
	c.sendTo(c.server, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, name, mode, opts))
	var res fetchResult
	blksize := 512
	pkt, from := c.recv()
	res.tid = from
	if op, _ := tftpwire.PacketOpcode(pkt); op == tftpwire.OpOACK {
		oack, err := tftpwire.ParseOACK(pkt)
		if err != nil {
			c.t.Fatal(err)
		}
		res.oack = oack
		for _, o := range oack {
			if o.Name == "blksize" {
				blksize = atoi(c.t, o.Value)
			}
			if o.Name == "windowsize" {
				window = atoi(c.t, o.Value)
			}
		}
		c.sendTo(from, tftpwire.AppendACK(nil, 0))
		pkt, from = c.recv()
	}
	var expect uint16 = 1
	inWindow := 0
	for {
		if from != res.tid {
			c.t.Fatalf("DATA from %v, transfer is %v", from, res.tid)
		}
		block, payload, err := tftpwire.ParseData(pkt)
		if err != nil {
			c.t.Fatalf("want DATA %d, got %q (%v)", expect, pkt, err)
		}
		if block != expect {
			// A retransmission (our ACK was late): a receiver ignores
			// blocks it already has. Anything else is a gap.
			if behind := expect - block; behind == 0 || int(behind) > max(window, 1) {
				c.t.Fatalf("DATA %d, want %d", block, expect)
			}
			pkt, from = c.recv()
			continue
		}
		if len(payload) > blksize {
			c.t.Fatalf("DATA %d carries %d bytes, blksize %d", block, len(payload), blksize)
		}
		if res.data == nil {
			res.block = len(payload)
			res.data = []byte{}
		}
		res.data = append(res.data, payload...)
		inWindow++
		last := len(payload) < blksize
		if last || inWindow == window {
			c.sendTo(res.tid, tftpwire.AppendACK(nil, block))
			inWindow = 0
		}
		if last {
			return res
		}
		expect++
		pkt, from = c.recv()
	}
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// trustPKI signs like a CUCM cluster: a SAST for trust lists, a
// CallManager (CCM+TFTP) key for configs.
type trustPKI struct{ sast, ccm *itl.Signer }

func newTrustPKI(t testing.TB, name string) trustPKI {
	t.Helper()
	sast, err := itl.NewSigner("ITLRecovery_"+name, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ccm, err := itl.NewSigner("cucm-"+name, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return trustPKI{sast, ccm}
}

func (p trustPKI) itl(t testing.TB, blank bool) []byte {
	t.Helper()
	b, err := itl.Build(itl.BuildOptions{Signer: p.sast, Records: []itl.RecordSpec{{Role: itl.RoleCCMTFTP, Cert: p.ccm.Cert}}, Blank: blank})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p trustPKI) parsedITL(t testing.TB, blank bool) *itl.File {
	t.Helper()
	f, err := itl.Parse(p.itl(t, blank))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (p trustPKI) sign(t testing.TB, name string, payload []byte) []byte {
	t.Helper()
	b, err := itl.Sign(name, payload, p.ccm, itl.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
