package proxy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftpclient"
)

// ServeDir answers for its directory with windowsize, from one client
// address many times in a row (no per-client limits), through a wrapped
// Source when asked, and Close stops it cleanly.
func TestServeDir(t *testing.T) {
	dir := t.TempDir()
	body := pattern(20_000)
	if err := os.WriteFile(filepath.Join(dir, "SEP0011215A1AE3.cnf.xml.sgn"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	var opened atomic.Int64
	srv, err := ServeDir(dir, DirOptions{Wrap: func(next ctftp.Source) ctftp.Source {
		return ctftp.SourceFunc(func(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
			opened.Add(1)
			return next.Open(ctx, req)
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	for range 120 { // past the default client_rate of 50/s with burst 100
		var buf bytes.Buffer
		res, err := tftpclient.Get(context.Background(), srv.Addr(), "SEP0011215A1AE3.cnf.xml.sgn", &buf, tftpclient.Options{BlockSize: 1428, WindowSize: 8})
		if err != nil || !bytes.Equal(buf.Bytes(), body) || res.WindowSize != 8 {
			t.Fatalf("%v: %d bytes, window %d", err, buf.Len(), res.WindowSize)
		}
	}
	_, err = tftpclient.Get(context.Background(), srv.Addr(), "nope", &bytes.Buffer{}, tftpclient.Options{})
	var se *tftpclient.ServerError
	if !errors.As(err, &se) || !se.NotFound() {
		t.Fatalf("missing file: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := opened.Load(); n != 121 {
		t.Fatalf("the wrapped source opened %d files, want 121", n)
	}
	if _, err := ServeDir(filepath.Join(dir, "missing"), DirOptions{}); err == nil {
		t.Fatal("a missing directory served")
	}
}
