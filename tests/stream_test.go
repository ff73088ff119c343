package tests

// A firmware load behind a WAN (backend.stream_over): the gateway passes a
// large file to the phones while it arrives from the backend, so a phone
// that waits 1 s per packet gets its first block after one backend round
// trip, not after the whole file. The backend is a real tftpd-hpa (no
// windowsize: one 1428-byte block per round trip) behind a 20 ms round
// trip, and the gateway's fetch_timeout is shorter than the load takes to
// cross: fetched whole, as before, every phone here would get error 0.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/loadgen"
	"github.com/ctftp/ctftp/internal/tftpclient"
	"github.com/ctftp/ctftp/internal/tftptest"
)

func TestFirmwareStreamsAcrossWAN(t *testing.T) {
	const name = "sip88xx.14-2-1-0001-1.loads"
	load := perfBytes(name, 300_000) // 211 round trips at 1428: about 4 s across the link
	itl := mustRead(t, "testdata/ITLFile-certutils.tlv")
	backend := tftptest.StartTFTPD(t, perfWriteRoot(t, map[string][]byte{name: load, "ITLFile.tlv": itl}))
	link := startLink(t, netip.MustParseAddrPort(backend), 10*time.Millisecond)
	// transfer_timeout 2 s, half the time the load takes across the
	// link: a load's transfer gets its size at transfer_min_rate
	// instead, so a phone far from the backends still gets it whole.
	gw := linkedGateway(t, link, map[string][]byte{"ITLFile.tlv": itl}, "",
		"http_listen: [\"127.0.0.1:0\"]\ncache:\n  fetch_timeout: 2s\ntftp:\n  transfer_timeout: 2s")
	addr := netip.MustParseAddrPort(gw.TFTP[0])
	defer func() {
		if t.Failed() {
			t.Log(gw.Log())
		}
	}()

	// Three phones boot at once: a plain RFC 1350 one and one asking for
	// tsize and blksize, both giving up after 3 retransmissions of 1 s,
	// and one over HTTP.
	phones := []tftpclient.Options{
		{Timeout: time.Second, Retries: 3},
		{Timeout: time.Second, Retries: 3, TransferSize: true, BlockSize: 1024},
	}
	var wg sync.WaitGroup
	for i, o := range phones {
		wg.Go(func() {
			var got bytes.Buffer
			res, err := tftpclient.Get(context.Background(), addr, name, &got, o)
			switch {
			case err != nil:
				t.Errorf("phone %d: %v", i, err)
			case !bytes.Equal(got.Bytes(), load):
				t.Errorf("phone %d: %d bytes, not the load", i, got.Len())
			case o.TransferSize && res.TransferSize != int64(len(load)):
				t.Errorf("phone %d: tsize %d, want %d", i, res.TransferSize, len(load))
			}
		})
	}
	// And one over HTTP (phones try it before TFTP), with curl.
	needTool(t, "curl")
	wg.Go(func() {
		out := filepath.Join(t.TempDir(), "load")
		if _, errOut, err := runCmd(t, 60*time.Second, "curl", "-sSf", "-o", out, "http://"+gw.HTTP[0]+"/"+name); err != nil {
			t.Errorf("curl http: %v: %s", err, errOut)
		} else if got, _ := os.ReadFile(out); !bytes.Equal(got, load) {
			t.Errorf("curl http: %d bytes, not the load", len(got))
		}
	})
	wg.Wait()
	fetches := func() int {
		n := 0
		for _, s := range link.Sessions() {
			if s.File == name {
				n++
			}
		}
		return n
	}
	if n := fetches(); n != 1 {
		t.Errorf("%d backend fetches of the load for three phones, want 1", n)
	}

	// Stored once whole: the next phones (real clients) get it from
	// memory, and nothing more crosses the link.
	fwdWaitMetric(t, gw, `ctftp_cache_fills_total{result="ok"}`, 1)
	for _, c := range clients[:2] {
		needTool(t, c.tool)
		out := filepath.Join(t.TempDir(), "load")
		if err := c.get(t, gw.TFTP[0], name, out, 0, false); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, load) {
			t.Errorf("%s: %d bytes, not the load", c.name, len(got))
		}
	}
	if n := fetches(); n != 1 {
		t.Errorf("%d backend fetches of the load in all: the cached load was fetched again", n)
	}
}

// firstWrite records when the first bytes of a transfer arrived.
type firstWrite struct {
	n     int64
	first time.Time
}

func (w *firstWrite) Write(p []byte) (int, error) {
	if w.first.IsZero() {
		w.first = time.Now()
	}
	w.n += int64(len(p))
	return len(p), nil
}

// BenchmarkFirmwareAcrossWAN measures what a phone waits for a 1 MiB load
// kept on a tftpd-hpa backend 20 ms away: direct across the link, and
// through the gateway (cold: the load streams from the backend as the
// phone reads it; then warm, from the cache); and what 20 phones
// upgrading at once wait, direct and through the gateway cold, with the
// backend fetches each costs. The phones are plain RFC 1350 (512-byte
// blocks, 1 s timeout, 3 retries), as phones fetch loads. It reports the
// wait for the first block and for the whole file (the slowest phone's),
// once per run:
//
//	go test -run '^$' -bench FirmwareAcrossWAN -benchtime 1x ./tests/
func BenchmarkFirmwareAcrossWAN(b *testing.B) {
	const name = "sip88xx.14-2-1-0001-1.loads"
	load := perfBytes(name, 1<<20)
	itl := mustRead(b, "testdata/ITLFile-certutils.tlv")
	backend := netip.MustParseAddrPort(tftptest.StartTFTPD(b, perfWriteRoot(b, map[string][]byte{name: load, "ITLFile.tlv": itl})))
	// boot has phones fetch the load at once from to and reports the
	// slowest first block and whole file.
	boot := func(b *testing.B, to netip.AddrPort, phones int) {
		var mu sync.Mutex
		var first, whole time.Duration
		var wg sync.WaitGroup
		for i := range phones {
			wg.Go(func() {
				var w firstWrite
				start := time.Now()
				// Each phone from an address of its own, as on a LAN
				// (the gateway limits transfers per client address).
				o := tftpclient.Options{Timeout: time.Second, Retries: 3, LocalAddr: netip.AddrFrom4([4]byte{127, 0, 3, byte(1 + i)})}
				if _, err := tftpclient.Get(context.Background(), to, name, &w, o); err != nil {
					b.Error(err)
					return
				}
				took := time.Since(start)
				if w.n != int64(len(load)) {
					b.Errorf("%d bytes", w.n)
				}
				mu.Lock()
				first, whole = max(first, w.first.Sub(start)), max(whole, took)
				mu.Unlock()
			})
		}
		wg.Wait()
		b.ReportMetric(float64(first.Milliseconds()), "ms-first-block")
		b.ReportMetric(whole.Seconds(), "s-whole")
	}
	fetches := func(b *testing.B, link *loadgen.DelayLink) {
		n := 0
		for _, s := range link.Sessions() {
			if s.File == name {
				n++
			}
		}
		b.ReportMetric(float64(n), "backend-fetches")
	}
	for _, phones := range []int{1, 20} {
		b.Run(fmt.Sprintf("direct/phones=%d", phones), func(b *testing.B) {
			link := startLink(b, backend, 10*time.Millisecond)
			for b.Loop() {
				boot(b, link.Addr(), phones)
			}
			fetches(b, link)
		})
		b.Run(fmt.Sprintf("gateway-cold/phones=%d", phones), func(b *testing.B) {
			link := startLink(b, backend, 10*time.Millisecond)
			gw := linkedGateway(b, link, map[string][]byte{"ITLFile.tlv": itl}, "", "")
			for b.Loop() {
				boot(b, netip.MustParseAddrPort(gw.TFTP[0]), phones)
			}
			fetches(b, link)
		})
	}
	b.Run("gateway-warm/phones=1", func(b *testing.B) {
		gw := linkedGateway(b, startLink(b, backend, 10*time.Millisecond), map[string][]byte{"ITLFile.tlv": itl}, "", "")
		addr := netip.MustParseAddrPort(gw.TFTP[0])
		if _, err := tftpclient.Get(context.Background(), addr, name, io.Discard, tftpclient.Options{}); err != nil {
			b.Fatal(err)
		}
		fwdWaitMetric(b, gw, `ctftp_cache_fills_total{result="ok"}`, 1)
		for b.Loop() {
			boot(b, addr, 1)
		}
	})
}
