package tftpclient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/ctftp/ctftp/internal/tftpclient"
	"github.com/ctftp/ctftp/internal/tftpwire"
)

// TestLocalAddr: with Options.LocalAddr the request leaves from that
// address (any 127.x.y.z is loopback on Linux).
func TestLocalAddr(t *testing.T) {
	srv := loopbackUDP(t)
	from := make(chan netip.AddrPort, 1)
	go func() {
		buf := make([]byte, 600)
		_, f, err := srv.ReadFromUDPAddrPort(buf)
		if err != nil {
			close(from)
			return
		}
		from <- f
		srv.WriteToUDPAddrPort(tftpwire.AppendError(nil, tftpwire.CodeFileNotFound, "File not found"), f)
	}()
	want := netip.MustParseAddr("127.0.3.7")
	_, err := tftpclient.Get(context.Background(), srv.LocalAddr().(*net.UDPAddr).AddrPort(), "x", io.Discard, tftpclient.Options{LocalAddr: want})
	var se *tftpclient.ServerError
	if !errors.As(err, &se) || !se.NotFound() {
		t.Fatalf("err %v, want file not found", err)
	}
	if got := <-from; got.Addr().Unmap() != want {
		t.Fatalf("request came from %s, want %s", got, want)
	}
}
