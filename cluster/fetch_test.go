package cluster

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftptest"
)

// pattern returns n bytes that differ from block to block, so a
// misordered or repeated block would show.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i/7) + seed
	}
	return b
}

func testAttempt() attempt {
	return attempt{timeout: 200 * time.Millisecond, retries: 1, blockSize: 1428, maxSize: 1 << 20}
}

func TestFetcherAgainstTFTPTest(t *testing.T) {
	big := pattern(5000, 1) // four 1428-byte blocks
	good := tftptest.NewServer(t, map[string][]byte{"SEP001122334455.cnf.xml.sgn": big, "empty": {}, "one-block": pattern(1428, 2)})
	silent := tftptest.NewServer(t, nil, tftptest.Silent())
	corrupt := tftptest.NewServer(t, map[string][]byte{"f": big}, tftptest.Corrupt())
	refusing := tftptest.NewServer(t, nil, tftptest.Refuse(2, "Access violation"))

	tests := []struct {
		name     string
		srv      *tftptest.Server
		file     string
		maxSize  int64
		want     []byte
		wantIs   []error
		wantText string
		requests int
	}{
		{name: "multi-block file", srv: good, file: "SEP001122334455.cnf.xml.sgn", want: big, requests: 1},
		{name: "empty file", srv: good, file: "empty", want: []byte{}, requests: 1},
		{name: "exactly one block", srv: good, file: "one-block", want: pattern(1428, 2), requests: 1},
		{name: "missing file", srv: good, file: "ITLSEP001122334455.tlv", wantIs: []error{ctftp.ErrNotFound}, requests: 1},
		{name: "silent backend: the request and one retransmission", srv: silent, file: "f",
			wantIs: []error{ErrBackendUnavailable, ctftp.ErrUnavailable}, wantText: "no answer", requests: 2},
		{name: "short transfer", srv: corrupt, file: "f", wantIs: []error{ErrBackendUnavailable}, wantText: "announced tsize 5000", requests: 1},
		{name: "refusal", srv: refusing, file: "f", wantIs: []error{ErrRefused, ctftp.ErrUnavailable}, wantText: "Access violation", requests: 1},
		{name: "announced size over the limit", srv: good, file: "SEP001122334455.cnf.xml.sgn", maxSize: 4999, wantIs: []error{ErrTooLarge, ctftp.ErrUnavailable}, requests: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := testAttempt()
			if tc.maxSize > 0 {
				a.maxSize = tc.maxSize
			}
			before := tc.srv.Requests(tc.file)
			got, err := tftpFetcher{}.fetch(context.Background(), tc.srv.AddrPort(), tc.file, a)
			if tc.wantIs == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tc.want) {
					t.Fatalf("got %d bytes, want %d", len(got), len(tc.want))
				}
			} else {
				for _, w := range tc.wantIs {
					if !errors.Is(err, w) {
						t.Errorf("err %v is not %v", err, w)
					}
				}
				if err != nil && !strings.Contains(err.Error(), tc.wantText) {
					t.Errorf("err %q does not mention %q", err, tc.wantText)
				}
			}
			// A silent server counts requests as it reads them, maybe
			// after the client gave up; the others count before answering.
			waitFor(t, "the backend's request count", func() bool { return tc.srv.Requests(tc.file)-before == tc.requests })
		})
	}
}

func TestFetcherHonoursContext(t *testing.T) {
	good := tftptest.NewServer(t, map[string][]byte{"f": []byte("x")})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (tftpFetcher{}).fetch(ctx, good.AddrPort(), "f", testAttempt()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := good.TotalRequests(); n != 0 {
		t.Errorf("a request was sent after the context ended (%d)", n)
	}
}

func TestProbe(t *testing.T) {
	good := tftptest.NewServer(t, map[string][]byte{"ITLFile.tlv": pattern(5000, 3)})
	empty := tftptest.NewServer(t, nil)
	silent := tftptest.NewServer(t, nil, tftptest.Silent())
	refusing := tftptest.NewServer(t, nil, tftptest.Refuse(0, "busy"))
	tests := []struct {
		name     string
		srv      *tftptest.Server
		alive    bool
		code     int // -1: no ERROR packet expected
		requests int
	}{
		{name: "DATA", srv: good, alive: true, code: -1, requests: 1},
		{name: "ERROR 1 is alive", srv: empty, alive: true, code: 1, requests: 1},
		{name: "ERROR 0 is alive", srv: refusing, alive: true, code: 0, requests: 1},
		{name: "silence is dead", srv: silent, alive: false, code: -1, requests: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tftpFetcher{}.probe(context.Background(), tc.srv.AddrPort(), "ITLFile.tlv", testAttempt())
			var te *TFTPError
			isTE := errors.As(err, &te)
			if alive := err == nil || isTE; alive != tc.alive {
				t.Fatalf("alive = %v (%v), want %v", alive, err, tc.alive)
			}
			if tc.code >= 0 && (!isTE || int(te.Code) != tc.code) {
				t.Errorf("err = %v, want TFTP error %d", err, tc.code)
			}
			if !tc.alive && !errors.Is(err, ErrBackendUnavailable) {
				t.Errorf("err = %v, want ErrBackendUnavailable", err)
			}
			waitFor(t, "the backend's request count", func() bool { return tc.srv.TotalRequests() == tc.requests })
		})
	}
}

func TestProbeCancelled(t *testing.T) {
	silent := tftptest.NewServer(t, nil, tftptest.Silent())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tftpFetcher{}.probe(ctx, silent.AddrPort(), "ITLFile.tlv", attempt{timeout: time.Hour, retries: 0})
	}()
	waitFor(t, "the probe's request", func() bool { return silent.TotalRequests() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestFetcherAgainstTFTPD talks to a real tftpd-hpa, the kind of backend
// a lab stands in for CUCM with: blksize and tsize honoured, error 1 for
// missing files, error 2 for unreadable ones.
func TestFetcherAgainstTFTPD(t *testing.T) {
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	big := pattern(100_000, 4) // 71 blocks of 1428
	for name, f := range map[string]struct {
		b    []byte
		mode os.FileMode
	}{
		"ITLFile.tlv":                 {big, 0o644},
		"SEP001122334455.cnf.xml.sgn": {[]byte("<device/>"), 0o600},
	} {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, f.b, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	addr := netip.MustParseAddrPort(tftptest.StartTFTPD(t, root))
	a := attempt{timeout: time.Second, retries: 2, blockSize: 1428, maxSize: 1 << 20}

	got, err := tftpFetcher{}.fetch(context.Background(), addr, "ITLFile.tlv", a)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("ITLFile.tlv: %d bytes, %v", len(got), err)
	}
	_, err = tftpFetcher{}.fetch(context.Background(), addr, "CTLSEP001122334455.tlv", a)
	var te *TFTPError
	if !errors.Is(err, ctftp.ErrNotFound) || !errors.As(err, &te) || te.Code != 1 {
		t.Fatalf("missing file: %v", err)
	}
	_, err = tftpFetcher{}.fetch(context.Background(), addr, "SEP001122334455.cnf.xml.sgn", a)
	if !errors.Is(err, ErrRefused) || errors.Is(err, ctftp.ErrDenied) || !errors.As(err, &te) || te.Code != 2 {
		t.Fatalf("unreadable file: %v", err)
	}
	a.maxSize = 50_000
	if _, err := (tftpFetcher{}).fetch(context.Background(), addr, "ITLFile.tlv", a); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	if err := (tftpFetcher{}).probe(context.Background(), addr, "ITLFile.tlv", a); err != nil {
		t.Fatalf("probe: %v", err)
	}
}

// waitFor polls cond until it holds or 10 s pass; only for conditions
// that another goroutine or process makes true.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
