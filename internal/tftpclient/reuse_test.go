package tftpclient_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftpclient"
	"github.com/ctftp/ctftp/internal/tftpwire"
)

// A load generator's phone reads its boot through one socket: every file
// arrives whole, and a stale DATA queued from the server's address
// before the next request (a late duplicate of an earlier transfer) is
// not taken for the next file's answer.
func TestReusedConn(t *testing.T) {
	files := map[string][]byte{"a.tlv": randBytes(1500), "b.cnf.xml.sgn": randBytes(512), "c": randBytes(7)}
	server := ourServer(t, files)
	conn, err := tftpclient.Listen(server, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A stranger on the server's address (another port, like an old TID).
	old := loopbackUDP(t)
	to := conn.LocalAddr().(*net.UDPAddr)
	for _, name := range []string{"a.tlv", "b.cnf.xml.sgn", "c", "a.tlv"} {
		stale := tftpwire.AppendData(nil, 1, []byte("stale bytes of an earlier file"))
		if _, err := old.WriteToUDP(stale, to); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // queued before the request
		var buf bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := tftpclient.Get(ctx, server, name, &buf, tftpclient.Options{Conn: conn})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(buf.Bytes(), files[name]) {
			t.Fatalf("%s: got %d bytes, not the file's %d", name, buf.Len(), len(files[name]))
		}
		if res.Server.Port() == uint16(old.LocalAddr().(*net.UDPAddr).Port) {
			t.Fatalf("%s: took the stale sender for the server", name)
		}
	}
}

// The first answer to a request is DATA 1, an OACK or an ERROR: a DATA
// of another block arriving first (late, from an earlier transfer) is
// ignored, and the transfer takes the real DATA 1 that follows.
func TestFirstAnswerIsBlockOne(t *testing.T) {
	srv := loopbackUDP(t)
	late := loopbackUDP(t)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 600)
		_, client, err := srv.ReadFromUDPAddrPort(buf)
		if err != nil {
			done <- err
			return
		}
		late.WriteToUDPAddrPort(tftpwire.AppendData(nil, 7, []byte("late")), client)
		time.Sleep(20 * time.Millisecond)
		srv.WriteToUDPAddrPort(tftpwire.AppendData(nil, 1, []byte("right")), client)
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err = srv.ReadFromUDPAddrPort(buf) // the final ACK
		done <- err
	}()
	var buf bytes.Buffer
	res, err := tftpclient.Get(context.Background(), srv.LocalAddr().(*net.UDPAddr).AddrPort(), "f", &buf, tftpclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if buf.String() != "right" || res.Server != srv.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("got %q from %v", buf.String(), res.Server)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
