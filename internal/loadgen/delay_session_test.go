package loadgen_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/loadgen"
	"github.com/ctftp/ctftp/internal/tftpclient"
	"github.com/ctftp/ctftp/proxy"
)

// A phone reading its boot through one socket across the link (as Run's
// phones do): every transfer of the session arrives whole from ctftp's
// engine, which answers an ACK at its listening port with an ERROR. The
// client's final ACK of one file and its next request leave back to back
// and are read by two of the link's goroutines; the ACK must still reach
// the finished transfer, not the listening port.
func TestDelayLinkSessionReuse(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{}
	for i, size := range []int{1, 511, 512, 513, 3000} {
		name := fmt.Sprintf("f%d", i)
		files[name] = bytes.Repeat([]byte{byte('a' + i)}, size)
		if err := os.WriteFile(filepath.Join(dir, name), files[name], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := proxy.ServeDir(dir, proxy.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Close(ctx)
	}()
	link, err := loadgen.StartDelayLink(srv.Addr(), time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	conn, err := tftpclient.Listen(link.Addr(), netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 40 {
		name := fmt.Sprintf("f%d", i%len(files))
		var buf bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := tftpclient.Get(ctx, link.Addr(), name, &buf, tftpclient.Options{Conn: conn})
		cancel()
		if err != nil {
			t.Fatalf("transfer %d (%s): %v", i, name, err)
		}
		if !bytes.Equal(buf.Bytes(), files[name]) {
			t.Fatalf("transfer %d (%s): %d bytes, want %d", i, name, buf.Len(), len(files[name]))
		}
	}
}
