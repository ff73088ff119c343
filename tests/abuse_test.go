package tests

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
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
