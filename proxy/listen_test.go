package proxy

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
)

// TestListenWithoutIPv6 plays a host with IPv6 disabled: binding an IPv6
// address fails with EAFNOSUPPORT (or EADDRNOTAVAIL). The gateway must
// keep serving IPv4 with a warning, and fail only when nothing bound.
func TestListenWithoutIPv6(t *testing.T) {
	noIPv6 := func(errno syscall.Errno) func(netip.AddrPort) (*listener, error) {
		return func(ap netip.AddrPort) (*listener, error) {
			if ap.Addr().Is6() {
				return nil, &net.OpError{Op: "listen", Net: "udp6", Err: os.NewSyscallError("socket", errno)}
			}
			return listenUDP(ap)
		}
	}
	tests := []struct {
		name    string
		listen  []string
		errno   syscall.Errno
		wantN   int  // listeners bound
		wantErr bool // Listen fails
	}{
		{"v6 skipped (EAFNOSUPPORT)", []string{"[::1]:0", "127.0.0.1:0"}, syscall.EAFNOSUPPORT, 1, false},
		{"v6 skipped (EADDRNOTAVAIL)", []string{"127.0.0.1:0", "[::1]:0"}, syscall.EADDRNOTAVAIL, 1, false},
		{"only v6: nothing to serve", []string{"[::1]:0"}, syscall.EAFNOSUPPORT, 0, true},
		{"other v6 errors are fatal", []string{"127.0.0.1:0", "[::1]:0"}, syscall.EACCES, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Listen = tt.listen
			sink := &logSink{}
			srv, err := NewServer(cfg, memSource(nil, bodyReaderAt), slog.New(slog.NewJSONHandler(sink, nil)), nil)
			if err != nil {
				t.Fatal(err)
			}
			srv.bind = noIPv6(tt.errno)
			err = srv.Listen()
			defer srv.Shutdown(t.Context())
			if (err != nil) != tt.wantErr {
				t.Fatalf("Listen = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				if !errors.Is(err, tt.errno) {
					t.Errorf("error %v does not carry %v", err, tt.errno)
				}
				if len(srv.Addrs()) != 0 {
					t.Errorf("Addrs = %v after a failed Listen", srv.Addrs())
				}
				return
			}
			if got := srv.Addrs(); len(got) != tt.wantN || !got[0].Addr().Is4() {
				t.Fatalf("Addrs = %v", got)
			}
			if w := sink.records(t, "IPv6 listen address skipped: IPv6 is unavailable on this host"); len(w) != 1 || w[0]["level"] != "WARN" {
				t.Errorf("warning records: %v", w)
			}
		})
	}
}
