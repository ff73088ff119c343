package proxy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFetchWithTFTPHPA fetches with tftp-hpa's client, the most common
// TFTP client on Linux and an implementation independent of ours and of
// pin/tftp (test.sh installs it; the test skips where it is missing). It
// sends plain RFC 1350 requests, as Cisco phones do.
func TestFetchWithTFTPHPA(t *testing.T) {
	bin, err := exec.LookPath("tftp")
	if err != nil {
		t.Skip("tftp-hpa client not installed")
	}
	if out, _ := exec.Command(bin, "-V").CombinedOutput(); !bytes.Contains(out, []byte("tftp-hpa")) {
		t.Skipf("tftp is not tftp-hpa: %q", out)
	}
	text := []byte(strings.Repeat("<device>\n  <line>x\r</line>\n", 50))
	files := map[string][]byte{"SEP0011215A1AE3.cnf.xml": text, "big.bin": pattern(70_000), "empty": {}, "512": pattern(512)}
	ts := startServer(t, memSource(files, bodyStream), testConfig())
	dir := t.TempDir()
	tests := []struct{ file, mode string }{
		{"SEP0011215A1AE3.cnf.xml", "octet"},
		{"SEP0011215A1AE3.cnf.xml", "netascii"},
		{"big.bin", "octet"},
		{"empty", "octet"},
		{"512", "octet"},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.mode, func(t *testing.T) {
			out := filepath.Join(dir, tt.mode+"-"+tt.file)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-m", tt.mode, ts.addr.Addr().String(), fmt.Sprint(ts.addr.Port()), "-c", "get", tt.file, out)
			if msg, err := cmd.CombinedOutput(); err != nil || len(msg) > 0 {
				t.Fatalf("tftp: %v %q", err, msg)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, files[tt.file]) {
				t.Fatalf("got %s, want %s", clipBytes(got), clipBytes(files[tt.file]))
			}
		})
	}
	t.Run("not found", func(t *testing.T) {
		cmd := exec.Command(bin, ts.addr.Addr().String(), fmt.Sprint(ts.addr.Port()), "-c", "get", "CTLSEP0011215A1AE3.tlv", filepath.Join(dir, "ctl"))
		msg, _ := cmd.CombinedOutput()
		if !bytes.Contains(msg, []byte("File not found")) {
			t.Fatalf("tftp said %q", msg)
		}
	})
}
