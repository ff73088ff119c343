package tests

// What a cache miss costs across a WAN (issue 5): the gateway fetches the
// whole file from the backend before the phone gets DATA 1, so a miss
// costs the phone one backend round trip per block fetched. The backend
// here is a real tftpd-hpa behind loadgen.DelayLink, which delays every
// datagram by 25 ms each way (a 50 ms round trip, the WAN of the issue).
//
// The test asserts the datagrams each way (exact, whatever the machine's
// speed) and only lower bounds of time (the link cannot be faster than
// its delay); it logs the latencies, which the README's Performance
// section records.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp/internal/loadgen"
	"github.com/ctftp/ctftp/internal/tftpclient"
	"github.com/ctftp/ctftp/internal/tftptest"
	"github.com/ctftp/ctftp/proxy"
)

// perfWANDelay is the one-way delay of the emulated WAN.
const perfWANDelay = 25 * time.Millisecond

// perfConfigSize is a signed phone config's size (domain notes: 7.6 KB):
// 15 blocks at 512 bytes, 6 at 1428, 1 at 65464.
const perfConfigSize = 7600

func TestWANMissByBackendBlockSize(t *testing.T) {
	const mac = "0011215A1AE3"
	name := "SEP" + mac + ".cnf.xml.sgn"
	cnf := perfBytes(name, perfConfigSize)
	itl := mustRead(t, "testdata/ITLFile-certutils.tlv")
	backend := tftptest.StartTFTPD(t, perfWriteRoot(t, map[string][]byte{name: cnf, "ITLFile.tlv": itl}))
	// The gateway's root has the same ITL: a root without one next to a
	// sub-cluster with one is a mixed setup, which the gateway refuses.
	root := map[string][]byte{"ITLFile.tlv": itl}
	tests := []struct {
		blksize int
		// down is what crosses the WAN towards the gateway: the OACK
		// (the gateway asks for tsize) and the DATA blocks. Every one of
		// them waits for a datagram up, so each is a round trip.
		down int
	}{
		{512, 1 + 15},
		{1428, 1 + 6},
		{65464, 1 + 1},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("block_size=%d", tc.blksize), func(t *testing.T) {
			miss, s := perfGatewayMiss(t, netip.MustParseAddrPort(backend), root, fmt.Sprintf("block_size: %d", tc.blksize), name, cnf)
			wan := s.Last.Sub(s.First)
			t.Logf("backend block_size %5d: miss %s for the phone; the fetch crossed the WAN in %s, %d datagrams down, %d up (%.1f round trips of %s)",
				tc.blksize, miss.Round(time.Millisecond), wan.Round(time.Millisecond), s.ToClient, s.ToServer,
				float64(wan)/float64(2*perfWANDelay), 2*perfWANDelay)
			if s.ToClient != tc.down {
				t.Errorf("%d datagrams crossed towards the gateway, want %d", s.ToClient, tc.down)
			}
			if min := time.Duration(tc.down) * 2 * perfWANDelay; miss < min {
				t.Errorf("the miss took %s, less than %d round trips of %s", miss, tc.down, 2*perfWANDelay)
			}
		})
	}
}

// perfGatewayMiss is one phone's miss through a gateway whose root holds
// rootFiles and whose only sub-cluster is backend behind a fresh DelayLink, with backendKey (one
// `backend:` key, e.g. "block_size: 1428") set: it fetches name as a
// phone does (plain RFC 1350, over loopback), checks the bytes against
// want, and returns how long the phone waited and the link's session of
// the gateway's fetch.
func perfGatewayMiss(t *testing.T, backend netip.AddrPort, rootFiles map[string][]byte, backendKey, name string, want []byte) (time.Duration, loadgen.LinkSession) {
	t.Helper()
	link := startLink(t, backend, perfWANDelay)
	gw := linkedGateway(t, link, rootFiles, backendKey, "")
	var got bytes.Buffer
	start := time.Now()
	_, err := tftpclient.Get(context.Background(), netip.MustParseAddrPort(gw.TFTP[0]), name, &got, tftpclient.Options{Retries: 10})
	miss := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("got %d bytes, want %d", got.Len(), len(want))
	}
	return miss, perfLinkSession(t, link, name)
}

// perfLinkSession waits for the link's session that fetched name to go
// quiet (nothing crossed for eight one-way delays, so the last ACK has
// arrived) and returns it.
func perfLinkSession(t testing.TB, link *loadgen.DelayLink, name string) loadgen.LinkSession {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var found []loadgen.LinkSession
		for _, s := range link.Sessions() {
			if s.File == name {
				found = append(found, s)
			}
		}
		if len(found) == 1 && !found[0].Last.IsZero() && time.Since(found[0].Last) > 8*perfWANDelay {
			return found[0]
		}
		if len(found) > 1 || time.Now().After(deadline) {
			t.Fatalf("link sessions for %s: %+v", name, found)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWANWindowSize measures what RFC 7440 would buy the backend leg
// against a backend that supports it: ctftp's own engine, as the demo's
// sub-clusters run it (tftpd-hpa 5.2 in Debian ignores windowsize). It
// fetches with ctftp's client through the same 50 ms link; the gateway's
// own backend leg, which asks for backend.window_size, is
// TestWANMissWindowSize.
func TestWANWindowSize(t *testing.T) {
	name := "SEP0011215A1AE3.cnf.xml.sgn"
	dir := perfWriteRoot(t, map[string][]byte{name: perfBytes(name, perfConfigSize)})
	srv := serveDir(t, dir, proxy.DirOptions{Logger: slog.New(slog.DiscardHandler), Metrics: metrics.NewSet()})

	tests := []struct {
		name   string
		opts   tftpclient.Options
		down   int // OACK and DATA towards the client
		rounds int // round trips: a window's worth of DATA answers one ACK
	}{
		{"blksize 1428", tftpclient.Options{BlockSize: 1428, TransferSize: true}, 1 + 6, 1 + 6},
		{"blksize 1428 windowsize 8", tftpclient.Options{BlockSize: 1428, WindowSize: 8, TransferSize: true}, 1 + 6, 1 + 1},
		{"blksize 65464", tftpclient.Options{BlockSize: 65464, TransferSize: true}, 1 + 1, 1 + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			link := startLink(t, srv, perfWANDelay)
			start := time.Now()
			res, err := tftpclient.Get(context.Background(), link.Addr(), name, &bytes.Buffer{}, tc.opts)
			elapsed := time.Since(start)
			if err != nil || res.Bytes != perfConfigSize {
				t.Fatalf("%v, %d bytes", err, res.Bytes)
			}
			s := perfLinkSession(t, link, name)
			t.Logf("%-26s %s, %d datagrams down, %d up", tc.name, elapsed.Round(time.Millisecond), s.ToClient, s.ToServer)
			if s.ToClient != tc.down || (tc.opts.WindowSize > 1 && res.WindowSize != tc.opts.WindowSize) {
				t.Errorf("%d datagrams down (want %d), windowsize %d", s.ToClient, tc.down, res.WindowSize)
			}
			if min := time.Duration(tc.rounds) * 2 * perfWANDelay; elapsed < min {
				t.Errorf("took %s, less than %d round trips", elapsed, tc.rounds)
			}
		})
	}
}
