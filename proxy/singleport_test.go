package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftpclient"
	"github.com/ctftp/ctftp/internal/tftpwire"
)

func singlePortConfig() Config {
	cfg := testConfig()
	cfg.SinglePort = true
	return cfg
}

// TestSinglePortFetch: every packet of a transfer comes from the
// listening port, with each option combination and body kind.
func TestSinglePortFetch(t *testing.T) {
	data := pattern(70_000)
	opt := func(n, v string) tftpwire.Option { return tftpwire.Option{Name: n, Value: v} }
	for _, kind := range []bodyKind{bodyReaderAt, bodyStream} {
		ts := startServer(t, memSource(map[string][]byte{"f": data}, kind), singlePortConfig())
		for _, tc := range []struct {
			name   string
			opts   []tftpwire.Option
			window int
		}{
			{"lock-step", nil, 1},
			{"blksize 1428 tsize", []tftpwire.Option{opt("blksize", "1428"), opt("tsize", "0")}, 1},
			{"windowsize 8", []tftpwire.Option{opt("blksize", "1000"), opt("windowsize", "8")}, 8},
		} {
			t.Run(fmt.Sprintf("body %d %s", kind, tc.name), func(t *testing.T) {
				c := newRawClient(t, ts.addr)
				res := c.fetch("f", "octet", tc.opts, tc.window)
				if res.tid != ts.addr {
					t.Errorf("transfer answered from %v, want the listening port %v", res.tid, ts.addr)
				}
				if !bytes.Equal(res.data, data) {
					t.Error("content differs")
				}
			})
		}
	}
}

// TestSinglePortConcurrent: transfers from one client host on several
// ports and from several hosts run at once on the one port, each intact.
func TestSinglePortConcurrent(t *testing.T) {
	files := map[string][]byte{}
	for i := range 6 {
		files[fmt.Sprintf("f%d", i)] = pattern(20_000 + 3001*i)
	}
	cfg := singlePortConfig()
	ts := startServer(t, memSource(files, bodyReaderAt), cfg)
	hosts := []netip.Addr{netip.MustParseAddr("127.8.0.1"), netip.MustParseAddr("127.8.0.2"), netip.MustParseAddr("127.8.0.3")}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for _, h := range hosts {
		for i := range 6 { // six ports per host, each its own transfer
			name := fmt.Sprintf("f%d", i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf bytes.Buffer
				o := tftpclient.Options{LocalAddr: h, Timeout: time.Second, Retries: 5}
				if i%2 == 1 {
					o.BlockSize, o.WindowSize = 1200, 4
				}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				if _, err := tftpclient.Get(ctx, ts.addr, name, &buf, o); err != nil {
					errs <- fmt.Errorf("%v %s: %w", h, name, err)
					return
				}
				if !bytes.Equal(buf.Bytes(), files[name]) {
					errs <- fmt.Errorf("%v %s: content differs", h, name)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The client is done when it has sent its last ACK; the server counts
	// the transfer once it has read that ACK, a moment later.
	waitFor(t, "18 transfers ok", func() bool {
		return ts.counter(`ctftp_transfers_total{source="cache",result="ok"}`) == 18
	})
	waitFor(t, "demux empty", func() bool { return ts.listeners[0].demux.len() == 0 })
}

// TestSinglePortSupersede: a new request from a client's address and port
// replaces the transfer running there, which falls silent (its packets
// would now reach the new transfer's client).
func TestSinglePortSupersede(t *testing.T) {
	a, b := pattern(5000), bytes.Repeat([]byte("b"), 700)
	ts := startServer(t, memSource(map[string][]byte{"a": a, "b": b}, bodyReaderAt), singlePortConfig())
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "a", "octet", nil))
	pkt, _ := c.recv()
	if blk, p, err := tftpwire.ParseData(pkt); err != nil || blk != 1 || !bytes.Equal(p, a[:512]) {
		t.Fatalf("want DATA 1 of a, got %q", clipBytes(pkt))
	}
	res := c.fetch("b", "octet", nil, 1) // fails on any stray DATA of a
	if !bytes.Equal(res.data, b) {
		t.Fatal("b differs")
	}
	c.expectNothing(300 * time.Millisecond)
	waitFor(t, "both recorded", func() bool {
		return ts.counter(`ctftp_transfers_total{source="cache",result="ok"}`) == 1 &&
			ts.counter(`ctftp_transfers_total{source="cache",result="error"}`) == 1
	})
}

// TestSinglePortWildcard: on a wildcard socket, single-port transfers
// answer from the address the client asked, as the default mode does.
func TestSinglePortWildcard(t *testing.T) {
	listen := []string{"127.0.0.1:0"}
	if conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err == nil {
		conn.Close()
		listen = append(listen, "[::1]:0")
	}
	data := pattern(3000)
	cfg := singlePortConfig()
	cfg.Listen = listen
	srv, err := NewServer(cfg, memSource(map[string][]byte{"f": data}, bodyReaderAt), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A loopback socket that takes the wildcard path (IP_PKTINFO and
	// source pinning), as TestWildcardPath does.
	srv.bind = func(ap netip.AddrPort) (*listener, error) {
		l, err := listenUDP(ap)
		if err != nil {
			return nil, err
		}
		if err := l.reportDestinations(); err != nil {
			l.conn.Close()
			return nil, err
		}
		return l, nil
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	defer func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, "bound", func() bool { return len(srv.Addrs()) == len(listen) })
	for _, addr := range srv.Addrs() {
		c := newRawClient(t, addr)
		if res := c.fetch("f", "octet", nil, 1); res.tid != addr || !bytes.Equal(res.data, data) {
			t.Errorf("%v: transfer from %v", addr, res.tid)
		}
	}
}

// TestSinglePortShutdown: the listening socket carries the transfers in
// flight, so a shutdown keeps reading it until they finish, while new
// requests go unanswered.
func TestSinglePortShutdown(t *testing.T) {
	data := pattern(3000)
	ts := startServer(t, memSource(map[string][]byte{"f": data}, bodyReaderAt), singlePortConfig())
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", nil))
	pkt, tid := c.recv()
	got := append([]byte(nil), pkt[4:]...)
	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	<-ts.closing
	late := newRawClient(t, ts.addr)
	late.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", nil))
	late.expectNothing(200 * time.Millisecond)
	for block := uint16(1); ; block++ {
		c.sendTo(tid, tftpwire.AppendACK(nil, block))
		pkt, _ := c.recv()
		b, payload, err := tftpwire.ParseData(pkt)
		if err != nil || b != block+1 {
			t.Fatalf("got %q, want DATA %d", clipBytes(pkt), block+1)
		}
		got = append(got, payload...)
		if len(payload) < 512 {
			c.sendTo(tid, tftpwire.AppendACK(nil, b))
			break
		}
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown = %v, want nil", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
}

// TestSinglePortLateDuplicateRRQ: in single-port mode a copy of the
// request that arrives after the client has acknowledged (a retransmission
// delayed in the network) is ignored, not taken for a new request that
// would supersede the transfer it asked for.
func TestSinglePortLateDuplicateRRQ(t *testing.T) {
	data := pattern(3000)
	ts := startServer(t, memSource(map[string][]byte{"f": data}, bodyReaderAt), singlePortConfig())
	c := newRawClient(t, ts.addr)
	rrq := tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", nil)
	c.sendTo(ts.addr, rrq)
	pkt, _ := c.recv()
	got := append([]byte(nil), pkt[4:]...)
	c.sendTo(ts.addr, tftpwire.AppendACK(nil, 1))
	pkt, _ = c.recv()
	c.sendTo(ts.addr, rrq) // the late copy
	waitFor(t, "duplicate counted", func() bool { return ts.counter(`ctftp_requests_rejected_total{reason="duplicate"}`) == 1 })
	for {
		b, payload, err := tftpwire.ParseData(pkt)
		if err != nil {
			t.Fatalf("got %q", clipBytes(pkt))
		}
		got = append(got, payload...)
		c.sendTo(ts.addr, tftpwire.AppendACK(nil, b))
		if len(payload) < 512 {
			break
		}
		pkt, _ = c.recv()
	}
	if !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	waitFor(t, "transfer recorded", func() bool { return ts.counter(`ctftp_transfers_total{source="cache",result="ok"}`) == 1 })
}

// FuzzSinglePortPackets feeds a single-port server a sequence of packets
// from two client ports (the input split at each 0xff byte, the byte after
// it choosing the client): requests, ACKs, errors and garbage meet the
// demultiplexer and the transfers in any order. Nothing may panic, and
// the server must shut down with every transfer ended (goleak checks the
// goroutines).
func FuzzSinglePortPackets(f *testing.F) {
	rrq := tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", nil)
	wrq := tftpwire.AppendRequest(nil, tftpwire.OpWRQ, "f", "octet", nil)
	join := func(pkts ...[]byte) []byte {
		var b []byte
		for i, p := range pkts {
			b = append(append(append(b, 0xff), byte(i%2)), p...)
		}
		return b
	}
	f.Add(join(rrq, tftpwire.AppendACK(nil, 1), rrq, tftpwire.AppendACK(nil, 2)))
	f.Add(join(rrq, rrq, tftpwire.AppendError(nil, 0, "x"), wrq, tftpwire.AppendACK(nil, 9)))
	f.Add(join(tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", []tftpwire.Option{{Name: "windowsize", Value: "4"}, {Name: "blksize", Value: "8"}}), tftpwire.AppendACK(nil, 0), tftpwire.AppendACK(nil, 3)))
	f.Add([]byte{0xff, 0, 0, 4})
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := singlePortConfig()
		cfg.Timeout = 10 * time.Millisecond
		cfg.Retries = 1
		cfg.ShutdownGrace = 0
		srv, err := NewServer(cfg, memSource(map[string][]byte{"f": pattern(3000)}, bodyReaderAt), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Listen(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(context.Background()) }()
		waitFor(t, "serving", func() bool { srv.mu.Lock(); defer srv.mu.Unlock(); return srv.base != nil })
		l := srv.listeners[0]
		// Client ports nobody listens on: what the server sends is lost.
		clients := [2]netip.AddrPort{netip.MustParseAddrPort("127.9.0.1:9"), netip.MustParseAddrPort("127.9.0.2:9")}
		for _, chunk := range bytes.Split(in, []byte{0xff}) {
			if len(chunk) == 0 {
				continue
			}
			// The reader goroutine is the only caller in production;
			// the fuzzer plays it, so the listening socket's own reader
			// sees nothing of this.
			srv.handlePacket(l, chunk[1:], clients[chunk[0]%2], dest{addr: l.addr.Addr()})
		}
		srv.Shutdown(context.Background())
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := l.demux.len(); n != 0 {
			t.Fatalf("%d transfers left in the demultiplexer", n)
		}
	})
}
