package proxy

import (
	"context"
	"net"
	"testing"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftptest"
	"github.com/ctftp/ctftp/internal/tftpwire"
)

// Allocation budgets of a warm (cache hit) request, counted by
// testing.AllocsPerRun over the whole process (the raw client here
// allocates nothing per transfer). The chain: the cache's answer (1); the
// local root's miss costs nothing (its inotify index answers; without it
// os.Root's miss would add 3). A whole transfer adds its context and
// timer (4), its goroutine, the parsed request, the client address for
// connect(2) (its socket comes from the pool) and the log line (2). Under the race
// detector the counts are higher and vary (it instruments, and drops
// pooled objects on purpose), so only the per-packet check, which allows
// for that, runs there.
const (
	chainAllocs    = 1
	transferAllocs = 13
)

// TestWarmAllocs: a warm request allocates a fixed, small number of
// objects, and nothing per packet: a 15-block transfer allocates what a
// 2-block one does.
func TestWarmAllocs(t *testing.T) {
	files := map[string][]byte{"load-big.bin": pattern(7600), "load-small.bin": pattern(600)}
	backend := tftptest.NewServer(t, files)
	root := gatewayRoot(t, nil)
	cfg := testGatewayConfig(root, sub("east", backend))
	budget := chainAllocs
	if !indexable(root) {
		budget += 3 // os.Root's miss: no index on this file system
	}
	cfg.TFTP.ClientRate = 0 // one client address asks hundreds of times a second
	tg := startGateway(t, cfg)
	ctx := context.Background()
	for name := range files {
		if _, _, err := tg.get(t, name); err != nil {
			t.Fatal(err)
		}
		req := ctftp.Request{Name: name, Mode: "octet"}
		a := testing.AllocsPerRun(200, func() {
			f, err := tg.Source().Open(ctx, req)
			if err != nil || f.Origin != ctftp.OriginCache {
				t.Fatalf("%v %v", f, err)
			}
			f.Body.Close()
		})
		if !raceEnabled && a > float64(budget) {
			t.Errorf("the chain allocates %.1f objects for a cached %s, want at most %d", a, name, budget)
		}
	}

	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	addr := tg.TFTPAddrs()[0]
	perTransfer := map[string]float64{}
	// Both files have two blocks at least: a client that reuses its port
	// for the same name must have acknowledged a block of the previous
	// transfer before it asks again, or the request reads as a
	// retransmission of the one still finishing.
	for name, body := range files {
		req := tftpwire.AppendRequest(nil, tftpwire.OpRRQ, name, "octet", nil)
		buf := make([]byte, 1024)
		ack := make([]byte, 0, 4)
		perTransfer[name] = testing.AllocsPerRun(300, func() {
			got, err := benchFetch(conn, addr, req, buf, ack)
			if err != nil || got != len(body) {
				for _, r := range append(tg.logs.records(t, "transfer"), append(tg.logs.records(t, "retransmitted request ignored"), tg.logs.records(t, "packet dropped")...)...) {
					t.Log(r)
				}
				t.Fatalf("%s: %d bytes, %v", name, got, err)
			}
		})
	}
	big, small := perTransfer["load-big.bin"], perTransfer["load-small.bin"]
	t.Logf("allocations per warm transfer: %.1f (15 blocks), %.1f (2 blocks)", big, small)
	if tb := transferAllocs + budget - chainAllocs; !raceEnabled && (big > float64(tb) || small > float64(tb)) {
		t.Errorf("a warm transfer allocates %.1f / %.1f objects, want at most %d", big, small, tb)
	}
	// One allocation per packet would be 13 more; a pool the race
	// detector emptied costs one per transfer.
	if limit := map[bool]float64{false: 0.5, true: 4}[raceEnabled]; big-small > limit {
		t.Errorf("13 more blocks cost %.1f more allocations: something allocates per packet", big-small)
	}
}
