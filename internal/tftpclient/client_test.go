package tftpclient_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ctftp/ctftp/internal/tftpclient"
	"github.com/ctftp/ctftp/internal/tftptest"
	"github.com/ctftp/ctftp/proxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// ourServer runs the project's own engine (which does RFC 7440) over a
// temp root holding files, until the test ends.
func ourServer(t *testing.T, files map[string][]byte) netip.AddrPort {
	t.Helper()
	root := t.TempDir()
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(root, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := proxy.ServeDir(root, proxy.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Close(ctx)
	})
	return srv.Addr()
}

func TestGetAgainstOurEngine(t *testing.T) {
	files := map[string][]byte{
		"empty": {}, "b512": randBytes(512), "b513": randBytes(513),
		"wrap": randBytes(600_000), "big": randBytes(2_000_000),
	}
	srv := ourServer(t, files)
	addr := srv
	cases := []struct {
		file      string
		blk, win  int
		wantBlk   int
		wantWin   int
		wantTsize bool
	}{
		{"empty", 0, 0, 512, 1, false},
		{"b512", 0, 0, 512, 1, false},
		{"b513", 8, 0, 8, 1, true},
		{"wrap", 8, 0, 8, 1, true},   // past block 65535
		{"wrap", 8, 16, 8, 16, true}, // wraparound inside windows
		{"big", 1428, 8, 1428, 8, true},
		{"big", 65464, 4, 65464, 4, true},
		{"b513", 512, 100, 512, 16, true}, // window capped by the server
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/blk%d/win%d", tc.file, tc.blk, tc.win), func(t *testing.T) {
			var buf bytes.Buffer
			res, err := tftpclient.Get(context.Background(), addr, tc.file, &buf, tftpclient.Options{
				BlockSize: tc.blk, WindowSize: tc.win, TransferSize: tc.wantTsize,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), files[tc.file]) {
				t.Fatalf("got %d bytes, want %d", buf.Len(), len(files[tc.file]))
			}
			if res.BlockSize != tc.wantBlk || res.WindowSize != tc.wantWin {
				t.Fatalf("negotiated blksize %d windowsize %d, want %d %d", res.BlockSize, res.WindowSize, tc.wantBlk, tc.wantWin)
			}
			if tc.wantTsize && res.TransferSize != int64(len(files[tc.file])) {
				t.Fatalf("tsize %d, want %d", res.TransferSize, len(files[tc.file]))
			}
		})
	}
}

func TestNetascii(t *testing.T) {
	text := []byte("a\nb\r\nc\rd\n\r")
	srv := ourServer(t, map[string][]byte{"t.cnf": text})
	var buf bytes.Buffer
	if _, err := tftpclient.Get(context.Background(), srv, "t.cnf", &buf, tftpclient.Options{Mode: "netascii", BlockSize: 8}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), text) {
		t.Fatalf("netascii round trip: got %q want %q", buf.Bytes(), text)
	}
}

func TestTypedErrors(t *testing.T) {
	srv := ourServer(t, map[string][]byte{"x": randBytes(5000)})
	ctx := context.Background()
	_, err := tftpclient.Get(ctx, srv, "missing", io.Discard, tftpclient.Options{})
	var se *tftpclient.ServerError
	if !errors.As(err, &se) || !se.NotFound() {
		t.Fatalf("missing file: %v, want ServerError code 1", err)
	}
	_, err = tftpclient.Get(ctx, srv, "../x", io.Discard, tftpclient.Options{})
	if !errors.As(err, &se) || se.Code != 2 {
		t.Fatalf("hostile name: %v, want ServerError code 2", err)
	}
	// MaxSize: announced by tsize, and without tsize while receiving.
	for _, tsize := range []bool{true, false} {
		_, err = tftpclient.Get(ctx, srv, "x", io.Discard, tftpclient.Options{MaxSize: 1000, TransferSize: tsize})
		if !errors.Is(err, tftpclient.ErrTooLarge) {
			t.Fatalf("tsize=%v: %v, want ErrTooLarge", tsize, err)
		}
	}
	// A pin/tftp server refusing with a code of our choosing.
	ref := tftptest.NewServer(t, map[string][]byte{"y": {1}}, tftptest.Refuse(2, "nope"))
	_, err = tftpclient.Get(ctx, ref.AddrPort(), "y", io.Discard, tftpclient.Options{})
	if !errors.As(err, &se) || se.Code != 2 {
		t.Fatalf("refusing server: %v", err)
	}
}

func TestSilentServerTimesOut(t *testing.T) {
	s := tftptest.NewServer(t, map[string][]byte{"f": {1}}, tftptest.Silent())
	_, err := tftpclient.Get(context.Background(), s.AddrPort(), "f", io.Discard, tftpclient.Options{Timeout: 50 * time.Millisecond, Retries: 2})
	if !errors.Is(err, tftpclient.ErrTimeout) {
		t.Fatalf("silent server: %v, want ErrTimeout", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = tftpclient.Get(ctx, s.AddrPort(), "f", io.Discard, tftpclient.Options{Timeout: time.Hour})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx deadline: %v, want DeadlineExceeded", err)
	}
}

func TestAgainstPinServer(t *testing.T) {
	data := randBytes(100_000)
	s := tftptest.NewServer(t, map[string][]byte{"f": data})
	var buf bytes.Buffer
	res, err := tftpclient.Get(context.Background(), s.AddrPort(), "f", &buf, tftpclient.Options{BlockSize: 1428, TransferSize: true, WindowSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatal("content differs")
	}
	if res.WindowSize != 1 {
		t.Fatalf("pin/tftp has no windowsize, negotiated %d", res.WindowSize)
	}
}

func TestAgainstTFTPD(t *testing.T) {
	root := t.TempDir()
	data := randBytes(700_000)
	os.WriteFile(filepath.Join(root, "f.bin"), data, 0o644)
	addr := tftptest.StartTFTPD(t, root)
	var buf bytes.Buffer
	ap := mustAddrPort(t, addr)
	if _, err := tftpclient.Get(context.Background(), ap, "f.bin", &buf, tftpclient.Options{BlockSize: 8, TransferSize: true}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatal("content differs")
	}
	_, err := tftpclient.Get(context.Background(), ap, "nope.bin", io.Discard, tftpclient.Options{})
	var se *tftpclient.ServerError
	if !errors.As(err, &se) || !se.NotFound() {
		t.Fatalf("not found from in.tftpd: %v", err)
	}
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func FuzzNetasciiWriter(f *testing.F) {
	f.Add([]byte("a\r\nb\r\x00c"), 3)
	f.Add([]byte("\r"), 1)
	f.Fuzz(func(t *testing.T, wire []byte, split int) {
		// Decoding must not depend on where blocks split the stream.
		whole := tftpclient.DecodeNetascii(wire)
		if split < 0 || split > len(wire) {
			split = len(wire) / 2
		}
		parts := tftpclient.DecodeNetasciiParts(wire[:split], wire[split:])
		if !bytes.Equal(whole, parts) {
			t.Fatalf("split at %d: %q vs %q", split, whole, parts)
		}
	})
}

// loopbackUDP is a UDP socket on 127.0.0.1 and a free port, closed when
// the test ends.
func loopbackUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
