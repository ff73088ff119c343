package tftptest

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type got struct {
	data    []byte
	tsize   int64
	hasSize bool
	err     error
}

// get reads name from addr with pin/tftp's client, asking for tsize.
func get(t *testing.T, addr, name string, timeout time.Duration) got {
	t.Helper()
	c, err := tftp.NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(timeout)
	c.SetRetries(1)
	c.SetBackoff(func(int) time.Duration { return 0 })
	c.RequestTSize(true)
	if ip := netip.MustParseAddrPort(addr).Addr(); ip.IsLoopback() {
		c.SetLocalAddr(ip.String())
	}
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return got{err: err}
	}
	n, ok := wt.(tftp.IncomingTransfer).Size()
	var b bytes.Buffer
	_, err = wt.WriteTo(&b)
	return got{data: b.Bytes(), tsize: n, hasSize: ok, err: err}
}

func TestServer(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 300) // several 512-byte blocks
	s := NewServer(t, map[string][]byte{"ITLFile.tlv": []byte("itl"), "big.bin": big})
	tests := []struct {
		name     string
		file     string
		want     []byte
		wantErr  string
		requests int
	}{
		{name: "small file", file: "ITLFile.tlv", want: []byte("itl"), requests: 1},
		{name: "multi-block file", file: "big.bin", want: big, requests: 1},
		{name: "missing file", file: "SEP001122334455.cnf.xml.sgn", wantErr: "code: 1", requests: 1},
	}
	total := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := get(t, s.Addr(), tc.file, time.Second)
			total += tc.requests
			if tc.wantErr != "" {
				if g.err == nil || !strings.Contains(g.err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", g.err, tc.wantErr)
				}
			} else {
				if g.err != nil {
					t.Fatal(g.err)
				}
				if !bytes.Equal(g.data, tc.want) {
					t.Fatalf("got %d bytes, want %d", len(g.data), len(tc.want))
				}
				if !g.hasSize || g.tsize != int64(len(tc.want)) {
					t.Errorf("tsize = %d, %v; want %d", g.tsize, g.hasSize, len(tc.want))
				}
			}
			if n := s.Requests(tc.file); n != tc.requests {
				t.Errorf("Requests(%q) = %d, want %d", tc.file, n, tc.requests)
			}
		})
	}
	if n := s.TotalRequests(); n != total {
		t.Errorf("TotalRequests = %d, want %d", n, total)
	}
	if n := s.MaxConcurrent(); n != 1 {
		t.Errorf("MaxConcurrent after sequential gets = %d, want 1", n)
	}
}

func TestSetFile(t *testing.T) {
	s := NewServer(t, nil)
	steps := []struct {
		name    string
		set     []byte
		want    string
		missing bool
	}{
		{name: "add", set: []byte("v1"), want: "v1"},
		{name: "replace", set: []byte("v2"), want: "v2"},
		{name: "remove", set: nil, missing: true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			s.SetFile("f", st.set)
			g := get(t, s.Addr(), "f", time.Second)
			if st.missing {
				if g.err == nil || !strings.Contains(g.err.Error(), "code: 1") {
					t.Fatalf("err = %v, want file not found", g.err)
				}
				return
			}
			if g.err != nil || string(g.data) != st.want {
				t.Fatalf("got %q, %v; want %q", g.data, g.err, st.want)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	files := map[string][]byte{"f": bytes.Repeat([]byte("x"), 2000)}
	tests := []struct {
		name    string
		opts    []Option
		wantErr string // "" means success
		check   func(t *testing.T, s *Server, g got)
	}{
		{
			name:    "silent server never answers but counts",
			opts:    []Option{Silent()},
			wantErr: "timeout",
			check: func(t *testing.T, s *Server, g got) {
				// The request and its one retransmission, counted as
				// they are read, perhaps after the client gave up.
				deadline := time.Now().Add(10 * time.Second)
				for s.Requests("f") != 2 {
					if time.Now().After(deadline) {
						t.Fatalf("Requests = %d, want 2", s.Requests("f"))
					}
					time.Sleep(5 * time.Millisecond)
				}
			},
		},
		{
			name:    "refusal sends the given code",
			opts:    []Option{Refuse(2, "File must have global read permissions")},
			wantErr: "code: 2, message: File must have global read permissions",
		},
		{
			name: "corrupt server sends less than its tsize",
			opts: []Option{Corrupt()},
			check: func(t *testing.T, s *Server, g got) {
				if !g.hasSize || g.tsize != 2000 || len(g.data) != 1000 {
					t.Errorf("tsize %d (%v), %d bytes; want tsize 2000 and 1000 bytes", g.tsize, g.hasSize, len(g.data))
				}
			},
		},
		{
			name: "delay still answers",
			opts: []Option{WithDelay(50 * time.Millisecond)},
			check: func(t *testing.T, s *Server, g got) {
				if len(g.data) != 2000 {
					t.Errorf("%d bytes, want 2000", len(g.data))
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewServer(t, files, tc.opts...)
			g := get(t, s.Addr(), "f", 200*time.Millisecond)
			if tc.wantErr == "" && g.err != nil {
				t.Fatal(g.err)
			}
			if tc.wantErr != "" && (g.err == nil || !strings.Contains(g.err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want one containing %q", g.err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, s, g)
			}
		})
	}
}

func TestFailAfter(t *testing.T) {
	s := NewServer(t, map[string][]byte{"f": []byte("ok")}, FailAfter(1))
	if g := get(t, s.Addr(), "f", 200*time.Millisecond); g.err != nil || string(g.data) != "ok" {
		t.Fatalf("first request: %q, %v", g.data, g.err)
	}
	if g := get(t, s.Addr(), "f", 200*time.Millisecond); g.err == nil || !strings.Contains(g.err.Error(), "timeout") {
		t.Fatalf("second request: err = %v, want a timeout", g.err)
	}
}

func TestMaxConcurrentBoundedByClients(t *testing.T) {
	s := NewServer(t, map[string][]byte{"f": []byte("ok")}, WithDelay(20*time.Millisecond))
	const n = 4
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if g := get(t, s.Addr(), "f", 2*time.Second); g.err != nil {
				t.Error(g.err)
			}
		})
	}
	wg.Wait()
	if p := s.MaxConcurrent(); p < 1 || p > n {
		t.Errorf("MaxConcurrent = %d, want between 1 and %d", p, n)
	}
	if s.TotalRequests() != n {
		t.Errorf("TotalRequests = %d, want %d", s.TotalRequests(), n)
	}
}

func TestIPv6(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	c.Close()
	s := NewServer(t, map[string][]byte{"f": []byte("six")}, ListenOn(netip.MustParseAddrPort("[::1]:0")))
	if !s.AddrPort().Addr().Is6() {
		t.Fatalf("listening on %s, want ::1", s.Addr())
	}
	if g := get(t, s.Addr(), "f", time.Second); g.err != nil || string(g.data) != "six" {
		t.Fatalf("got %q, %v", g.data, g.err)
	}
}

func TestCloseRightAwayAndTwice(t *testing.T) {
	for _, opt := range []Option{WithDelay(0), Silent(), Refuse(0, "x")} {
		s := NewServer(t, nil, opt)
		s.Close()
		s.Close()
	}
}

func TestCloseReleasesHungHandler(t *testing.T) {
	s := NewServer(t, map[string][]byte{"f": []byte("ok")}, FailAfter(0))
	g := get(t, s.Addr(), "f", 100*time.Millisecond)
	if g.err == nil {
		t.Fatal("FailAfter(0) answered")
	}
	s.Close() // must return although handlers are parked
}

func TestStartTFTPD(t *testing.T) {
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("cisco"), 1000)
	write := func(name string, b []byte, mode os.FileMode) {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask-proof
			t.Fatal(err)
		}
	}
	write("ITLFile.tlv", big, 0o644)
	write("secret.cnf.xml", []byte("x"), 0o600)
	addr := StartTFTPD(t, root)

	tests := []struct {
		name, file, wantErr string
		want                []byte
	}{
		{name: "readable file", file: "ITLFile.tlv", want: big},
		{name: "missing file", file: "nope", wantErr: "code: 1, message: File not found"},
		{name: "unreadable file", file: "secret.cnf.xml", wantErr: "code: 2, message: File must have global read permissions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := get(t, addr, tc.file, time.Second)
			if tc.wantErr != "" {
				if g.err == nil || !strings.Contains(g.err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", g.err, tc.wantErr)
				}
				return
			}
			if g.err != nil || !bytes.Equal(g.data, tc.want) {
				t.Fatalf("got %d bytes, %v", len(g.data), g.err)
			}
			if !g.hasSize || g.tsize != int64(len(tc.want)) {
				t.Errorf("tsize = %d (%v), want %d", g.tsize, g.hasSize, len(tc.want))
			}
		})
	}
}
