package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/ctftp/ctftp"
)

// The error texts below are the ones pin/tftp v3.2.0's client produces
// (receiver.go receiveDatagram, packet.go parsePacket, client.go
// NewClient), seen against tftpd-hpa and pin/tftp servers; an ERROR
// packet's message keeps its NUL terminator.
func TestClassifyClientError(t *testing.T) {
	timeout := &net.OpError{Op: "read", Net: "udp", Source: &net.UDPAddr{IP: net.IPv6zero, Port: 53325}, Err: os.ErrDeadlineExceeded}
	refused := &net.OpError{Op: "write", Net: "udp", Err: os.NewSyscallError("sendto", syscall.ECONNREFUSED)}
	type class int
	const (
		notFound class = iota + 1
		refusedByBackend
		unavailable
		passThrough
	)
	tests := []struct {
		name    string
		in      error
		want    class
		code    uint16
		message string
	}{
		{name: "tftpd-hpa file not found", in: errors.New("code: 1, message: File not found\x00"), want: notFound, code: 1, message: "File not found"},
		{name: "tftpd-hpa not world-readable", in: errors.New("code: 2, message: File must have global read permissions\x00"), want: refusedByBackend, code: 2, message: "File must have global read permissions"},
		{name: "tftpd-hpa access violation", in: errors.New("code: 2, message: Access violation\x00"), want: refusedByBackend, code: 2, message: "Access violation"},
		{name: "pin/tftp handler error", in: errors.New("code: 1, message: open x: no such file or directory\x00"), want: notFound, code: 1, message: "open x: no such file or directory"},
		{name: "undefined error, empty text", in: errors.New("code: 0, message: \x00"), want: refusedByBackend, code: 0, message: ""},
		{name: "disk full", in: errors.New("code: 3, message: Disk full\x00"), want: refusedByBackend, code: 3, message: "Disk full"},
		{name: "message without NUL", in: errors.New("code: 1, message: gone"), want: notFound, code: 1, message: "gone"},
		{name: "message containing the separator", in: errors.New("code: 4, message: a, message: b\x00junk"), want: refusedByBackend, code: 4, message: "a, message: b"},
		{name: "control bytes in message", in: errors.New("code: 5, message: a\nb\x7f\x00"), want: refusedByBackend, code: 5, message: "a?b?"},
		{name: "largest code", in: errors.New("code: 65535, message: x\x00"), want: refusedByBackend, code: 65535, message: "x"},
		{name: "code too large", in: errors.New("code: 65536, message: x\x00"), want: unavailable},
		{name: "negative code", in: errors.New("code: -1, message: x\x00"), want: unavailable},
		{name: "missing separator", in: errors.New("code: 1 message: x"), want: unavailable},
		{name: "read timeout", in: timeout, want: unavailable},
		{name: "wrapped read timeout", in: fmt.Errorf("x: %w", timeout), want: unavailable},
		{name: "socket error", in: refused, want: unavailable},
		{name: "short packet", in: errors.New("short packet"), want: unavailable},
		{name: "short DATA packet", in: errors.New("short DATA packet: 3"), want: unavailable},
		{name: "short ERROR packet", in: errors.New("short ERROR packet: 4"), want: unavailable},
		{name: "unknown opcode", in: errors.New("unknown opcode: 9"), want: unavailable},
		{name: "resolving address", in: errors.New("resolving address x:69: lookup x: no such host"), want: unavailable},
		{name: "our size limit", in: ErrTooLarge, want: passThrough},
		{name: "caller cancelled", in: context.Canceled, want: passThrough},
		{name: "caller deadline", in: context.DeadlineExceeded, want: passThrough},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := classifyClientError(tc.in)
			if got == nil {
				t.Fatal("nil")
			}
			var te *TFTPError
			isTE := errors.As(got, &te)
			switch tc.want {
			case notFound:
				if !errors.Is(got, ctftp.ErrNotFound) || errors.Is(got, ctftp.ErrUnavailable) {
					t.Fatalf("%v: want not found only", got)
				}
			case refusedByBackend:
				if !errors.Is(got, ErrRefused) || !errors.Is(got, ctftp.ErrUnavailable) || errors.Is(got, ctftp.ErrNotFound) || errors.Is(got, ctftp.ErrDenied) {
					t.Fatalf("%v: want refused (unavailable, not denied)", got)
				}
			case unavailable:
				if !errors.Is(got, ErrBackendUnavailable) || !errors.Is(got, ctftp.ErrUnavailable) || isTE {
					t.Fatalf("%v: want backend unavailable", got)
				}
				if !errors.Is(got, tc.in) {
					t.Errorf("%v does not wrap the original error", got)
				}
			case passThrough:
				if got != tc.in {
					t.Fatalf("%v: want %v unchanged", got, tc.in)
				}
			}
			if tc.want == notFound || tc.want == refusedByBackend {
				if !isTE || te.Code != tc.code || te.Message != tc.message {
					t.Fatalf("got %#v, want code %d message %q", te, tc.code, tc.message)
				}
			}
		})
	}
	if classifyClientError(nil) != nil {
		t.Error("nil did not stay nil")
	}
}

// FuzzClassifyClientError: any text classifies into exactly one of "not
// found" and "unavailable" without panicking, and every ERROR packet
// pin/tftp can describe comes back with its code and cleaned message.
func FuzzClassifyClientError(f *testing.F) {
	f.Add("code: 1, message: File not found\x00", uint16(1), "File not found")
	f.Add("code: 2, message: File must have global read permissions\x00", uint16(2), "x")
	f.Add("short packet", uint16(0), "")
	f.Add("code: , message: ", uint16(65535), "a, message: b")
	f.Add("code: 1, message: \xff\xfe", uint16(7), "\x00\x01")
	f.Fuzz(func(t *testing.T, s string, code uint16, msg string) {
		got := classifyClientError(errors.New(s))
		nf, un := errors.Is(got, ctftp.ErrNotFound), errors.Is(got, ctftp.ErrUnavailable)
		if nf == un {
			t.Fatalf("%q -> %v: not found %v, unavailable %v", s, got, nf, un)
		}
		_ = got.Error()

		text := fmt.Sprintf("code: %d, message: %s", code, msg+"\x00")
		var te *TFTPError
		if !errors.As(classifyClientError(errors.New(text)), &te) {
			t.Fatalf("%q not read as an ERROR packet", text)
		}
		if te.Code != code || te.Message != cleanMessage(msg) {
			t.Fatalf("%q -> code %d message %q", text, te.Code, te.Message)
		}
		if strings.ContainsAny(te.Message, "\x00\n\r") || len(te.Message) > 200*3 {
			t.Fatalf("message not cleaned: %q", te.Message)
		}
	})
}

func TestProbeAnswer(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		answered bool
		code     int // -1: not an ERROR
		message  string
	}{
		{name: "DATA 1", in: []byte{0, 3, 0, 1, 'x'}, answered: true, code: -1},
		{name: "empty DATA 1", in: []byte{0, 3, 0, 1}, answered: true, code: -1},
		{name: "OACK", in: []byte{0, 6, 't', 's', 'i', 'z', 'e', 0, '5', 0}, answered: true, code: -1},
		{name: "ERROR 1", in: append([]byte{0, 5, 0, 1}, "File not found\x00"...), answered: true, code: 1, message: "File not found"},
		{name: "ERROR without text", in: []byte{0, 5, 0, 2}, answered: true, code: 2},
		{name: "ERROR without NUL", in: append([]byte{0, 5, 0, 0}, "busy"...), answered: true, code: 0, message: "busy"},
		{name: "ACK is no answer", in: []byte{0, 4, 0, 1}, code: -1},
		{name: "RRQ is no answer", in: append([]byte{0, 1}, "f\x00octet\x00"...), code: -1},
		{name: "3-byte ERROR", in: []byte{0, 5, 0}, code: -1},
		{name: "empty", in: nil, code: -1},
		{name: "unknown opcode", in: []byte{0, 9, 0, 0}, code: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			answered, te := probeAnswer(tc.in)
			if answered != tc.answered {
				t.Fatalf("answered = %v, want %v", answered, tc.answered)
			}
			if (te != nil) != (tc.code >= 0) {
				t.Fatalf("TFTPError %v, want code %d", te, tc.code)
			}
			if te != nil && (int(te.Code) != tc.code || te.Message != tc.message) {
				t.Fatalf("got %+v, want code %d message %q", te, tc.code, tc.message)
			}
		})
	}
}

// FuzzProbeAnswer: any datagram a backend (or anyone spoofing it) sends a
// probe is read without panicking, and only DATA, OACK and ERROR count.
func FuzzProbeAnswer(f *testing.F) {
	f.Add([]byte{0, 3, 0, 1, 'x'})
	f.Add(append([]byte{0, 5, 0, 1}, "File not found\x00"...))
	f.Add([]byte{0, 5, 0})
	f.Add([]byte{0, 6})
	f.Fuzz(func(t *testing.T, p []byte) {
		answered, te := probeAnswer(p)
		op := -1
		if len(p) >= 2 {
			op = int(p[0])<<8 | int(p[1])
		}
		if answered != (len(p) >= 4 && (op == opDATA || op == opOACK || op == opERROR)) {
			t.Fatalf("%x: answered = %v", p, answered)
		}
		if (te != nil) != (answered && op == opERROR) {
			t.Fatalf("%x: TFTPError %v", p, te)
		}
		if te != nil && strings.ContainsRune(te.Message, 0) {
			t.Fatalf("%x: NUL in message %q", p, te.Message)
		}
	})
}

// FuzzParseDNSServer: a resolver address either parses to something the
// DNS client can dial ("ip:port", port not 0) or is refused.
func FuzzParseDNSServer(f *testing.F) {
	for _, s := range []string{"10.0.0.53", "10.0.0.53:53", "[::1]:5353", "::1", "[::1]", "x:53", "10.0.0.1:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hp, err := parseDNSServer(s)
		if err != nil {
			return
		}
		ap, err := netip.ParseAddrPort(hp)
		if err != nil || ap.Port() == 0 {
			t.Fatalf("%q -> %q: %v", s, hp, err)
		}
	})
}
