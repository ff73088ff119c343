package tests

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftptest"
)

// rlTransfer is one TFTP read that the test drives block by block, so it
// can stay in flight across reloads for as long as the test needs.
type rlTransfer struct {
	t    testing.TB
	conn *net.UDPConn
	tid  netip.AddrPort // the server's transfer port, once known
	next uint16         // the block expected next
	data []byte
	done bool
}

// rlStart sends an RRQ (octet, 512-byte blocks, no options) to server.
func rlStart(t testing.TB, server, name string) *rlTransfer {
	t.Helper()
	ap, err := netip.ParseAddrPort(server)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rrq := append([]byte{0, 1}, name...)
	rrq = append(append(rrq, 0), "octet\x00"...)
	if _, err := conn.WriteToUDPAddrPort(rrq, ap); err != nil {
		t.Fatal(err)
	}
	return &rlTransfer{t: t, conn: conn, next: 1}
}

// blocks receives and acknowledges n more blocks (fewer when the file
// ends). A retransmitted block is acknowledged again and not counted.
func (x *rlTransfer) blocks(n int) {
	x.t.Helper()
	buf := make([]byte, 1024)
	for got := 0; got < n && !x.done; {
		x.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		m, from, err := x.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			x.t.Fatalf("transfer in flight: block %d: %v", x.next, err)
		}
		pkt := buf[:m]
		if m < 4 {
			x.t.Fatalf("short packet % x", pkt)
		}
		if op := binary.BigEndian.Uint16(pkt); op != 3 {
			x.t.Fatalf("transfer in flight: opcode %d at block %d: %q", op, x.next, pkt[4:])
		}
		x.tid = from
		block := binary.BigEndian.Uint16(pkt[2:])
		if block == x.next {
			x.data = append(x.data, pkt[4:]...)
			x.done = m-4 < 512
			x.next++
			got++
		}
		ack := []byte{0, 4, byte(block >> 8), byte(block)}
		if _, err := x.conn.WriteToUDPAddrPort(ack, x.tid); err != nil {
			x.t.Fatal(err)
		}
	}
}

func TestReloadKeepsServingAndSwitchesAtomically(t *testing.T) {
	central, east := trNewPKI(t, "central"), trNewPKI(t, "east")
	oldBig, newBig := randBytes(60_000), randBytes(60_000) // 118 blocks of 512
	a := tftptest.StartTFTPD(t, trRoot(t, map[string][]byte{"ITLFile.tlv": east.itl(t, false), "big.bin": oldBig}))
	b := tftptest.StartTFTPD(t, trRoot(t, map[string][]byte{"ITLFile.tlv": east.itl(t, false), "big.bin": newBig}))
	pre := tftptest.StartTFTPD(t, trRoot(t, map[string][]byte{"big.bin": []byte("pre-8.0")}))
	root := trRoot(t, map[string][]byte{"ITLFile.tlv": central.itl(t, false)})
	// tftp.timeout 5s: the transfer the test holds open waits for its
	// ACKs without retransmitting much; reload.poll_interval: the file
	// is watched.
	tuning := func(tftp string) string { return "tftp: {timeout: 5s" + tftp + "}\nreload: {poll_interval: 200ms}\n" }
	v1 := trConfig(root, []trSub{{"east", "auto", a}}, tuning(""))
	gw := startGateway(t, v1)
	path := gw.cmd.Args[len(gw.cmd.Args)-1]
	dir, file := path[:strings.LastIndexByte(path, '/')], path[strings.LastIndexByte(path, '/')+1:]

	x := rlStart(t, gw.TFTP[0], "big.bin")
	x.blocks(10)

	// 1. A config that does not decode: every problem logged, the old one serves.
	trWrite(t, dir, file, []byte(v1+"trust: {on_chnge: refuse}\n"))
	gw.waitLine("config reload failed; the previous configuration keeps serving", func(map[string]any) bool { return true })
	gw.waitLine("config reload: trust.on_chnge: unknown key (did you mean trust.on_change?)", func(map[string]any) bool { return true })
	x.blocks(10)
	st := trStatus(t, gw)
	cfg, _ := st["config"].(map[string]any)
	last, _ := cfg["last_reload"].(map[string]any)
	if cfg["generation"] != 1.0 || last["ok"] != false || !strings.Contains(strings.Join(strs(last["problems"]), "\n"), "trust.on_chnge: unknown key") {
		t.Errorf("/status after an invalid config: %v", cfg)
	}

	// 2. A config the trust guard refuses: east moved onto a pre-8.0 cluster.
	trWrite(t, dir, file, []byte(trConfig(root, []trSub{{"east", "auto", pre}}, tuning(""))))
	gw.waitLine("config reload: subclusters: mixed ITL eras: 8.x+ with a real ITL: (central); pre-8.0: east; phones that hold one side's ITL would reject the other side's files (Trust List Verification Failed)",
		func(map[string]any) bool { return true })
	x.blocks(10)
	if got, err := trGet(t, gw, "big.bin"); err != nil || !bytes.Equal(got, oldBig) {
		t.Fatalf("a new request after two failed reloads: %d bytes, %v", len(got), err)
	}

	// 3. A valid one: east moves to b; a TFTP engine setting needs a restart.
	trWrite(t, dir, file, []byte(trConfig(root, []trSub{{"east", "auto", b}}, tuning(", max_windowsize: 8"))))
	gw.waitLine("config reloaded", func(m map[string]any) bool { return m["generation"] == 2.0 })
	gw.waitLine("config reload: tftp.max_windowsize changed; restart needed for it to take effect, the old value stays", func(map[string]any) bool { return true })
	if got, err := trGet(t, gw, "big.bin"); err != nil || !bytes.Equal(got, newBig) {
		t.Errorf("a new request after the switch: %d bytes (old file: %v), %v", len(got), bytes.Equal(got, oldBig), err)
	}
	// The transfer that started on the first config ends with its bytes.
	x.blocks(1 << 20)
	if !x.done || !bytes.Equal(x.data, oldBig) {
		t.Errorf("the transfer in flight across three reloads got %d bytes (done %v), want the %d it started with", len(x.data), x.done, len(oldBig))
	}

	// 4. SIGHUP reloads even an unchanged file (and acknowledges alarms).
	if err := gw.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	gw.waitLine("config reloaded", func(m map[string]any) bool { return m["generation"] == 3.0 })
	gw.waitLine("config reload", func(m map[string]any) bool { return m["reason"] == "SIGHUP" })
	st = trStatus(t, gw)
	cfg, _ = st["config"].(map[string]any)
	last, _ = cfg["last_reload"].(map[string]any)
	if cfg["generation"] != 3.0 || last["ok"] != true {
		t.Errorf("/status after SIGHUP: %v", cfg)
	}
	for series, want := range map[string]float64{
		"ctftp_config_generation":                     3,
		`ctftp_config_reloads_total{result="ok"}`:     2,
		`ctftp_config_reloads_total{result="failed"}`: 2,
	} {
		if got := gw.metric(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}
