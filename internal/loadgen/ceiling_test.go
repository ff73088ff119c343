package loadgen

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/ctftp/ctftp/internal/tftpclient"
)

// TestCeilingRoundTrips checks that a storm through the ceiling makes the
// round trips of the real protocol: per phone, its CTLSEP miss (1), then
// CTLFile.tlv, its ITLSEP and its config, a DATA round trip per block
// (size/blksize + 1 blocks), plus the OACK's when options are asked.
func TestCeilingRoundTrips(t *testing.T) {
	files := map[string]int{"CTLFile.tlv": 1024} // 3 blocks at 512: 512, 512, 0
	macs := []string{"001122334455", "001122334456", "001122334457"}
	for _, mac := range macs {
		files["ITLSEP"+mac+".tlv"] = 700            // 2 blocks
		files["SEP"+mac+".cnf.xml.sgn"] = 7*512 + 1 // 8 blocks
	}
	for _, tc := range []struct {
		blksize, perPhone int
	}{
		{0, 1 + 3 + 2 + 8},
		{1428, 1 + (1 + 1) + (1 + 1) + (1 + 3)},
	} {
		c := NewCeiling(func(name string) (int, bool) { n, ok := files[name]; return n, ok })
		cfg := DefaultConfig()
		cfg.Concurrency = 2
		cfg.BlockSize = tc.blksize
		rep, err := Run(context.Background(), cfg, netip.MustParseAddrPort("127.0.0.1:9"), Options{MACs: macs, Get: c.Get})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Booted != 3 || rep.Misses != 3 || rep.Files != 9 || rep.Failed != 0 {
			t.Errorf("blksize %d: %+v", tc.blksize, rep)
		}
		if want := int64(3 * tc.perPhone); c.RoundTrips() != want {
			t.Errorf("blksize %d: %d round trips, want %d", tc.blksize, c.RoundTrips(), want)
		}
		if want := int64(3 * (1024 + 700 + 7*512 + 1)); rep.Bytes != want {
			t.Errorf("blksize %d: %d bytes, want %d", tc.blksize, rep.Bytes, want)
		}
		if err := c.Close(); err != nil && !strings.Contains(err.Error(), "closed") {
			t.Error(err)
		}
		if _, err := c.Get(context.Background(), netip.AddrPort{}, "CTLFile.tlv", nil, tftpclient.Options{}); err == nil {
			t.Error("Get after Close succeeded")
		}
	}
}
