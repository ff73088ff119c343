package loadgen

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftpwire"
)

// holdServer is a TFTP server that only opens transfers: it answers each
// RRQ with an OACK from a socket of its own and keeps that transfer open
// until the client sends an ERROR. It ignores the first RRQ of every
// client, so StartHold's retransmission is exercised too.
type holdServer struct {
	t    *testing.T
	conn *net.UDPConn
	wg   sync.WaitGroup

	mu       sync.Mutex
	seen     map[netip.AddrPort]int
	open     int
	released int
	tids     []*net.UDPConn
	answer   []byte // what every RRQ gets: nil = an OACK from a new TID
	silent   bool
}

func newHoldServer(t *testing.T) *holdServer {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &holdServer{t: t, conn: c, seen: map[netip.AddrPort]int{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *holdServer) addr() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (s *holdServer) close() {
	s.conn.Close()
	s.mu.Lock()
	for _, c := range s.tids {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *holdServer) serve() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		req, err := tftpwire.ParseRequest(buf[:n])
		if err != nil || req.Opcode != tftpwire.OpRRQ {
			s.t.Errorf("not an RRQ: %q", buf[:n])
			continue
		}
		if len(req.Options) != 1 || req.Options[0] != (tftpwire.Option{Name: "timeout", Value: "255"}) {
			s.t.Errorf("RRQ options %v, want timeout=255", req.Options)
		}
		s.mu.Lock()
		s.seen[from]++
		first, silent, answer := s.seen[from] == 1, s.silent, s.answer
		s.mu.Unlock()
		if first || silent {
			continue
		}
		if answer != nil {
			s.conn.WriteToUDPAddrPort(answer, from)
			continue
		}
		tid, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			s.t.Error(err)
			continue
		}
		s.mu.Lock()
		s.open++
		s.tids = append(s.tids, tid)
		s.mu.Unlock()
		tid.WriteToUDPAddrPort(tftpwire.AppendOACK(nil, req.Options), from)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			b := make([]byte, 1500)
			for {
				n, src, err := tid.ReadFromUDPAddrPort(b)
				if err != nil {
					return
				}
				if src != from {
					continue
				}
				if code, _, err := tftpwire.ParseError(b[:n]); err == nil && code == 0 {
					s.mu.Lock()
					s.open--
					s.released++
					s.mu.Unlock()
					return
				}
			}
		}()
	}
}

func (s *holdServer) counts() (open, released int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open, s.released
}

func TestHoldOpensAndReleases(t *testing.T) {
	s := newHoldServer(t)
	const n = 40
	h, err := StartHold(context.Background(), s.addr(), "big.bin", n, HoldOptions{Timeout: 50 * time.Millisecond, Window: 8})
	if err != nil {
		t.Fatal(err)
	}
	if open, _ := s.counts(); h.Len() != n || open != n {
		t.Fatalf("held %d, server has %d open, want %d", h.Len(), open, n)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if h.Len() != 0 {
		t.Fatalf("still holding %d", h.Len())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		open, released := s.counts()
		if open == 0 && released == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server: %d open, %d released", open, released)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := h.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
}

func TestHoldFailures(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*holdServer)
		errHas string
	}{
		{"server refuses", func(s *holdServer) {
			s.answer = tftpwire.AppendError(nil, 0, "Server busy")
		}, "server error 0: Server busy"},
		{"server silent", func(s *holdServer) { s.silent = true }, "no answer to 2 requests"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newHoldServer(t)
			s.mu.Lock()
			tc.setup(s)
			s.mu.Unlock()
			h, err := StartHold(context.Background(), s.addr(), "big.bin", 3, HoldOptions{Timeout: 20 * time.Millisecond, Retries: 1})
			if err == nil {
				h.Release()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "0 of 3 transfers opened") || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("error %q", err)
			}
		})
	}
}

func TestHoldStopsWithItsContext(t *testing.T) {
	s := newHoldServer(t)
	s.mu.Lock()
	s.silent = true
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := StartHold(ctx, s.addr(), "big.bin", 5, HoldOptions{}); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("error %v", err)
	}
}
