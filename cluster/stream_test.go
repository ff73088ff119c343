package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftptest"
)

// streamConfig is testConfig with a timeout a backend held half-way by a
// test outlasts comfortably, and stream_over at 64 KiB.
func streamConfig(backends ...string) Config {
	c := testConfig(backends...)
	c.Backend.Timeout = 2 * time.Second
	c.Backend.StreamOver = 64 << 10
	return c
}

// A file over stream_over comes back from Open while the backend is
// still sending it (the backend is held half-way until Open returned, so
// an Open that waited for the whole file would never return), and reads
// whole, byte for byte, once the rest arrives. The slot is the stream's
// until it ends.
func TestOpenStreamsLargeFile(t *testing.T) {
	load := bytes.Repeat([]byte("SIP88xx.14-2-1-0001-1.loads "), 12_000) // 336 KB
	release := make(chan struct{})
	srv := tftptest.NewServer(t, map[string][]byte{"cmterm-88xx.loads": load, "SEP001122334455.cnf.xml": []byte("<device/>")},
		tftptest.PauseAt(100_000, release))
	s, m := newTestSet(t, streamConfig(srv.Addr()), Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opened := make(chan *ctftp.File, 1)
	go func() {
		f, err := s.Open(ctx, ctftp.Request{Name: "cmterm-88xx.loads", Subcluster: "east", Mode: "octet"})
		if err != nil {
			t.Error(err)
		}
		opened <- f
	}()
	var f *ctftp.File
	select {
	case f = <-opened:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("Open waited for the whole file")
	}
	if f == nil {
		close(release)
		t.FailNow()
	}
	defer f.Body.Close()
	if f.Size != int64(len(load)) {
		t.Errorf("Size %d, want the announced %d", f.Size, len(load))
	}
	sr, ok := f.Body.(*ctftp.StreamReader)
	if !ok {
		close(release)
		t.Fatalf("body %T, want a stream", f.Body)
	}
	if arrived, done := sr.Stream().Progress(); done || arrived >= int64(len(load)) {
		t.Errorf("at Open: %d bytes arrived, ended %v: not a stream", arrived, done)
	}
	if got := metricValue(t, m, `ctftp_backend_in_flight{subcluster="east"}`); got != "1" {
		t.Errorf("in flight while streaming: %s, want 1", got)
	}
	if st := s.Status()[0].Streams; len(st) != 1 || st[0].File != "cmterm-88xx.loads" || st[0].Size != int64(len(load)) ||
		st[0].Backend != srv.Addr() || st[0].Arrived >= st[0].Size {
		t.Errorf("Status streams while streaming: %+v", st)
	}
	// The Open's context bounds the open alone (routing cancels it as
	// Open returns): the stream goes on.
	cancel()
	close(release)
	got, err := io.ReadAll(f.Body)
	if err != nil || !bytes.Equal(got, load) {
		t.Fatalf("read %d of %d bytes: %v", len(got), len(load), err)
	}
	waitFor(t, "the fetch to end", func() bool {
		return metricValue(t, m, `ctftp_backend_fetches_total{subcluster="east",result="ok"}`) == "1" &&
			metricValue(t, m, `ctftp_backend_streams_total{subcluster="east",result="ok"}`) == "1"
	})
	waitFor(t, "the stream to leave Status", func() bool { return len(s.Status()[0].Streams) == 0 })

	// A small file, and a large one whose name a phone verifies as a
	// whole signed file, come back whole, as bytes.
	f2, b, err := open(t, s, "SEP001122334455.cnf.xml")
	if err != nil || string(b) != "<device/>" {
		t.Fatalf("small file: %q, %v", b, err)
	}
	if _, ok := f2.Body.(*ctftp.StreamReader); ok {
		t.Error("a 9-byte file was streamed")
	}
}

// A signed file is checked whole before a phone sees it, however large.
func TestOpenDoesNotStreamSignedFiles(t *testing.T) {
	for _, name := range []string{"SEP001122334455.cnf.xml.sgn", "ITLFile.tlv", "x.enc.sgn"} {
		if streamable(name) {
			t.Errorf("%s streamable", name)
		}
	}
	for _, name := range []string{"cmterm-88xx.loads", "kern88xx.sbn", "Desktops/320x212x12/bg.png"} {
		if !streamable(name) {
			t.Errorf("%s not streamable", name)
		}
	}
}

// A backend that announces a tsize and sends half of it (a lying
// backend) breaks the stream: the reader gets an error, never a short
// file that looks whole, and the fetch counts as failed.
func TestStreamFromLyingBackend(t *testing.T) {
	load := bytes.Repeat([]byte{0xa5}, 200_000)
	srv := tftptest.NewServer(t, map[string][]byte{"kern88xx.sbn": load}, tftptest.Corrupt())
	s, m := newTestSet(t, streamConfig(srv.Addr()), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := s.Open(ctx, ctftp.Request{Name: "kern88xx.sbn", Subcluster: "east", Mode: "octet"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Body.Close()
	got, err := io.ReadAll(f.Body)
	if err == nil {
		t.Fatalf("read %d of %d announced bytes with no error", len(got), len(load))
	}
	if !errors.Is(err, ErrBackendUnavailable) {
		t.Errorf("error %v, want one wrapping ErrBackendUnavailable", err)
	}
	waitFor(t, "the fetch to end", func() bool {
		return metricValue(t, m, `ctftp_backend_fetches_total{subcluster="east",result="error"}`) == "1" &&
			metricValue(t, m, `ctftp_backend_streams_total{subcluster="east",result="error"}`) == "1"
	})
}

// A phone that goes away mid-stream (its reader closes) ends the backend
// transfer and frees the slot, counted as cancelled, not as the
// backend's failure.
func TestStreamReaderCloseCancelsFetch(t *testing.T) {
	load := bytes.Repeat([]byte{0x5a}, 300_000)
	release := make(chan struct{})
	defer close(release)
	srv := tftptest.NewServer(t, map[string][]byte{"kern88xx.sbn": load}, tftptest.PauseAt(100_000, release))
	s, m := newTestSet(t, streamConfig(srv.Addr()), Options{})
	f, err := s.Open(context.Background(), ctftp.Request{Name: "kern88xx.sbn", Subcluster: "east", Mode: "octet"})
	if err != nil {
		t.Fatal(err)
	}
	f.Body.Close()
	waitFor(t, "the fetch to end", func() bool {
		return metricValue(t, m, `ctftp_backend_in_flight{subcluster="east"}`) == "0"
	})
	if got := metricValue(t, m, `ctftp_backend_fetches_total{subcluster="east",result="cancelled"}`); got != "1" {
		t.Errorf("cancelled fetches: %s, want 1", got)
	}
	if got := metricValue(t, m, `ctftp_backend_streams_total{subcluster="east",result="cancelled"}`); got != "1" {
		t.Errorf("cancelled streams: %s, want 1", got)
	}
	if st := backendStatus(t, s, srv.Addr()); !st.Up || st.Fails != 0 {
		t.Errorf("backend after a phone left: %+v", st)
	}
}

// A stream gives its backend slot back once it is committed: with
// max_in_flight 1, a phone's config is fetched while a firmware load is
// still on its way.
func TestStreamFreesItsSlot(t *testing.T) {
	load := bytes.Repeat([]byte{0x5a}, 300_000)
	release := make(chan struct{})
	srv := tftptest.NewServer(t, map[string][]byte{"kern88xx.sbn": load, "SEP001122334455.cnf.xml": []byte("<device/>")},
		tftptest.PauseAt(100_000, release))
	cfg := streamConfig(srv.Addr())
	cfg.Backend.MaxInFlight = 1
	cfg.Backend.SlotWait = 200 * time.Millisecond
	s, _ := newTestSet(t, cfg, Options{})
	f, err := s.Open(context.Background(), ctftp.Request{Name: "kern88xx.sbn", Subcluster: "east", Mode: "octet"})
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer f.Body.Close()
	_, b, err := open(t, s, "SEP001122334455.cnf.xml")
	close(release)
	if err != nil || string(b) != "<device/>" {
		t.Fatalf("config during a stream: %q, %v", b, err)
	}
	if got, err := io.ReadAll(f.Body); err != nil || !bytes.Equal(got, load) {
		t.Fatalf("stream: %d bytes, %v", len(got), err)
	}
}

// A backend that stops half-way through a stream hands the rest to its
// sibling: the phones reading it get one whole file, byte for byte, as
// with a failover before the first byte. A sibling whose copy has
// another length cannot carry it on: the readers get the error.
func TestStreamCarriedOnBySibling(t *testing.T) {
	load := make([]byte, 300_000)
	for i := range load {
		load[i] = byte(i * 13)
	}
	for _, tc := range []struct {
		name    string
		sibling []byte
		whole   bool
	}{
		{"same file", load, true},
		{"another length", load[:250_000], false},
		// Same length, one byte changed before the break: another build
		// of the load. The check reads every byte already passed on.
		{"another file of the same length", differAt(load, 50_000), false},
		// Changed only after the break: the bytes the phones get from
		// the sibling are its own, and whole (the phone verifies a
		// load's signature itself).
		{"same bytes up to the break", differAt(load, 200_000), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hung := tftptest.NewServer(t, map[string][]byte{"kern88xx.sbn": load}, tftptest.PauseAt(100_000, make(chan struct{})))
			sibling := tftptest.NewServer(t, map[string][]byte{"kern88xx.sbn": tc.sibling})
			cfg := streamConfig(hung.Addr(), sibling.Addr())
			// Long enough for the sibling on a loaded host, short enough that
			// the hung backend gives up soon (2 tries).
			cfg.Backend.Timeout = 500 * time.Millisecond
			s, m := newTestSet(t, cfg, Options{})
			f, err := s.Open(context.Background(), ctftp.Request{Name: "kern88xx.sbn", Subcluster: "east", Mode: "octet"})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Body.Close()
			if f.Backend != hung.Addr() {
				t.Fatalf("streamed from %s, want the first backend", f.Backend)
			}
			got, err := io.ReadAll(f.Body)
			if tc.whole {
				// The sibling's file: the bytes before the break are
				// the same in both.
				if err != nil || !bytes.Equal(got, tc.sibling) {
					t.Fatalf("read %d of %d bytes: %v", len(got), len(load), err)
				}
				waitFor(t, "the sibling's fetch", func() bool {
					return metricValue(t, m, `ctftp_backend_streams_total{subcluster="east",result="carried"}`) == "1"
				})
			} else if err == nil {
				t.Fatalf("read %d bytes and no error from a sibling with another file", len(got))
			} else if differs := errors.Is(err, errCarryDiffers); differs != (len(tc.sibling) == len(load)) {
				t.Errorf("err %v: names the sibling's bytes %v, want %v", err, differs, !differs)
			}
			if v := metricValue(t, m, `ctftp_backend_fetches_total{subcluster="east",result="error"}`); v != map[bool]string{true: "1", false: "2"}[tc.whole] {
				t.Errorf("failed fetches: %s", v)
			}
		})
	}
}

// differAt returns a copy of b with the byte at i changed.
func differAt(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0xff
	return c
}
