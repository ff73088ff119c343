package tests

// The WAN miss with and without windowsize on the gateway's backend leg
// (issue 10): cluster's fetcher is internal/tftpclient, which asks
// backends for RFC 7440 windowsize (backend.window_size). Against a
// backend that agrees (ctftp's own engine; tftpd-hpa 5.2 ignores the
// option) behind a 50 ms round trip, a 7.6 KB config at blksize 1428 is
// six blocks: one ACK per block without a window, one for all six with
// windowsize 8. Datagrams each way are asserted (exact); times are
// logged, with only the link's lower bound checked.

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp/proxy"
)

func TestWANMissWindowSize(t *testing.T) {
	// Unsigned, so the sizes are the test's alone (a signed one would be
	// checked whole by cluster and by the trust guard; same blocks).
	name := "SEP0011215A1AE3.cnf.xml"
	cnf := perfBytes(name, perfConfigSize)
	itl := mustRead(t, "testdata/ITLFile-certutils.tlv")
	backend := serveDir(t, perfWriteRoot(t, map[string][]byte{name: cnf, "ITLFile.tlv": itl}),
		proxy.DirOptions{Logger: slog.New(slog.DiscardHandler), Metrics: metrics.NewSet()})
	root := map[string][]byte{"ITLFile.tlv": itl}

	tests := []struct {
		window int
		// up is what crosses the WAN towards the backend: the RRQ, ACK 0
		// (of the OACK), then one ACK per window of DATA.
		up int
		// rounds are the round trips the fetch needs: RRQ/OACK, then one
		// per window.
		rounds int
	}{
		{window: 1, up: 2 + 6, rounds: 1 + 6},
		{window: 8, up: 2 + 1, rounds: 1 + 1},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("window_size=%d", tc.window), func(t *testing.T) {
			miss, s := perfGatewayMiss(t, backend, root, fmt.Sprintf("window_size: %d", tc.window), name, cnf)
			wan := s.Last.Sub(s.First)
			t.Logf("backend window_size %d: miss %s for the phone; the fetch crossed the WAN in %s, %d datagrams down, %d up (%.1f round trips of %s)",
				tc.window, miss.Round(time.Millisecond), wan.Round(time.Millisecond), s.ToClient, s.ToServer,
				float64(wan)/float64(2*perfWANDelay), 2*perfWANDelay)
			if s.ToClient != 1+6 || s.ToServer != tc.up {
				t.Errorf("%d datagrams down, %d up; want %d and %d", s.ToClient, s.ToServer, 1+6, tc.up)
			}
			if min := time.Duration(tc.rounds) * 2 * perfWANDelay; miss < min {
				t.Errorf("the miss took %s, less than %d round trips of %s", miss, tc.rounds, 2*perfWANDelay)
			}
		})
	}
}
