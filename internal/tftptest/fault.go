package tftptest

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// Fault is how a FaultServer misbehaves.
type Fault int

// The faults a FaultServer plays. Every one is a backend that is up at
// the network level; "silent" is SetSilent, on any of them.
const (
	// FaultNone serves every file correctly (RFC 1350, 512-byte blocks,
	// options ignored). With SetSilent it is a flapping backend.
	FaultNone Fault = iota
	// FaultShort ends every file early with a well-formed short block:
	// the first half of the file, cut so that its last block is short,
	// and no tsize (options are ignored). Only the file's own lengths can
	// tell.
	FaultShort
	// FaultGarbage answers every read request with a packet of opcode 9,
	// which no TFTP version defines.
	FaultGarbage
	// FaultWrongPort sends DATA 1 from the transfer's port and every later
	// block from another port: a client that fixed the transfer ID after
	// the first answer refuses them, and the transfer stalls.
	FaultWrongPort
	// FaultStray sends, before every DATA block after the first, a DATA
	// packet with the same block number and wrong bytes from another
	// port. The transfer itself is correct: a client that fixed the
	// transfer ID at the first answer gets the right bytes.
	FaultStray
	// FaultWrongAddr answers from another loopback address (127.0.0.2
	// for a server on 127.0.0.1): the answer is not the backend's.
	FaultWrongAddr
	// FaultStall sends the first half of every file's full blocks, then
	// stops answering, mid-transfer: a backend that hung while sending.
	FaultStall
)

func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "none"
	case FaultShort:
		return "short"
	case FaultGarbage:
		return "garbage"
	case FaultWrongPort:
		return "wrong-port"
	case FaultStray:
		return "stray"
	case FaultWrongAddr:
		return "wrong-addr"
	case FaultStall:
		return "stall"
	}
	return "fault?"
}

// FaultServer is an in-process TFTP server that plays one Fault, and can
// be made silent (and answering again) at any time, or slow. It speaks
// plain RFC 1350: it ignores options, so a client that asked for some
// reads 512-byte blocks. Its methods are safe for concurrent use.
type FaultServer struct {
	conn  *net.UDPConn
	fault Fault
	wg    sync.WaitGroup
	done  chan struct{}
	once  sync.Once

	mu       sync.Mutex
	files    map[string][]byte
	only     map[string]bool // the files the fault applies to; nil: all
	silent   bool
	delay    time.Duration
	requests int
	answered int
}

// NewFaultServer starts a FaultServer for files on 127.0.0.1 and a free
// port, and registers Close with t.Cleanup.
func NewFaultServer(t testing.TB, files map[string][]byte, fault Fault) *FaultServer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("tftptest: %v", err)
	}
	s := &FaultServer{conn: conn, fault: fault, files: map[string][]byte{}, done: make(chan struct{})}
	for n, b := range files {
		s.files[n] = bytes.Clone(b)
	}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// Addr is the server's address as "ip:port".
func (s *FaultServer) Addr() string { return s.AddrPort().String() }

// AddrPort is the server's address.
func (s *FaultServer) AddrPort() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// SetSilent makes the server stop answering (requests are still counted)
// or answer again.
func (s *FaultServer) SetSilent(silent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = silent
}

// FaultOnly limits the fault to the named files; the others are served
// correctly.
func (s *FaultServer) FaultOnly(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.only = map[string]bool{}
	for _, n := range names {
		s.only[n] = true
	}
}

// SetDelay makes the server wait d after each read request before its
// first answer: a slow backend.
func (s *FaultServer) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Requests counts the read requests received, retransmissions included.
func (s *FaultServer) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Answered counts the read requests answered (not while silent).
func (s *FaultServer) Answered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.answered
}

// Close stops the server and waits for its transfers. It is idempotent.
func (s *FaultServer) Close() {
	s.once.Do(func() {
		close(s.done)
		s.conn.Close()
	})
	s.wg.Wait()
}

func (s *FaultServer) serve() {
	defer s.wg.Done()
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
		s.mu.Lock()
		s.requests++
		silent, delay := s.silent, s.delay
		b, ok := s.files[string(name)]
		fault := s.fault
		if s.only != nil && !s.only[string(name)] {
			fault = FaultNone
		}
		if !silent {
			s.answered++
		}
		s.mu.Unlock()
		if silent {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if delay > 0 {
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-s.done:
					t.Stop()
					return
				}
			}
			s.transfer(from, b, ok, fault)
		}()
	}
}

// transfer answers one read request from a new socket (the transfer ID).
func (s *FaultServer) transfer(client netip.AddrPort, file []byte, found bool, fault Fault) {
	ip := net.IPv4(127, 0, 0, 1)
	if fault == FaultWrongAddr {
		ip = net.IPv4(127, 0, 0, 2)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		return
	}
	defer conn.Close()
	var other *net.UDPConn // the wrong port of FaultWrongPort and FaultStray
	if fault == FaultWrongPort || fault == FaultStray {
		if other, err = net.ListenUDP("udp", &net.UDPAddr{IP: ip}); err != nil {
			return
		}
		defer other.Close()
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-s.done:
			conn.SetDeadline(time.Unix(1, 0))
		case <-stop:
		}
	}()
	if !found {
		conn.WriteToUDPAddrPort(errorPacket(1, "File not found"), client)
		return
	}
	if fault == FaultGarbage {
		conn.WriteToUDPAddrPort([]byte{0, 9, 0, 1, 'x'}, client)
		return
	}
	if fault == FaultShort {
		n := len(file) / 2
		if n%512 == 0 && n > 0 {
			n-- // the last block must be short
		}
		file = file[:n]
	}
	ack := make([]byte, 516)
	for block := 1; ; block++ {
		off := (block - 1) * 512
		if off > len(file) {
			return
		}
		if fault == FaultStall && off >= len(file)/2 {
			<-s.done // hung: nothing more, until Close
			return
		}
		payload := file[off:min(off+512, len(file))]
		p := binary.BigEndian.AppendUint16(nil, 3)
		p = binary.BigEndian.AppendUint16(p, uint16(block))
		p = append(p, payload...)
		from := conn
		if fault == FaultWrongPort && block > 1 {
			from = other
		}
		acked := false
		for try := 0; try < 4 && !acked; try++ {
			if fault == FaultStray && block > 1 {
				stray := append(binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 3), uint16(block)), bytes.Repeat([]byte{'!'}, len(payload))...)
				other.WriteToUDPAddrPort(stray, client)
			}
			if _, err := from.WriteToUDPAddrPort(p, client); err != nil {
				return
			}
			conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			for {
				n, src, err := conn.ReadFromUDPAddrPort(ack)
				if err != nil {
					select {
					case <-s.done:
						return
					default:
					}
					break // timeout: send again
				}
				if src != client || n < 4 {
					continue
				}
				switch binary.BigEndian.Uint16(ack) {
				case 5:
					return // the client gave up
				case 4:
					if int(binary.BigEndian.Uint16(ack[2:])) == block&0xffff {
						acked = true
					}
				}
				if acked {
					break
				}
			}
		}
		if !acked || len(payload) < 512 {
			return
		}
	}
}

func errorPacket(code uint16, msg string) []byte {
	p := binary.BigEndian.AppendUint16(nil, 5)
	p = binary.BigEndian.AppendUint16(p, code)
	return append(append(p, msg...), 0)
}
