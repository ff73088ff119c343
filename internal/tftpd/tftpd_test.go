package tftpd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ctftp/ctftp/internal/tftpclient"
)

func TestStartServesAndStops(t *testing.T) {
	defer goleak.VerifyNone(t)
	if _, err := Find(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	want := bytes.Repeat([]byte("tftpd-hpa\n"), 300)
	if err := os.WriteFile(filepath.Join(dir, "a.bin"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Start(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Addr().Addr().IsLoopback() {
		t.Errorf("listening on %v, want loopback", p.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got bytes.Buffer
	if _, err := tftpclient.Get(ctx, p.Addr(), "a.bin", &got, tftpclient.Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("got %d bytes, want %d", got.Len(), len(want))
	}
	_, err = tftpclient.Get(ctx, p.Addr(), "missing.bin", &got, tftpclient.Options{})
	var se *tftpclient.ServerError
	if !errors.As(err, &se) || !se.NotFound() {
		t.Fatalf("missing file: %v, want TFTP error 1", err)
	}
	p.Stop()
	p.Stop() // a second Stop is harmless
	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if _, err := tftpclient.Get(short, p.Addr(), "a.bin", &got, tftpclient.Options{Timeout: 200 * time.Millisecond, Retries: 1}); err == nil {
		t.Fatal("a stopped in.tftpd still answers")
	}
}

func TestStartCancelled(t *testing.T) {
	defer goleak.VerifyNone(t)
	if _, err := Find(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if p, err := Start(ctx, t.TempDir()); err == nil {
		p.Stop()
		t.Fatal("Start with a cancelled context succeeded")
	}
}
