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
	"github.com/ctftp/ctftp/internal/tftpclient"
)

// classifyClientError reads tftpclient's errors by type; no text is
// parsed any more.
func TestClassifyClientError(t *testing.T) {
	type class int
	const (
		notFound class = iota + 1
		refusedByBackend
		unavailable
		passThrough
	)
	refused := &net.OpError{Op: "write", Net: "udp", Err: os.NewSyscallError("sendto", syscall.ECONNREFUSED)}
	tests := []struct {
		name    string
		in      error
		want    class
		code    uint16
		message string
	}{
		{name: "file not found", in: &tftpclient.ServerError{Code: 1, Message: "File not found"}, want: notFound, code: 1, message: "File not found"},
		{name: "not world-readable", in: &tftpclient.ServerError{Code: 2, Message: "File must have global read permissions"}, want: refusedByBackend, code: 2, message: "File must have global read permissions"},
		{name: "undefined, empty text", in: &tftpclient.ServerError{Code: 0}, want: refusedByBackend, code: 0, message: ""},
		{name: "control bytes in message", in: &tftpclient.ServerError{Code: 5, Message: "a\nb\x7f\x00junk"}, want: refusedByBackend, code: 5, message: "a?b?"},
		{name: "wrapped server error", in: fmt.Errorf("x: %w", &tftpclient.ServerError{Code: 1, Message: "gone"}), want: notFound, code: 1, message: "gone"},
		{name: "no answer", in: tftpclient.ErrTimeout, want: unavailable},
		{name: "protocol violation", in: fmt.Errorf("%w: unexpected opcode 9", tftpclient.ErrProtocol), want: unavailable},
		{name: "socket error", in: refused, want: unavailable},
		{name: "too large", in: tftpclient.ErrTooLarge, want: passThrough},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := classifyClientError(context.Background(), tc.in)
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
				if got != ErrTooLarge {
					t.Fatalf("%v: want ErrTooLarge", got)
				}
			}
			if tc.want == notFound || tc.want == refusedByBackend {
				if !isTE || te.Code != tc.code || te.Message != tc.message {
					t.Fatalf("got %#v, want code %d message %q", te, tc.code, tc.message)
				}
			}
		})
	}
	if classifyClientError(context.Background(), nil) != nil {
		t.Error("nil did not stay nil")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := classifyClientError(ctx, tftpclient.ErrTimeout); got != context.Canceled {
		t.Errorf("cancelled: got %v, want context.Canceled", got)
	}
}

// FuzzCleanMessage: a backend's text always comes out fit for a log line.
func FuzzCleanMessage(f *testing.F) {
	f.Add("File not found\x00")
	f.Add("\xff\xfe\n")
	f.Fuzz(func(t *testing.T, msg string) {
		got := cleanMessage(msg)
		if strings.ContainsAny(got, "\x00\n\r") || len(got) > 200*3 {
			t.Fatalf("message not cleaned: %q", got)
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
