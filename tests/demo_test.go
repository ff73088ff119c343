package tests

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemo runs `ctftp demo` as a new user would and follows what it
// prints: fetch a phone's ITL from each sub-cluster through the gateway,
// verify a forwarded signed config against its cluster's ITL, and see an
// unknown phone get "file not found".
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(ctftpBin, "demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--dir", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	addrCh, adminCh := make(chan string, 1), make(chan string, 1)
	fetchCh, verifyCh := make(chan string, 1), make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`gateway on tftp://(\S+),`)
		reAdmin := regexp.MustCompile(`ctftp status --admin (\S+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrCh <- m[1]
			}
			if m := reAdmin.FindStringSubmatch(sc.Text()); m != nil {
				adminCh <- m[1]
			}
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, "curl ") && strings.HasSuffix(line, " -O") {
				fetchCh <- line
			}
			if strings.HasPrefix(line, "go run ./cmd/ctftp itl verify ") {
				verifyCh <- strings.TrimPrefix(line, "go run ./cmd/ctftp ")
			}
		}
		exited <- cmd.Wait()
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case err := <-exited:
		t.Fatalf("demo exited early: %v\n%s", err, errBuf.String())
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("demo did not start\n%s", errBuf.String())
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("demo exit: %v", err)
			}
			// The gateway's log is what a new user reads: the
			// sub-clusters' own transfer lines (a health probe every
			// 2 s each) must not bury it.
			if strings.Contains(errBuf.String(), "health probe done") {
				t.Errorf("the demo logs the sub-clusters' probe transfers:\n%s", errBuf.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Error("demo did not stop on SIGTERM")
		}
	}()

	get := func(file, out string) (string, error) {
		o, e, err := runCmd(t, 30*time.Second, ctftpBin, "get", "--server", addr, "-o", out, file)
		return o + e, err
	}
	for _, tc := range []struct{ file, cluster string }{
		{"ITLSEP0011215A1AE3.tlv", "east"},
		{"SEP0011215A1AE3.cnf.xml.sgn", "east"},
		{"ITLSEP00AABB000001.tlv", "west"},
		{"SEP00AABB000002.cnf.xml.sgn", "west"},
		{"ITLFile.tlv", "root"},
	} {
		out := filepath.Join(t.TempDir(), tc.file)
		if msg, err := get(tc.file, out); err != nil {
			t.Fatalf("%s: %v: %s", tc.file, err, msg)
		}
		want := mustRead(t, filepath.Join(dir, tc.cluster, tc.file))
		if !bytes.Equal(mustRead(t, out), want) {
			t.Fatalf("%s: bytes differ from %s's", tc.file, tc.cluster)
		}
		if strings.HasSuffix(tc.file, ".sgn") {
			o, e, err := runCmd(t, 30*time.Second, ctftpBin, "itl", "verify", out, "--trust", filepath.Join(dir, tc.cluster, "ITLFile.tlv"))
			if err != nil {
				t.Fatalf("itl verify %s: %v\n%s%s", tc.file, err, o, e)
			}
			// A phone of the other cluster would not trust it.
			other := map[string]string{"east": "west", "west": "east"}[tc.cluster]
			_, _, err = runCmd(t, 30*time.Second, ctftpBin, "itl", "verify", out, "--trust", filepath.Join(dir, other, "ITLFile.tlv"))
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
				t.Fatalf("verify against the wrong cluster: %v, want exit 3", err)
			}
		}
	}
	msg, err := get("SEP0000DEADBEEF.cnf.xml.sgn", filepath.Join(t.TempDir(), "x"))
	if err == nil || !strings.Contains(msg, "error 1") {
		t.Fatalf("unknown phone: %v %s, want TFTP error 1", err, msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "root", "ITLFile.tlv")); err != nil {
		t.Fatal(err)
	}
	// The fetch-and-verify lines it prints, run as printed: the forwarded
	// config is accepted by a west phone, without a warning.
	select {
	case fetch := <-fetchCh:
		verify := <-verifyCh
		work := t.TempDir()
		args := strings.Fields(fetch)
		c := exec.Command(args[0], args[1:]...)
		c.Dir = work
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", fetch, err, out)
		}
		c = exec.Command(ctftpBin, strings.Fields(verify)...)
		c.Dir = work
		out, err := c.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "accept") || strings.Contains(string(out), "warning") {
			t.Errorf("ctftp %s: %v\n%s", verify, err, out)
		}
	case <-time.After(10 * time.Second):
		t.Error("the demo printed no curl ... -O and itl verify lines")
	}
	// The status line the demo prints works: the gateway is ready, east
	// and west are up.
	select {
	case admin := <-adminCh:
		o, e, err := runCmd(t, 30*time.Second, ctftpBin, "status", "--admin", admin)
		if err != nil || !strings.Contains(o, ": ready (") || !strings.Contains(o, "== Sub-cluster east") || !strings.Contains(o, "== Sub-cluster west") {
			t.Errorf("ctftp status --admin %s: %v\n%s%s", admin, err, o, e)
		}
	case <-time.After(10 * time.Second):
		t.Error("the demo printed no `ctftp status --admin` line")
	}
}
