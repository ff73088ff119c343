package tftpclient_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftpclient"
	"github.com/ctftp/ctftp/internal/tftpwire"
)

// FuzzAnswer: whatever a backend sends back to a request — a DATA, an
// OACK with any options and values, an ERROR, or garbage — Get ends with
// one of its typed errors or with the file, never a panic or a hang, and
// it reports a file only when the answer was a whole one: a DATA 1 shorter
// than the block size in force (512 when the server answered options with
// DATA, as RFC 2347 allows).
func FuzzAnswer(f *testing.F) {
	oack := func(kv ...string) []byte {
		var opts []tftpwire.Option
		for i := 0; i+1 < len(kv); i += 2 {
			opts = append(opts, tftpwire.Option{Name: kv[i], Value: kv[i+1]})
		}
		return tftpwire.AppendOACK(nil, opts)
	}
	for _, seed := range [][]byte{
		tftpwire.AppendData(nil, 1, []byte("a whole file")),
		tftpwire.AppendData(nil, 1, bytes.Repeat([]byte("x"), 600)), // past 512
		tftpwire.AppendData(nil, 2, []byte("not the first block")),
		tftpwire.AppendData(nil, 1, nil),
		oack("blksize", "1024", "tsize", "10"),
		oack("blksize", "99999"),
		oack("tsize", "-1"),
		oack("tsize", "99999999999999999999"),
		oack("windowsize", "0"),
		oack("colour", "blue"),
		oack("BLKSIZE", "512", "blksize", "1024"),
		tftpwire.AppendError(nil, 1, "File not found"),
		{0, 5, 0, 1, 'n', 'o', ' ', 'N', 'U', 'L'},
		{0, 6}, {0, 6, 'b', 'l', 'k'}, {0, 9, 0, 0}, {0}, {},
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, answer []byte, withOptions bool) {
		srv := loopbackUDP(t)
		go func() {
			buf := make([]byte, 2048)
			_, from, err := srv.ReadFromUDPAddrPort(buf)
			if err == nil {
				srv.WriteToUDPAddrPort(answer, from)
			}
		}()
		o := tftpclient.Options{Timeout: 100 * time.Millisecond, Retries: -1, MaxSize: 1 << 20}
		if withOptions {
			o.TransferSize, o.BlockSize, o.WindowSize = true, 1024, 4
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var got bytes.Buffer
		res, err := tftpclient.Get(ctx, srv.LocalAddr().(*net.UDPAddr).AddrPort(), "f", &got, o)
		if ctx.Err() != nil {
			t.Fatalf("Get outlived its timeouts (answer %q)", answer)
		}
		if err != nil {
			var se *tftpclient.ServerError
			if !errors.Is(err, tftpclient.ErrProtocol) && !errors.Is(err, tftpclient.ErrTimeout) &&
				!errors.Is(err, tftpclient.ErrTooLarge) && !errors.As(err, &se) {
				t.Fatalf("answer %q: untyped error %v", answer, err)
			}
			return
		}
		block, payload, perr := tftpwire.ParseData(answer)
		if perr != nil || block != 1 || len(payload) >= 512 || !bytes.Equal(got.Bytes(), payload) || res.Bytes != int64(len(payload)) {
			t.Fatalf("answer %q: Get returned %d bytes %q and no error", answer, res.Bytes, got.Bytes())
		}
	})
}
