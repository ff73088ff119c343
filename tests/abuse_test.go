package tests

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftpwire"
)

// TestSinglePortRealClients re-runs the real clients (curl, tftp-hpa,
// ctftp get) against a gateway in single-port mode, IPv4 and IPv6, one
// after another and then all at once from the same host (so the one
// listening port carries transfers to several client ports together).
func TestSinglePortRealClients(t *testing.T) {
	root, files := localRoot(t)
	gw := startGateway(t, localConfig(root)+"tftp:\n  single_port: true\n")
	if v := gw.metric("ctftp_tftp_single_port"); v != 1 {
		t.Fatalf("ctftp_tftp_single_port = %v, want 1", v)
	}
	if line := gw.waitLine("listening", func(map[string]any) bool { return true }); line["single_port"] != true {
		t.Fatalf("listening line: %v", line)
	}
	cases := []struct {
		file    string
		blksize int
	}{
		{"empty.bin", 0},
		{"b512.bin", 0},
		{"b513.bin", 8},
		{"ITLFile.tlv", 0},
		{"big.bin", 1428},
		{"big.bin", 65464},
	}
	for _, addr := range gw.TFTP {
		for _, c := range clients {
			if c.tool != ctftpBinName {
				needTool(t, c.tool)
			}
			for _, tc := range cases {
				t.Run(fmt.Sprintf("%s/%s/%s/blksize=%d", urlHost(addr), c.name, tc.file, tc.blksize), func(t *testing.T) {
					out := filepath.Join(t.TempDir(), "out")
					err := c.get(t, addr, tc.file, out, tc.blksize, false)
					if err == errSkip {
						t.Skip(err)
					}
					if err != nil {
						t.Fatal(err)
					}
					if got := mustRead(t, out); !bytes.Equal(got, files[tc.file]) {
						t.Fatalf("got %d bytes, want %d (content differs)", len(got), len(files[tc.file]))
					}
				})
			}
		}
	}
	t.Run("concurrent", func(t *testing.T) {
		// Three of each client at once, each on its own port of 127.0.0.1.
		addr := gw.TFTP[0]
		dir := t.TempDir()
		var wg sync.WaitGroup
		errs := make(chan error, 3*len(clients))
		for _, c := range clients {
			for i := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					file, blksize := "big.bin", 1428
					if c.name == "tftp-hpa" {
						file, blksize = "Loads/term.bin", 0
					}
					out := filepath.Join(dir, fmt.Sprintf("%s-%d", c.name, i))
					if err := c.get(t, addr, file, out, blksize, false); err != nil {
						errs <- fmt.Errorf("%s #%d: %w", c.name, i, err)
						return
					}
					if got := mustRead(t, out); !bytes.Equal(got, files[file]) {
						errs <- fmt.Errorf("%s #%d: %s differs", c.name, i, file)
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// TestFloodWhileBooting: against `ctftp serve` with the shipped limits, one
// address floods the TFTP port with requests while real clients on another
// address fetch a phone's files: every fetch succeeds, bytes intact, and
// the flood is counted as dropped over its rate.
func TestFloodWhileBooting(t *testing.T) {
	root, files := localRoot(t)
	gw := startGateway(t, localConfig(root))
	addr := gw.TFTP[0] // 127.0.0.1
	server := netip.MustParseAddrPort(addr)
	flooder, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.5.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer flooder.Close()
	stop := make(chan struct{})
	flooded := make(chan int)
	go func() {
		sent := 0
		for {
			select {
			case <-stop:
				flooded <- sent
				return
			default:
			}
			rrq := tftpwire.AppendRequest(nil, tftpwire.OpRRQ, fmt.Sprintf("SEP%012d.cnf.xml", sent), "octet", nil)
			flooder.WriteToUDPAddrPort(rrq, server)
			sent++
			if sent%16 == 0 {
				time.Sleep(time.Millisecond) // a flood a loaded reader keeps up with (README, known limits)
			}
		}
	}()
	for _, c := range clients {
		if c.tool != ctftpBinName {
			needTool(t, c.tool)
		}
		for _, file := range []string{"ITLFile.tlv", "SEPDEFAULT.cnf", "b513.bin", "Loads/term.bin", "big.bin"} {
			out := filepath.Join(t.TempDir(), "out")
			if err := c.get(t, addr, file, out, 0, false); err != nil {
				t.Errorf("%s %s during the flood: %v", c.name, file, err)
				continue
			}
			if got := mustRead(t, out); !bytes.Equal(got, files[file]) {
				t.Errorf("%s %s during the flood: content differs", c.name, file)
			}
		}
	}
	close(stop)
	sent := <-flooded
	limited := gw.metric(`ctftp_requests_rejected_total{reason="rate_limited"}`)
	t.Logf("flooder sent %d requests; %v dropped over its rate", sent, limited)
	if limited == 0 {
		t.Error("the flood was not rate limited")
	}
}

// TestACLRealClients: tftp.deny from the config file, over TFTP and HTTP,
// with real clients: IPv6 loopback refused (silence, 403), IPv4 served.
func TestACLRealClients(t *testing.T) {
	needTool(t, "curl")
	root, files := localRoot(t)
	gw := startGateway(t, fmt.Sprintf(`
listen: ["127.0.0.1:0", "[::1]:0"]
http_listen: ["127.0.0.1:0", "[::1]:0"]
admin_listen: "127.0.0.1:0"
root: %q
tftp:
  deny: ["::1/128"]
`, root))
	for i, tftpAddr := range gw.TFTP {
		httpAddr := gw.HTTP[i]
		refused := strings.HasPrefix(tftpAddr, "[")
		out := filepath.Join(t.TempDir(), "out")
		_, errOut, err := runCmd(t, 30*time.Second, ctftpBin, "get", "--server", tftpAddr, "--timeout", "300ms", "--retries", "1", "-o", out, "ITLFile.tlv")
		if refused != (err != nil) {
			t.Errorf("ctftp get from %s: err %v (%s), refused %v", tftpAddr, err, errOut, refused)
		}
		code, _, _ := runCmd(t, 30*time.Second, "curl", "-sS", "-o", out, "-w", "%{http_code}", "http://"+urlHost(httpAddr)+"/ITLFile.tlv")
		want := "200"
		if refused {
			want = "403"
		}
		if code != want {
			t.Errorf("curl http from %s: %s, want %s", httpAddr, code, want)
		}
		if !refused && !bytes.Equal(mustRead(t, out), files["ITLFile.tlv"]) {
			t.Errorf("HTTP content differs")
		}
	}
	// The TFTP request and its retransmission, and the HTTP request.
	if v := gw.metric(`ctftp_requests_rejected_total{reason="acl"}`); v != 3 {
		t.Errorf("acl rejections %v, want 3", v)
	}
}
