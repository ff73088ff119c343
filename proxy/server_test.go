package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftpwire"
)

// pinFetch downloads name with pin/tftp's client, an independent peer.
func pinFetch(t *testing.T, addr netip.AddrPort, name, mode string, blksize int, tsize bool) ([]byte, int64, bool) {
	t.Helper()
	c, err := tftp.NewClient(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(5 * time.Second)
	if blksize != 0 {
		c.SetBlockSize(blksize)
	}
	c.RequestTSize(tsize)
	wt, err := c.Receive(name, mode)
	if err != nil {
		t.Fatalf("Receive %q: %v", name, err)
	}
	// Before WriteTo, which drops the options it does not use.
	size, ok := wt.(tftp.IncomingTransfer).Size()
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		t.Fatalf("WriteTo %q: %v", name, err)
	}
	return buf.Bytes(), size, ok
}

func TestFetchWithPinClient(t *testing.T) {
	sizes := []int{0, 1, 511, 512, 513, 1024, 1427, 1428, 1429, 7000, 100_000}
	files := map[string][]byte{}
	for _, n := range sizes {
		files[fmt.Sprintf("f%d.bin", n)] = pattern(n)
	}
	kinds := []struct {
		name string
		kind bodyKind
	}{{"readerat", bodyReaderAt}, {"stream", bodyStream}, {"seek-no-size", bodySeekNoSize}}
	for _, k := range kinds {
		ts := startServer(t, memSource(files, k.kind), testConfig())
		for _, n := range sizes {
			for _, blk := range []int{0, 1428, 65464} {
				t.Run(fmt.Sprintf("%s/size=%d/blksize=%d", k.name, n, blk), func(t *testing.T) {
					got, size, ok := pinFetch(t, ts.addr, fmt.Sprintf("f%d.bin", n), "octet", blk, true)
					if !bytes.Equal(got, files[fmt.Sprintf("f%d.bin", n)]) {
						t.Fatalf("got %d bytes, want %d (content differs)", len(got), n)
					}
					if !ok || size != int64(n) {
						t.Errorf("tsize = %d, %v; want %d", size, ok, n)
					}
				})
			}
		}
	}
}

func TestFetchRaw(t *testing.T) {
	files := map[string][]byte{
		"zero": {}, "512": pattern(512), "513": pattern(513), "small": pattern(3000),
		"text": []byte("line one\nline two\r\nbare cr\r end\n"),
	}
	tests := []struct {
		name     string
		kind     bodyKind
		file     string
		mode     string
		opts     []tftpwire.Option
		window   int
		wantOACK []tftpwire.Option
		wantData []byte // nil: files[file]
	}{
		{name: "zero bytes", file: "zero", mode: "octet"},
		{name: "exactly one block needs an empty second", file: "512", mode: "octet"},
		{name: "513", file: "513", mode: "octet"},
		{name: "blksize 8", file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "blksize", Value: "8"}}, wantOACK: []tftpwire.Option{{Name: "blksize", Value: "8"}}},
		{name: "blksize 1428 with tsize", file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "blksize", Value: "1428"}, {Name: "tsize", Value: "0"}}, wantOACK: []tftpwire.Option{{Name: "blksize", Value: "1428"}, {Name: "tsize", Value: "3000"}}},
		{name: "blksize 65464", file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "blksize", Value: "65464"}}, wantOACK: []tftpwire.Option{{Name: "blksize", Value: "65464"}}},
		{name: "blksize 65465 clamped", file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "blksize", Value: "65465"}}, wantOACK: []tftpwire.Option{{Name: "blksize", Value: "65464"}}},
		{name: "blksize abc ignored", file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "blksize", Value: "abc"}}},
		{name: "duplicated option: first wins", file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "blksize", Value: "1024"}, {Name: "BLKSIZE", Value: "100"}}, wantOACK: []tftpwire.Option{{Name: "blksize", Value: "1024"}}},
		{name: "unknown option ignored", file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "rollover", Value: "0"}}},
		{name: "1000 options: past the 64th unread", file: "small", mode: "octet", opts: append(manyOptions(1000), tftpwire.Option{Name: "blksize", Value: "1024"})},
		{name: "timeout echoed", file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "timeout", Value: "3"}}, wantOACK: []tftpwire.Option{{Name: "timeout", Value: "3"}}},
		{name: "tsize from File.Size", file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "tsize", Value: "0"}}, wantOACK: []tftpwire.Option{{Name: "tsize", Value: "3000"}}},
		{name: "tsize by seeking", kind: bodySeekNoSize, file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "tsize", Value: "0"}}, wantOACK: []tftpwire.Option{{Name: "tsize", Value: "3000"}}},
		{name: "tsize of a zero-byte file", file: "zero", mode: "octet", opts: []tftpwire.Option{{Name: "tsize", Value: "0"}}, wantOACK: []tftpwire.Option{{Name: "tsize", Value: "0"}}},
		{name: "tsize unknown alone: no OACK", kind: bodyStreamNoSize, file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "tsize", Value: "0"}}},
		{name: "tsize unknown with blksize", kind: bodyStreamNoSize, file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "tsize", Value: "0"}, {Name: "blksize", Value: "1000"}}, wantOACK: []tftpwire.Option{{Name: "blksize", Value: "1000"}}},
		{name: "windowsize 4", file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "windowsize", Value: "4"}}, window: 4, wantOACK: []tftpwire.Option{{Name: "windowsize", Value: "4"}}},
		{name: "windowsize 4 stream", kind: bodyStream, file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "windowsize", Value: "4"}, {Name: "blksize", Value: "100"}}, window: 4, wantOACK: []tftpwire.Option{{Name: "windowsize", Value: "4"}, {Name: "blksize", Value: "100"}}},
		{name: "windowsize above cap", file: "small", mode: "octet", opts: []tftpwire.Option{{Name: "windowsize", Value: "1000"}, {Name: "blksize", Value: "16"}}, window: 1000, wantOACK: []tftpwire.Option{{Name: "windowsize", Value: "16"}, {Name: "blksize", Value: "16"}}},
		{name: "netascii converts", file: "text", mode: "netascii", wantData: []byte("line one\r\nline two\r\x00\r\nbare cr\r\x00 end\r\n")},
		{name: "netascii: no tsize", file: "text", mode: "NETASCII", opts: []tftpwire.Option{{Name: "tsize", Value: "0"}}, wantData: []byte("line one\r\nline two\r\x00\r\nbare cr\r\x00 end\r\n")},
		{name: "netascii with window", file: "text", mode: "netascii", opts: []tftpwire.Option{{Name: "windowsize", Value: "3"}, {Name: "blksize", Value: "8"}}, window: 3, wantOACK: []tftpwire.Option{{Name: "windowsize", Value: "3"}, {Name: "blksize", Value: "8"}}, wantData: []byte("line one\r\nline two\r\x00\r\nbare cr\r\x00 end\r\n")},
		{name: "leading slashes stripped", file: "//small", mode: "octet", wantData: files["small"]},
		{name: "backslash read as slash", file: `\small`, mode: "octet", wantData: files["small"]},
	}
	srvs := map[bodyKind]*testServer{}
	for _, tt := range tests {
		if srvs[tt.kind] == nil {
			srvs[tt.kind] = startServer(t, memSource(files, tt.kind), testConfig())
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := srvs[tt.kind]
			c := newRawClient(t, ts.addr)
			window := max(tt.window, 1)
			res := c.fetch(tt.file, tt.mode, tt.opts, window)
			want := tt.wantData
			if want == nil {
				want = files[tt.file]
			}
			if !bytes.Equal(res.data, want) {
				t.Errorf("got %q, want %q", clipBytes(res.data), clipBytes(want))
			}
			if !reflect.DeepEqual(res.oack, tt.wantOACK) {
				t.Errorf("OACK %v, want %v", res.oack, tt.wantOACK)
			}
			if res.tid == ts.addr {
				t.Error("transfer answered from the listening port, want a new TID")
			}
		})
	}
}

func manyOptions(n int) []tftpwire.Option {
	opts := make([]tftpwire.Option, n)
	for i := range opts {
		opts[i] = tftpwire.Option{Name: fmt.Sprintf("x%d", i), Value: "1"}
	}
	return opts
}

func clipBytes(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q... (%d bytes)", b[:64], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// TestWraparound sends a file past block 65535: 600 KB in 8-byte blocks
// is 75,000 blocks, so block numbers wrap to 0 once. Lock-step and
// windowed senders both wrap; the raw client checks every block number.
func TestWraparound(t *testing.T) {
	data := pattern(600_000)
	for _, tc := range []struct {
		name   string
		kind   bodyKind
		window int
	}{{"lockstep readerat", bodyReaderAt, 1}, {"window 16 stream", bodyStream, 16}} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, memSource(map[string][]byte{"big": data}, tc.kind), testConfig())
			c := newRawClient(t, ts.addr)
			opts := []tftpwire.Option{{Name: "blksize", Value: "8"}}
			if tc.window > 1 {
				opts = append(opts, tftpwire.Option{Name: "windowsize", Value: fmt.Sprint(tc.window)})
			}
			res := c.fetch("big", "octet", opts, tc.window)
			if !bytes.Equal(res.data, data) {
				t.Fatalf("got %d bytes, want %d (content differs)", len(res.data), len(data))
			}
			waitFor(t, "transfer recorded", func() bool {
				return ts.counter(`ctftp_transfers_total{source="cache",result="ok"}`) == 1
			})
			if got := ts.counter("ctftp_transfer_bytes_total"); got != uint64(len(data)) {
				t.Errorf("bytes metric %d, want %d", got, len(data))
			}
		})
	}
}

func TestNetASCIIWithPinClient(t *testing.T) {
	text := []byte(strings.Repeat("config line\nsecond\r\n", 100))
	ts := startServer(t, memSource(map[string][]byte{"t.txt": text}, bodyReaderAt), testConfig())
	got, _, _ := pinFetch(t, ts.addr, "t.txt", "netascii", 0, false)
	if !bytes.Equal(got, text) {
		t.Fatalf("netascii round trip through pin/tftp differs: %q", clipBytes(got))
	}
}

func TestIPv6Loopback(t *testing.T) {
	conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("::1 unavailable: %v", err)
	}
	conn.Close()
	cfg := testConfig()
	cfg.Listen = []string{"[::1]:0", "127.0.0.1:0"}
	data := pattern(5000)
	ts := startServer(t, memSource(map[string][]byte{"ITLFile.tlv": data}, bodyReaderAt), cfg)
	addrs := ts.Addrs()
	if len(addrs) != 2 || !addrs[0].Addr().Is6() || !addrs[1].Addr().Is4() {
		t.Fatalf("Addrs = %v", addrs)
	}
	got, size, _ := pinFetch(t, addrs[0], "ITLFile.tlv", "octet", 1428, true)
	if !bytes.Equal(got, data) || size != 5000 {
		t.Fatalf("IPv6 fetch: %d bytes, tsize %d", len(got), size)
	}
	c := newRawClient(t, addrs[0])
	if res := c.fetch("ITLFile.tlv", "octet", nil, 1); !bytes.Equal(res.data, data) || res.tid.Addr() != netip.IPv6Loopback() {
		t.Fatalf("raw IPv6 fetch: %d bytes from %v", len(res.data), res.tid)
	}
	c.sendTo(addrs[0], tftpwire.AppendRequest(nil, tftpwire.OpWRQ, "x", "octet", nil))
	c.expectError(tftpwire.CodeAccessViolation)
}

// TestWildcardPath runs the code path of wildcard listeners (0.0.0.0,
// [::]): the destination of each request is read from IP_PKTINFO /
// IPV6_PKTINFO, refusals are sent with that address pinned as source,
// and transfers bind to it (pin/tftp's client drops packets from any
// other address). Tests may only bind loopback, so the sockets are bound
// to 127.0.0.1 and ::1 with the wildcard machinery switched on; the
// kernel reports destinations the same way.
func TestWildcardPath(t *testing.T) {
	listen := []string{"127.0.0.1:0"}
	if conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err == nil {
		conn.Close()
		listen = append(listen, "[::1]:0")
	}
	data := pattern(2000)
	cfg := testConfig()
	cfg.Listen = listen
	srv, err := NewServer(cfg, memSource(map[string][]byte{"f": data}, bodyReaderAt), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
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
		t.Run("pktinfo "+addr.Addr().String(), func(t *testing.T) {
			// The kernel reports the destination and interface (lo) of
			// each datagram; without the control message the interface
			// index would stay 0.
			l, err := srv.bind(netip.AddrPortFrom(addr.Addr(), 0))
			if err != nil {
				t.Fatal(err)
			}
			defer l.conn.Close()
			c := newRawClient(t, l.addr)
			c.sendTo(l.addr, []byte("x"))
			oob := make([]byte, 128)
			l.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, oobn, _, _, err := l.conn.ReadMsgUDPAddrPort(make([]byte, 16), oob)
			if err != nil {
				t.Fatal(err)
			}
			var cm4 ipv4.ControlMessage
			var cm6 ipv6.ControlMessage
			if d := l.destination(oob[:oobn], &cm4, &cm6); d.addr != addr.Addr() || d.ifIndex == 0 {
				t.Errorf("destination = %v (interface %d), want %v on lo", d.addr, d.ifIndex, addr.Addr())
			}
		})
		t.Run(addr.Addr().String(), func(t *testing.T) {
			got, _, _ := pinFetch(t, addr, "f", "octet", 0, false)
			if !bytes.Equal(got, data) {
				t.Fatal("pin/tftp fetch differs")
			}
			c := newRawClient(t, addr)
			c.sendTo(addr, []byte{0, 9})
			if from := c.expectError(tftpwire.CodeIllegalOperation); from != addr {
				t.Errorf("refusal came from %v, want %v", from, addr)
			}
			if res := c.fetch("f", "octet", nil, 1); res.tid.Addr() != addr.Addr() || !bytes.Equal(res.data, data) {
				t.Errorf("transfer from %v, want address %v", res.tid, addr.Addr())
			}
		})
	}
}

// TestBadInput sends each bad packet from a fresh client and checks the
// answer on the wire (or its absence), while a good transfer from another
// client keeps running throughout: no bad packet may disturb the server.
//
// In single-port mode (the same suite) a transfer's packets come from the
// listening port too, and a DATA, ACK or OACK from a client without a
// transfer gets error 5 (unknown transfer ID) rather than 4.
func TestBadInput(t *testing.T) {
	for _, single := range []bool{false, true} {
		t.Run(fmt.Sprintf("single_port=%v", single), func(t *testing.T) { badInputSuite(t, single) })
	}
}

func badInputSuite(t *testing.T, singlePort bool) {
	data := pattern(40_000)
	cfg := testConfig()
	cfg.SinglePort = singlePort
	ts := startServer(t, memSource(map[string][]byte{"good": data, "etc/passwd": []byte("root:x:0:0")}, bodyReaderAt), cfg)
	strayCode := uint16(tftpwire.CodeIllegalOperation)
	if singlePort {
		strayCode = tftpwire.CodeUnknownTID
	}

	// A slow, lock-step transfer in the background, ACKed one block per
	// bad packet, so it is in flight for the whole test.
	bg := newRawClient(t, ts.addr)
	bg.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "good", "octet", nil))
	var bgData []byte
	bgBlock := uint16(0)
	bgStep := func(t *testing.T) {
		t.Helper()
		bg.t = t
		pkt, from := bg.recv()
		block, payload, err := tftpwire.ParseData(pkt)
		for err == nil && block == bgBlock && bgBlock > 0 {
			// A retransmission: the bad-input case took a while.
			pkt, from = bg.recv()
			block, payload, err = tftpwire.ParseData(pkt)
		}
		if err != nil || block != bgBlock+1 {
			t.Fatalf("background transfer: got %q (%v), want DATA %d", clipBytes(pkt), err, bgBlock+1)
		}
		bgBlock = block
		bgData = append(bgData, payload...)
		bg.sendTo(from, tftpwire.AppendACK(nil, block))
	}
	bgStep(t)

	rrq := func(name string, opts ...tftpwire.Option) []byte {
		return tftpwire.AppendRequest(nil, tftpwire.OpRRQ, name, "octet", opts)
	}
	opt := func(n, v string) tftpwire.Option { return tftpwire.Option{Name: n, Value: v} }
	const (
		noAnswer = 0xffff
		dataOK   = 0xfffe // a transfer starts (DATA 1 or OACK)
	)
	tests := []struct {
		name string
		pkt  []byte
		want uint16
	}{
		{"empty datagram", []byte{}, tftpwire.CodeIllegalOperation},
		{"one byte", []byte{0}, tftpwire.CodeIllegalOperation},
		{"opcode only", []byte{0, 1}, tftpwire.CodeIllegalOperation},
		{"truncated name", []byte("\x00\x01SEP0011"), tftpwire.CodeIllegalOperation},
		{"mode without NUL", []byte("\x00\x01file\x00octet"), tftpwire.CodeIllegalOperation},
		{"option without value", []byte("\x00\x01good\x00octet\x00blksize\x00"), tftpwire.CodeIllegalOperation},
		{"empty name", []byte("\x00\x01\x00octet\x00"), tftpwire.CodeIllegalOperation},
		{"unknown mode", []byte("\x00\x01good\x00binary\x00"), tftpwire.CodeIllegalOperation},
		{"mail mode", []byte("\x00\x01good\x00mail\x00"), tftpwire.CodeIllegalOperation},
		{"NUL inside the name splits it", []byte("\x00\x01go\x00od\x00octet\x00"), tftpwire.CodeIllegalOperation},
		{"unknown opcode", []byte("\x00\x09good\x00octet\x00"), tftpwire.CodeIllegalOperation},
		{"opcode zero", []byte{0, 0, 1, 2}, tftpwire.CodeIllegalOperation},
		{"DATA to listen port", tftpwire.AppendData(nil, 1, []byte("x")), strayCode},
		{"ACK to listen port", tftpwire.AppendACK(nil, 1), strayCode},
		{"OACK to listen port", tftpwire.AppendOACK(nil, []tftpwire.Option{opt("blksize", "512")}), strayCode},
		{"ERROR to listen port is never answered", tftpwire.AppendError(nil, 0, "x"), noAnswer},
		{"WRQ", tftpwire.AppendRequest(nil, tftpwire.OpWRQ, "good", "octet", nil), tftpwire.CodeAccessViolation},
		{"WRQ malformed", []byte("\x00\x02x"), tftpwire.CodeAccessViolation},
		{"blksize 0", rrq("good", opt("blksize", "0")), tftpwire.CodeOptionRefused},
		{"blksize 7", rrq("good", opt("blksize", "7")), tftpwire.CodeOptionRefused},
		{"timeout 0", rrq("good", opt("timeout", "0")), tftpwire.CodeOptionRefused},
		{"timeout 256", rrq("good", opt("timeout", "256")), tftpwire.CodeOptionRefused},
		{"windowsize 0", rrq("good", opt("windowsize", "0")), tftpwire.CodeOptionRefused},
		{"blksize abc is ignored", rrq("good", opt("blksize", "abc")), dataOK},
		{"1000 options", rrq("good", manyOptions(1000)...), dataOK},
		{"dot-dot traversal", rrq("../../etc/passwd"), tftpwire.CodeAccessViolation},
		{"dot-dot inside", rrq("a/../../etc/passwd"), tftpwire.CodeAccessViolation},
		{"backslash traversal", rrq(`..\..\x`), tftpwire.CodeAccessViolation},
		{"absolute path is relative to the root", rrq("/etc/shadow"), tftpwire.CodeFileNotFound},
		{"name of 600 bytes", rrq(strings.Repeat("A", 600)), tftpwire.CodeAccessViolation},
		{"control character", rrq("SEP\x01.cnf.xml"), tftpwire.CodeAccessViolation},
		{"escape sequence", rrq("\x1b[2Jx"), tftpwire.CodeAccessViolation},
		{"DEL", rrq("a\x7f"), tftpwire.CodeAccessViolation},
		{"non-ASCII", rrq("caf\xc3\xa9"), tftpwire.CodeAccessViolation},
		{"missing file", rrq("SEP001122334455.cnf.xml"), tftpwire.CodeFileNotFound},
		{"just slashes", rrq("///"), tftpwire.CodeAccessViolation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newRawClient(t, ts.addr)
			c.sendTo(ts.addr, tt.pkt)
			switch tt.want {
			case noAnswer:
				c.expectNothing(200 * time.Millisecond)
			case dataOK:
				pkt, from := c.recv()
				if op, _ := tftpwire.PacketOpcode(pkt); op != tftpwire.OpDATA && op != tftpwire.OpOACK {
					t.Fatalf("want a transfer, got %q", clipBytes(pkt))
				}
				c.sendTo(from, tftpwire.AppendError(nil, 0, "enough")) // end it
			default:
				// Refusals before a transfer come from the listening
				// port; "not found" comes from the transfer's own TID,
				// after the Source was asked.
				if from := c.expectError(tt.want); from != ts.addr && (tt.want != tftpwire.CodeFileNotFound || singlePort) {
					t.Errorf("refusal from %v, want the listening port %v", from, ts.addr)
				}
			}
			bgStep(t)
		})
	}
	// Finish the background transfer: it must be intact.
	for len(bgData) < len(data) {
		bgStep(t)
	}
	if !bytes.Equal(bgData, data) {
		t.Fatal("background transfer corrupted")
	}
	waitFor(t, "transfers recorded", func() bool { return ts.counter(`ctftp_transfers_total{source="cache",result="ok"}`) == 1 })
	for _, r := range []string{"malformed", "illegal_opcode", "write", "bad_name", "bad_option"} {
		if ts.counter(fmt.Sprintf(`ctftp_requests_rejected_total{reason=%q}`, r)) == 0 {
			t.Errorf("reason %q never counted", r)
		}
	}
}

func TestRefusalsAreLoggedOnce(t *testing.T) {
	ts := startServer(t, memSource(map[string][]byte{"a": pattern(10)}, bodyReaderAt), testConfig())
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "../x", "octet", nil))
	c.expectError(tftpwire.CodeAccessViolation)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "nope", "octet", nil))
	c.expectError(tftpwire.CodeFileNotFound)
	c.fetch("a", "octet", nil, 1)
	waitFor(t, "three transfer lines", func() bool { return len(ts.logs.records(t, "transfer")) == 3 })
	recs := ts.logs.records(t, "transfer")
	byFile := map[string]map[string]any{}
	for _, r := range recs {
		byFile[r["file"].(string)] = r
		for _, k := range []string{"client", "file", "source", "subcluster", "backend", "bytes", "duration", "blksize", "windowsize", "result", "err"} {
			if _, ok := r[k]; !ok {
				t.Errorf("transfer line %v lacks %q", r, k)
			}
		}
	}
	check := func(file, source, result string) {
		t.Helper()
		r := byFile[file]
		if r == nil || r["source"] != source || r["result"] != result {
			t.Errorf("%s: logged %v, want source %s result %s", file, r, source, result)
		}
	}
	check("../x", "none", "denied")
	check("nope", "none", "not_found")
	check("a", "cache", "ok")
	if r := byFile["a"]; r["bytes"] != float64(10) || r["subcluster"] != "east" || r["backend"] != "10.9.9.9:69" || r["client"] != c.addr().String() {
		t.Errorf("ok line: %v", r)
	}
	if !strings.Contains(byFile["../x"]["err"].(string), "..") {
		t.Errorf("denied line should carry the internal reason: %v", byFile["../x"])
	}
	if got := ts.counter(`ctftp_transfers_total{source="none",result="denied"}`); got != 1 {
		t.Errorf("denied counter %d", got)
	}
	if got := ts.counter(`ctftp_transfers_total{source="none",result="not_found"}`); got != 1 {
		t.Errorf("not_found counter %d", got)
	}
	var exp bytes.Buffer
	ts.set.WritePrometheus(&exp)
	for _, series := range []string{
		`ctftp_transfers_total{source="local",result="ok"} 0`,
		`ctftp_transfers_total{source="cache",result="ok"} 1`,
		"ctftp_active_transfers 0",
		"ctftp_transfer_bytes_total 10",
		"ctftp_transfer_duration_seconds_bucket{vmrange=",
		"ctftp_transfer_duration_seconds_count 2",
		`ctftp_requests_rejected_total{reason="bad_name"} 1`,
	} {
		if !strings.Contains(exp.String(), series) {
			t.Errorf("exposition lacks %q:\n%s", series, exp.String())
		}
	}
}

// blockingSource hands out a file only once release is closed, and tells
// when a request has reached it.
type blockingSource struct {
	data    []byte
	opened  chan struct{}
	release chan struct{}
	calls   atomic.Int32
}

func newBlockingSource(data []byte) *blockingSource {
	return &blockingSource{data: data, opened: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blockingSource) Open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	b.calls.Add(1)
	b.opened <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &ctftp.File{Body: readerAtCloser{bytes.NewReader(b.data)}, Size: int64(len(b.data)), Origin: ctftp.OriginBackend}, nil
}

func TestRetransmittedRRQIsIgnored(t *testing.T) {
	src := newBlockingSource(pattern(1500))
	ts := startServer(t, src, testConfig())
	c := newRawClient(t, ts.addr)
	req := tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "SEP001122334455.cnf.xml", "octet", nil)
	c.sendTo(ts.addr, req)
	<-src.opened
	c.sendTo(ts.addr, req) // the phone gave up waiting and asked again
	waitFor(t, "duplicate counted", func() bool { return ts.counter(`ctftp_requests_rejected_total{reason="duplicate"}`) == 1 })
	close(src.release)
	var got []byte
	var tid netip.AddrPort
	for block := uint16(1); ; block++ {
		pkt, from := c.recv()
		if tid.IsValid() && from != tid {
			t.Fatalf("second transfer from %v (first %v)", from, tid)
		}
		tid = from
		b, payload, err := tftpwire.ParseData(pkt)
		if err != nil || b != block {
			t.Fatalf("got %q, want DATA %d", clipBytes(pkt), block)
		}
		got = append(got, payload...)
		c.sendTo(from, tftpwire.AppendACK(nil, b))
		if len(payload) < 512 {
			break
		}
	}
	if !bytes.Equal(got, src.data) {
		t.Fatal("content differs")
	}
	if n := src.calls.Load(); n != 1 {
		t.Errorf("source opened %d times, want 1", n)
	}
	waitFor(t, "transfer recorded", func() bool { return ts.counter(`ctftp_transfers_total{source="backend",result="ok"}`) == 1 })
	// No second transfer shows up (a late retransmission of the first
	// one's last block, after a scheduling hiccup, would be harmless).
	for {
		pkt, from, ok := c.recvWithin(300 * time.Millisecond)
		if !ok {
			break
		}
		if from != tid {
			t.Fatalf("packet %q from a second transfer %v", clipBytes(pkt), from)
		}
	}

	// Once the transfer is over, the same request is a new transfer.
	if res := c.fetch("SEP001122334455.cnf.xml", "octet", nil, 1); !bytes.Equal(res.data, src.data) {
		t.Fatal("second fetch differs")
	}
}

// TestSameRequestAfterACKIsNew: once the client has acknowledged a
// packet it knows the transfer's TID and will not retransmit its RRQ, so
// the same RRQ again from the same port (a client that keeps its socket
// for a second "get") starts a new transfer instead of being ignored.
func TestSameRequestAfterACKIsNew(t *testing.T) {
	data := pattern(1500)
	ts := startServer(t, memSource(map[string][]byte{"f": data}, bodyReaderAt), testConfig())
	c := newRawClient(t, ts.addr)
	req := tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", nil)
	c.sendTo(ts.addr, req)
	_, first := c.recv() // DATA 1
	c.sendTo(first, tftpwire.AppendACK(nil, 1))
	c.recv() // DATA 2: the ACK was taken
	c.sendTo(ts.addr, req)
	for {
		pkt, from := c.recv()
		if from == first {
			continue // the first transfer still retransmits
		}
		if b, _, err := tftpwire.ParseData(pkt); err != nil || b != 1 {
			t.Fatalf("want DATA 1 of a new transfer, got %q", clipBytes(pkt))
		}
		c.sendTo(from, tftpwire.AppendError(nil, 0, "done"))
		break
	}
	c.sendTo(first, tftpwire.AppendError(nil, 0, "done"))
	waitFor(t, "both transfers ended", func() bool {
		return ts.counter(`ctftp_transfers_total{source="cache",result="error"}`) == 2
	})
	if got := ts.counter(`ctftp_requests_rejected_total{reason="duplicate"}`); got != 0 {
		t.Errorf("duplicate counter %d", got)
	}
}

// TestStrangerCannotDisturbTransfer: the transfer's socket is connected
// to its client, so packets from anyone else never reach the transfer
// (the kernel answers them with ICMP port unreachable, as with
// tftpd-hpa); the transfer carries on untouched.
func TestStrangerCannotDisturbTransfer(t *testing.T) {
	data := pattern(2000)
	ts := startServer(t, memSource(map[string][]byte{"f": data}, bodyReaderAt), testConfig())
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", nil))
	pkt, tid := c.recv()
	if b, _, err := tftpwire.ParseData(pkt); err != nil || b != 1 {
		t.Fatalf("want DATA 1, got %q", pkt)
	}
	intruder := newRawClient(t, tid)
	intruder.sendTo(tid, tftpwire.AppendACK(nil, 1))
	intruder.sendTo(tid, tftpwire.AppendError(nil, 0, "stop"))
	intruder.expectNothing(200 * time.Millisecond)
	// The transfer did not notice: it continues from block 2.
	got := append([]byte(nil), pkt[4:]...)
	c.sendTo(tid, tftpwire.AppendACK(nil, 1))
	for block := uint16(2); ; block++ {
		pkt, _ := c.recv()
		b, payload, err := tftpwire.ParseData(pkt)
		if err != nil || b != block {
			t.Fatalf("got %q, want DATA %d", clipBytes(pkt), block)
		}
		got = append(got, payload...)
		c.sendTo(tid, tftpwire.AppendACK(nil, b))
		if len(payload) < 512 {
			break
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	waitFor(t, "transfer recorded", func() bool { return ts.counter(`ctftp_transfers_total{source="cache",result="ok"}`) == 1 })
}

func TestClientErrorEndsTransfer(t *testing.T) {
	ts := startServer(t, memSource(map[string][]byte{"f": pattern(5000)}, bodyReaderAt), testConfig())
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", []tftpwire.Option{{Name: "blksize", Value: "1024"}}))
	_, tid := c.recv() // OACK
	c.sendTo(tid, tftpwire.AppendError(nil, tftpwire.CodeOptionRefused, "no thanks"))
	waitFor(t, "transfer recorded", func() bool { return ts.counter(`ctftp_transfers_total{source="cache",result="error"}`) == 1 })
	c.expectNothing(500 * time.Millisecond) // no retransmitted OACK, no error back
	recs := ts.logs.records(t, "transfer")
	if len(recs) != 1 || !strings.Contains(recs[0]["err"].(string), "no thanks") {
		t.Errorf("log: %v", recs)
	}
}

func TestDuplicateACKsAreIgnored(t *testing.T) {
	cfg := testConfig()
	cfg.Timeout = 5 * time.Second // far longer than expectNothing: any resend would be SAS
	ts := startServer(t, memSource(map[string][]byte{"f": pattern(2000)}, bodyReaderAt), cfg)
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", nil))
	_, tid := c.recv() // DATA 1
	c.sendTo(tid, tftpwire.AppendACK(nil, 1))
	pkt, _ := c.recv()
	if b, _, _ := tftpwire.ParseData(pkt); b != 2 {
		t.Fatalf("want DATA 2, got %q", clipBytes(pkt))
	}
	// The ACK of block 1 again, twice (a delayed duplicate): no new DATA 2.
	c.sendTo(tid, tftpwire.AppendACK(nil, 1))
	c.sendTo(tid, tftpwire.AppendACK(nil, 1))
	// An ACK from the future is no better.
	c.sendTo(tid, tftpwire.AppendACK(nil, 9))
	c.expectNothing(500 * time.Millisecond)
	c.sendTo(tid, tftpwire.AppendACK(nil, 2))
	pkt, _ = c.recv()
	if b, _, _ := tftpwire.ParseData(pkt); b != 3 {
		t.Fatalf("want DATA 3, got %q", clipBytes(pkt))
	}
	c.sendTo(tid, tftpwire.AppendACK(nil, 3))
	pkt, _ = c.recv()
	if b, p, _ := tftpwire.ParseData(pkt); b != 4 || len(p) != 2000-3*512 {
		t.Fatalf("want final DATA 4, got %q", clipBytes(pkt))
	}
	c.sendTo(tid, tftpwire.AppendACK(nil, 4))
	waitFor(t, "transfer recorded", func() bool { return ts.counter(`ctftp_transfers_total{source="cache",result="ok"}`) == 1 })
}

func TestRetransmitThenGiveUp(t *testing.T) {
	cfg := testConfig()
	cfg.Timeout = 20 * time.Millisecond
	cfg.Retries = 2
	ts := startServer(t, memSource(map[string][]byte{"f": pattern(600)}, bodyReaderAt), cfg)
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", nil))
	pkt, tid := c.recv()
	if b, _, err := tftpwire.ParseData(pkt); err != nil || b != 1 {
		t.Fatalf("got %q, want DATA 1", clipBytes(pkt))
	}
	c.sendTo(tid, tftpwire.AppendACK(nil, 1))
	for i := range 3 { // the first send and two retransmissions
		pkt, _ := c.recv()
		for b, _, _ := tftpwire.ParseData(pkt); b == 1; b, _, _ = tftpwire.ParseData(pkt) {
			pkt, _ = c.recv() // DATA 1 again, sent before our ACK arrived
		}
		if b, p, err := tftpwire.ParseData(pkt); err != nil || b != 2 || len(p) != 88 {
			t.Fatalf("send %d: got %q, want DATA 2", i, clipBytes(pkt))
		}
	}
	pkt, _ = c.recv()
	checkError(t, pkt, tftpwire.CodeNotDefined)
	waitFor(t, "transfer logged", func() bool { return len(ts.logs.records(t, "transfer")) == 1 })
	if recs := ts.logs.records(t, "transfer"); !strings.Contains(recs[0]["err"].(string), ErrClientGone.Error()) {
		t.Errorf("log: %v", recs)
	}
}

func TestOACKRetransmitted(t *testing.T) {
	cfg := testConfig()
	cfg.Timeout = 20 * time.Millisecond
	ts := startServer(t, memSource(map[string][]byte{"f": pattern(700)}, bodyReaderAt), cfg)
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", []tftpwire.Option{{Name: "tsize", Value: "0"}}))
	first, tid := c.recv()
	again, _ := c.recv() // not acknowledged: sent again
	if !bytes.Equal(first, again) {
		t.Fatalf("retransmitted OACK %q differs from %q", again, first)
	}
	c.sendTo(tid, tftpwire.AppendACK(nil, 0))
	for {
		pkt, _ := c.recv()
		if op, _ := tftpwire.PacketOpcode(pkt); op == tftpwire.OpOACK {
			continue // one more retransmission raced our ACK
		}
		if b, _, err := tftpwire.ParseData(pkt); err != nil || b != 1 {
			t.Fatalf("want DATA 1, got %q", clipBytes(pkt))
		}
		c.sendTo(tid, tftpwire.AppendACK(nil, 1))
		break
	}
}

// TestWindowLoss drops a block inside a window: the RFC 7440 receiver
// ACKs the last block it has in order, and the server restarts the window
// right after it.
func TestWindowLoss(t *testing.T) {
	data := pattern(100 * 10) // ten 100-byte blocks, then an empty one
	ts := startServer(t, memSource(map[string][]byte{"f": data}, bodyStream), testConfig())
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", []tftpwire.Option{{Name: "blksize", Value: "100"}, {Name: "windowsize", Value: "4"}}))
	_, tid := c.recv() // OACK
	c.sendTo(tid, tftpwire.AppendACK(nil, 0))
	blocks := func(n int) []uint16 {
		var got []uint16
		for range n {
			pkt, _ := c.recv()
			b, _, err := tftpwire.ParseData(pkt)
			if err != nil {
				t.Fatalf("got %q", clipBytes(pkt))
			}
			got = append(got, b)
		}
		return got
	}
	if got := blocks(4); !reflect.DeepEqual(got, []uint16{1, 2, 3, 4}) {
		t.Fatalf("first window %v", got)
	}
	// Pretend block 3 was lost: ACK 2.
	c.sendTo(tid, tftpwire.AppendACK(nil, 2))
	if got := blocks(4); !reflect.DeepEqual(got, []uint16{3, 4, 5, 6}) {
		t.Fatalf("window after ACK 2: %v", got)
	}
	c.sendTo(tid, tftpwire.AppendACK(nil, 6))
	if got := blocks(4); !reflect.DeepEqual(got, []uint16{7, 8, 9, 10}) {
		t.Fatalf("third window %v", got)
	}
	c.sendTo(tid, tftpwire.AppendACK(nil, 10))
	pkt, _ := c.recv()
	if b, p, _ := tftpwire.ParseData(pkt); b != 11 || len(p) != 0 {
		t.Fatalf("want empty DATA 11, got %q", clipBytes(pkt))
	}
	c.sendTo(tid, tftpwire.AppendACK(nil, 11))
	waitFor(t, "transfer recorded", func() bool { return ts.counter(`ctftp_transfers_total{source="cache",result="ok"}`) == 1 })
	if got := ts.counter("ctftp_transfer_bytes_total"); got != 1000 {
		t.Errorf("bytes %d", got)
	}
}

func TestBusy(t *testing.T) {
	cfg := testConfig()
	cfg.MaxTransfers = 1
	src := newBlockingSource(pattern(10))
	ts := startServer(t, src, cfg)
	first := newRawClient(t, ts.addr)
	first.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "a", "octet", nil))
	<-src.opened
	second := newRawClient(t, ts.addr)
	second.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "b", "octet", nil))
	pkt, _ := second.recv()
	checkError(t, pkt, tftpwire.CodeNotDefined)
	if _, msg, _ := tftpwire.ParseError(pkt); msg != "Server busy" {
		t.Errorf("message %q", msg)
	}
	if got := ts.counter(`ctftp_requests_rejected_total{reason="busy"}`); got != 1 {
		t.Errorf("busy counter %d", got)
	}
	if got := ts.set.GetOrCreateGauge("ctftp_active_transfers", nil).Get(); got != 1 {
		t.Errorf("active gauge %v", got)
	}
	close(src.release)
	pkt, tid := first.recv()
	first.sendTo(tid, tftpwire.AppendACK(nil, 1))
	waitFor(t, "slot free", func() bool { return ts.set.GetOrCreateGauge("ctftp_active_transfers", nil).Get() == 0 })
	if res := second.fetch("b", "octet", nil, 1); len(res.data) != 10 {
		t.Fatal("fetch after the slot freed failed")
	}
}

func TestTransferTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.TransferTimeout = 100 * time.Millisecond
	src := newBlockingSource(nil) // never released: Open waits for ctx
	ts := startServer(t, src, cfg)
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "slow", "octet", nil))
	pkt, _ := c.recv()
	checkError(t, pkt, tftpwire.CodeNotDefined)
	if _, msg, _ := tftpwire.ParseError(pkt); msg != "Transfer timed out" {
		t.Errorf("message %q", msg)
	}
	waitFor(t, "transfer recorded", func() bool { return ts.counter(`ctftp_transfers_total{source="none",result="error"}`) == 1 })
}

// TestTransferTimeoutMidTransfer: a transfer whose client stops
// acknowledging ends at TransferTimeout even when the retransmission
// timeout is longer (the read deadline is never set past the transfer's
// end), with the same error as a timeout during Open.
func TestTransferTimeoutMidTransfer(t *testing.T) {
	cfg := testConfig()
	cfg.Timeout = time.Minute // no retransmission before recv gives up
	cfg.TransferTimeout = 300 * time.Millisecond
	cfg.TransferMinRate = 0 // no more time for a larger file
	ts := startServer(t, memSource(map[string][]byte{"f": pattern(3000)}, bodyReaderAt), cfg)
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", nil))
	_, tid := c.recv() // DATA 1
	c.sendTo(tid, tftpwire.AppendACK(nil, 1))
	c.recv() // DATA 2, never acknowledged
	pkt, _ := c.recv()
	checkError(t, pkt, tftpwire.CodeNotDefined)
	if _, msg, _ := tftpwire.ParseError(pkt); msg != "Transfer timed out" {
		t.Errorf("message %q", msg)
	}
	waitFor(t, "transfer recorded", func() bool { return ts.counter(`ctftp_transfers_total{source="cache",result="error"}`) == 1 })
}

// TestTransferTimeoutGrowsWithSize: a client that keeps acknowledging
// gets a file too large to cross in TransferTimeout at its pace, when the
// file's size at TransferMinRate needs more time (a load for a phone
// across a slow WAN); with no TransferMinRate the same transfer ends at
// TransferTimeout.
func TestTransferTimeoutGrowsWithSize(t *testing.T) {
	data := pattern(3000) // 6 blocks, 6 s at 512 B/s
	for _, tc := range []struct {
		rate ctftp.Size
		want string // "" = the whole file
	}{{512, ""}, {0, "Transfer timed out"}} {
		t.Run(fmt.Sprintf("rate %d", tc.rate), func(t *testing.T) {
			cfg := testConfig()
			cfg.TransferTimeout = 300 * time.Millisecond
			cfg.TransferMinRate = tc.rate
			ts := startServer(t, memSource(map[string][]byte{"f": data}, bodyReaderAt), cfg)
			c := newRawClient(t, ts.addr)
			c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", nil))
			var got []byte
			for {
				pkt, tid := c.recv()
				block, payload, err := tftpwire.ParseData(pkt)
				if err != nil {
					_, msg, perr := tftpwire.ParseError(pkt)
					if perr != nil || msg != tc.want || tc.want == "" {
						t.Fatalf("after %d bytes: %q, want %q", len(got), clipBytes(pkt), tc.want)
					}
					return
				}
				got = append(got, payload...)
				// A slow phone: the whole file takes 600 ms, twice the
				// transfer timeout.
				time.Sleep(100 * time.Millisecond)
				c.sendTo(tid, tftpwire.AppendACK(nil, block))
				if len(payload) < 512 {
					break
				}
			}
			if tc.want != "" {
				t.Fatalf("got the whole file, want %q", tc.want)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("content differs")
			}
			waitFor(t, "transfer recorded", func() bool { return ts.counter(`ctftp_transfers_total{source="cache",result="ok"}`) == 1 })
		})
	}
}

func TestShutdownLetsTransferFinish(t *testing.T) {
	data := pattern(3000)
	ts := startServer(t, memSource(map[string][]byte{"f": data}, bodyReaderAt), testConfig())
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", nil))
	pkt, tid := c.recv()
	got := append([]byte(nil), pkt[4:]...)

	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	// Once shutdown has begun, new requests go unanswered.
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
		t.Fatalf("Shutdown = %v, want nil (the transfer finished)", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	if n := ts.counter(`ctftp_transfers_total{source="cache",result="ok"}`); n != 1 {
		t.Errorf("ok counter %d", n)
	}
}

func TestShutdownGraceCancels(t *testing.T) {
	cfg := testConfig()
	cfg.ShutdownGrace = 50 * time.Millisecond
	cfg.Timeout = 10 * time.Second // the transfer would otherwise wait this long
	ts := startServer(t, memSource(map[string][]byte{"f": pattern(3000)}, bodyReaderAt), cfg)
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", nil))
	c.recv() // DATA 1, never acknowledged
	err := ts.Shutdown(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	pkt, _ := c.recv()
	checkError(t, pkt, tftpwire.CodeNotDefined)
	if _, msg, _ := tftpwire.ParseError(pkt); msg != "Server shutting down" {
		t.Errorf("message %q", msg)
	}
	if err := <-ts.done; err != nil {
		t.Errorf("Serve = %v", err)
	}
	ts.done <- nil // for the cleanup
}

func TestServeContextCancel(t *testing.T) {
	cfg := testConfig()
	srv, err := NewServer(cfg, memSource(map[string][]byte{"f": pattern(10)}, bodyReaderAt), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	waitFor(t, "bound", func() bool { return len(srv.Addrs()) == 1 })
	c := newRawClient(t, srv.Addrs()[0])
	if res := c.fetch("f", "octet", nil, 1); len(res.data) != 10 {
		t.Fatal("fetch failed")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if err := srv.Serve(context.Background()); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after shutdown = %v", err)
	}
	if err := srv.Listen(); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Listen after shutdown = %v", err)
	}
}

func TestSymlinkOutsideRootRefused(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	writeFile(t, outside, "secret", "top secret")
	writeFile(t, root, "ITLFile.tlv", "itl")
	symlink(t, outside+"/secret", root+"/escape")
	local, err := NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	ts := startServer(t, local, testConfig())
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "escape", "octet", nil))
	c.expectError(tftpwire.CodeAccessViolation)
	if res := c.fetch("/ITLFile.tlv", "octet", []tftpwire.Option{{Name: "tsize", Value: "0"}}, 1); string(res.data) != "itl" ||
		!reflect.DeepEqual(res.oack, []tftpwire.Option{{Name: "tsize", Value: "3"}}) {
		t.Fatalf("local fetch: %q %v", res.data, res.oack)
	}
	waitFor(t, "transfers recorded", func() bool {
		return ts.counter(`ctftp_transfers_total{source="local",result="ok"}`) == 1 &&
			ts.counter(`ctftp_transfers_total{source="none",result="denied"}`) == 1
	})
}

func TestNewServerRejectsBadConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBlockSize = 7
	if _, err := NewServer(cfg, memSource(nil, bodyReaderAt), nil, nil); err == nil || !strings.Contains(err.Error(), "max_blksize") {
		t.Errorf("err = %v", err)
	}
	if _, err := NewServer(DefaultConfig(), nil, nil, nil); err == nil {
		t.Error("nil source accepted")
	}
}

func TestListenFailureClosesEverything(t *testing.T) {
	taken, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := testConfig()
	cfg.Listen = []string{"127.0.0.1:0", taken.LocalAddr().String()}
	srv, err := NewServer(cfg, memSource(nil, bodyReaderAt), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); !errors.Is(err, errAddrInUse) {
		t.Fatalf("Listen = %v, want address in use", err)
	}
	if len(srv.Addrs()) != 0 {
		t.Errorf("Addrs after a failed Listen = %v", srv.Addrs())
	}
}

func TestIPv6Unavailable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"EAFNOSUPPORT", &net.OpError{Op: "listen", Err: errAFNoSupport}, true},
		{"EADDRNOTAVAIL", &net.OpError{Op: "listen", Err: errAddrNotAvail}, true},
		{"EADDRINUSE", &net.OpError{Op: "listen", Err: errAddrInUse}, false},
		{"other", errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ipv6Unavailable(tt.err); got != tt.want {
				t.Errorf("ipv6Unavailable(%v) = %v", tt.err, got)
			}
		})
	}
}

// A transfer whose file is still arriving from a backend (a stream that
// stalls after the first block) waits in a read, not for an ACK: the
// shutdown grace must end that wait too, and the phone hears why.
func TestShutdownGraceEndsStreamWait(t *testing.T) {
	cfg := testConfig()
	cfg.ShutdownGrace = 50 * time.Millisecond
	st := ctftp.NewStream(3000)
	st.Write(pattern(3000)[:512])
	src := ctftp.SourceFunc(func(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
		return &ctftp.File{Body: st.NewReader(nil), Size: st.Size(), Origin: ctftp.OriginBackend}, nil
	})
	ts := startServer(t, src, cfg)
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "f", "octet", nil))
	_, tid := c.recv() // DATA 1: the block that arrived
	c.sendTo(tid, tftpwire.AppendACK(nil, 1))
	waitFor(t, "the transfer to wait for block 2", func() bool { return ts.active.Load() == 1 })
	if err := ts.Shutdown(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded after the grace", err)
	}
	pkt, _ := c.recv()
	checkError(t, pkt, tftpwire.CodeNotDefined)
	if err := <-ts.done; err != nil {
		t.Errorf("Serve = %v", err)
	}
	ts.done <- nil // for the cleanup
}

// TestLongTransfers: a transfer in flight is listed for /status with the
// bytes its client acknowledged, its file's size and its time limit (the
// size at transfer_min_rate when that is longer than transfer_timeout);
// the status page shows its progress.
func TestLongTransfers(t *testing.T) {
	cfg := testConfig()
	cfg.TransferTimeout = 2 * time.Second
	cfg.TransferMinRate = 1000 // 3000 bytes: 4 s
	ts := startServer(t, memSource(map[string][]byte{"load.bin": pattern(3000)}, bodyReaderAt), cfg)
	c := newRawClient(t, ts.addr)
	c.sendTo(ts.addr, tftpwire.AppendRequest(nil, tftpwire.OpRRQ, "load.bin", "octet", nil))
	_, tid := c.recv() // DATA 1
	c.sendTo(tid, tftpwire.AppendACK(nil, 1))
	c.recv() // DATA 2: block 1 is acknowledged
	var long []TransferProgress
	waitFor(t, "the acknowledgement counted", func() bool {
		long, _ = ts.LongTransfers(0, 10)
		return len(long) == 1 && long[0].Bytes == 512
	})
	p := long[0]
	if p.File != "load.bin" || p.Size != 3000 || p.Client != c.conn.LocalAddr().String() {
		t.Errorf("progress %+v", p)
	}
	if limit := p.Ends.Sub(p.Started); limit != 4*time.Second {
		t.Errorf("time limit %s after the start, want 4s (3000 bytes at 1000 B/s)", limit)
	}
	if none, running := ts.LongTransfers(time.Hour, 10); len(none) != 0 || running != 1 {
		t.Errorf("transfers an hour old: %d of %d running", len(none), running)
	}
	sec := transfersSection(TransfersStatus{Running: 1, Long: long}, p.Started.Add(time.Second))
	if len(sec.Rows) != 1 || sec.Rows[0][2].Text != "512 B of 2.9 KiB (17%)" || sec.Rows[0][3].Text != "1s" || sec.Rows[0][4].Text != "in 3s" {
		t.Errorf("status page rows %+v", sec.Rows)
	}
}
