package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// ctftpBin is the gateway binary every test runs, built once in TestMain.
var ctftpBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ctftp-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctftpBin = filepath.Join(dir, "ctftp")
	args := []string{"build", "-o", ctftpBin}
	if raceBuild {
		args = append(args, "-race")
	}
	args = append(args, "../cmd/ctftp")
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ctftp:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// gateway is one running `ctftp serve` process.
type gateway struct {
	t      testing.TB
	cmd    *exec.Cmd
	TFTP   []string // bound TFTP addresses, from the "listening" log line
	Admin  string
	HTTP   []string
	mu     sync.Mutex
	lines  []map[string]any
	raw    bytes.Buffer
	exited chan error
}

// startGateway writes cfg (YAML, with "{{ROOT}}" replaced by root) to a
// temp file and runs `ctftp serve` on it with JSON logs, returning once
// the gateway logged its bound addresses. The process gets SIGTERM at
// cleanup and must exit 0.
func startGateway(t testing.TB, cfg string, env ...string) *gateway {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, exited: make(chan error, 1)}
	g.cmd = exec.Command(ctftpBin, "serve", "--config", path)
	g.cmd.Env = append(append(os.Environ(), "CTFTP_LOG_FORMAT=json", "CTFTP_LOG_LEVEL=debug"), env...)
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			g.mu.Lock()
			g.raw.Write(line)
			g.raw.WriteByte('\n')
			var m map[string]any
			if json.Unmarshal(line, &m) == nil {
				g.lines = append(g.lines, m)
				if m["msg"] == "listening" {
					select {
					case listening <- m:
					default:
					}
				}
			}
			g.mu.Unlock()
		}
		g.exited <- g.cmd.Wait()
	}()
	t.Cleanup(func() { g.stop(t) })
	select {
	case m := <-listening:
		g.TFTP = strs(m["tftp"])
		g.HTTP = strs(m["http"])
		if a := strs(m["admin"]); len(a) > 0 {
			g.Admin = a[0]
		}
	case err := <-g.exited:
		g.exited <- err
		t.Fatalf("ctftp serve exited before listening: %v\n%s", err, g.Log())
	case <-time.After(60 * time.Second):
		t.Fatalf("ctftp serve did not start listening\n%s", g.Log())
	}
	return g
}

func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// stop sends SIGTERM and requires a clean exit.
func (g *gateway) stop(t testing.TB) {
	if g.cmd.ProcessState != nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-g.exited:
		if err != nil {
			t.Errorf("ctftp serve exit: %v\n%s", err, g.Log())
		}
	case <-time.After(30 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
		t.Errorf("ctftp serve did not stop within 30s of SIGTERM\n%s", g.Log())
	}
}

// Log is everything the gateway logged so far.
func (g *gateway) Log() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.raw.String()
}

// Lines returns the parsed log lines whose msg is msg.
func (g *gateway) Lines(msg string) []map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []map[string]any
	for _, m := range g.lines {
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// waitLine polls the log until a line with msg satisfies pred.
func (g *gateway) waitLine(msg string, pred func(map[string]any) bool) map[string]any {
	g.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range g.Lines(msg) {
			if pred(m) {
				return m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.t.Fatalf("no %q log line matched\n%s", msg, g.Log())
	return nil
}

// metric reads one series' value from /metrics (0 when absent).
func (g *gateway) metric(series string) float64 {
	g.t.Helper()
	return g.scrape()[series]
}

// scrape reads every series of the gateway's /metrics, keyed by the
// series as written (name and labels).
func (g *gateway) scrape() map[string]float64 {
	g.t.Helper()
	return parseExposition(g.adminGet("/metrics"))
}

// parseExposition reads Prometheus text: one value per series.
func parseExposition(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

func (g *gateway) adminGet(path string) string {
	g.t.Helper()
	if g.Admin == "" {
		g.t.Fatal("gateway has no admin endpoint")
	}
	resp, err := http.Get("http://" + g.Admin + path)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// runCmd runs a client program with a deadline and returns its output.
func runCmd(t testing.TB, timeout time.Duration, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// needTool skips when a peer program is missing outside CI; in CI a
// missing peer is a failure, because test.sh installs them.
func needTool(t testing.TB, path string) {
	t.Helper()
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (test.sh installs it): %v", path, err)
		}
		t.Skipf("%s not installed; run ./test.sh to install the real peers", path)
	}
}
