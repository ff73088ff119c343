package tests

// Helpers of the forwarding, DNS and miss tests: per-cluster phone files,
// in.tftpd processes a test can kill or bind to any loopback address,
// the gateway's metrics as a map, and a TFTP fetch with our own client.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftpclient"
)

// Sizes of a phone's per-device files as Cisco phone logs show them
// (domain.md): CTL about 4.7 KB, ITL 5.4 KB, signed config 7.6 KB. All
// are several blocks at any block size a backend is asked for.
const (
	fwdCTLSize = 4700
	fwdITLSize = 5400
	fwdCnfSize = 7600
)

// fwdMAC is the n-th MAC under a 6-digit prefix, as a phone writes it in
// its file names: 12 upper-case hex digits.
func fwdMAC(prefix string, n int) string {
	return fmt.Sprintf("%s%06X", prefix, n)
}

// fwdPhoneFiles names a phone's per-device files in the order it asks
// for them at boot (after CTLSEP<MAC>.tlv, which most clusters lack).
func fwdPhoneFiles(mac string) []string {
	return []string{"ITLSEP" + mac + ".tlv", "SEP" + mac + ".cnf.xml.sgn"}
}

// fwdContent is the body the backend tagged `server` serves for name: a
// readable header naming both, then a SHA-256 counter stream, so every
// server's copy of every file differs from every other and a mix-up shows
// in the first bytes.
func fwdContent(server, name string) []byte {
	size := fwdCnfSize
	switch {
	case strings.HasPrefix(name, "CTLSEP"):
		size = fwdCTLSize
	case strings.HasPrefix(name, "ITLSEP"):
		size = fwdITLSize
	}
	b := make([]byte, 0, size+sha256.Size)
	b = append(b, fmt.Sprintf("server=%s file=%s\n", server, name)...)
	seed := sha256.Sum256([]byte(server + "\x00" + name))
	for i := uint64(0); len(b) < size; i++ {
		h := sha256.Sum256(binary.BigEndian.AppendUint64(seed[:], i))
		b = append(b, h[:]...)
	}
	return b[:size]
}

// fwdRoot makes a directory tftpd-hpa can serve (world-readable, as it
// insists) holding files.
func fwdRoot(t testing.TB, files map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		fwdWriteFile(t, root, name, b)
	}
	return root
}

// fwdWriteFile adds a world-readable file to a served root; in.tftpd
// opens files per request, so it serves it from the next request on.
func fwdWriteFile(t testing.TB, root, name string, b []byte) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil { // umask-proof
		t.Fatal(err)
	}
}

// fwdPhonesRoot is a served root holding the per-device files of macs,
// with content tagged server.
func fwdPhonesRoot(t testing.TB, server string, macs ...string) string {
	t.Helper()
	files := map[string][]byte{}
	for _, mac := range macs {
		for _, name := range fwdPhoneFiles(mac) {
			files[name] = fwdContent(server, name)
		}
	}
	return fwdRoot(t, files)
}

// fwdTFTPD is one real tftpd-hpa (in.tftpd) process that the test owns:
// unlike tftptest.StartTFTPD it can be killed mid-test and bound to any
// loopback address (127.0.0.2 for a DNS move, ::1 for AAAA).
type fwdTFTPD struct {
	Addr   string // "ip:port"
	cmd    *exec.Cmd
	exited chan struct{}
	once   sync.Once
}

// fwdTFTPDBin finds in.tftpd, or skips (fails under CI) like tftptest.
func fwdTFTPDBin(t testing.TB) string {
	t.Helper()
	bin := "/usr/sbin/in.tftpd"
	if _, err := os.Stat(bin); err != nil {
		p, err := exec.LookPath("in.tftpd")
		if err != nil {
			fwdSkipOrFail(t, "in.tftpd (tftpd-hpa) is not installed; apt-get install tftpd-hpa to run this test")
		}
		bin = p
	}
	if os.Geteuid() != 0 {
		fwdSkipOrFail(t, "in.tftpd must start as root (it chroots into the served directory)")
	}
	return bin
}

func fwdSkipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so this is a failure, not a skip)", why)
	}
	t.Skip(why)
}

// fwdStartTFTPD runs in.tftpd on ip and a free port, serving root.
func fwdStartTFTPD(t testing.TB, ip, root string) *fwdTFTPD {
	t.Helper()
	return fwdStartTFTPDSamePort(t, []string{ip}, []string{root})[0]
}

// fwdStartTFTPDSamePort runs one in.tftpd per ip, all on the same port
// (free on every ip), the i-th serving roots[i]; a DNS test moves a host
// name's A record between them while the port stays. A port taken
// between choosing and binding it is retried with another.
func fwdStartTFTPDSamePort(t testing.TB, ips, roots []string) []*fwdTFTPD {
	t.Helper()
	bin := fwdTFTPDBin(t)
	for attempt := 0; attempt < 5; attempt++ {
		port, err := fwdFreePort(ips)
		if err != nil {
			continue
		}
		var ds []*fwdTFTPD
		ok := true
		for i, ip := range ips {
			d, err := fwdRunTFTPD(bin, net.JoinHostPort(ip, strconv.Itoa(port)), roots[i])
			if err != nil {
				ok = false
				break
			}
			ds = append(ds, d)
		}
		if !ok {
			for _, d := range ds {
				d.Kill()
			}
			continue
		}
		for _, d := range ds {
			t.Cleanup(d.Kill)
		}
		return ds
	}
	t.Fatalf("in.tftpd did not answer on %v after 5 tries", ips)
	return nil
}

// fwdFreePort finds a UDP port that is free on every ip at this moment.
func fwdFreePort(ips []string) (int, error) {
	for range 20 {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ips[0]), 0)))
		if err != nil {
			return 0, err
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		free := true
		for _, ip := range ips[1:] {
			o, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port))))
			if err != nil {
				free = false
				break
			}
			o.Close()
		}
		c.Close()
		if free {
			return port, nil
		}
	}
	return 0, errors.New("no port free on every address")
}

// fwdRunTFTPD starts in.tftpd on addr and waits until it answers.
func fwdRunTFTPD(bin, addr, root string) (*fwdTFTPD, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-L", "-s", "-u", "root", "-a", addr, abs)
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group: Kill also ends the children it forks per
	// transfer, so a killed backend is dead, not half-alive.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &fwdTFTPD{Addr: addr, cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(d.exited)
	}()
	if err := fwdWaitAnswer(addr, d.exited); err != nil {
		d.Kill()
		return nil, fmt.Errorf("in.tftpd on %s: %w (output %q)", addr, err, out.String())
	}
	return d, nil
}

// fwdWaitAnswer asks addr for a made-up file until it answers (its
// "file not found" is the answer wanted), the process exits, or 10 s pass.
func fwdWaitAnswer(addr string, exited <-chan struct{}) error {
	ap := netip.MustParseAddrPort(addr)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := tftpclient.Get(ctx, ap, "fwd-readiness-check", &bytes.Buffer{}, tftpclient.Options{Timeout: 100 * time.Millisecond, Retries: 1})
		cancel()
		var se *tftpclient.ServerError
		if errors.As(err, &se) {
			return nil
		}
	}
	return errors.New("no answer within 10s")
}

// Kill ends the daemon and every transfer it forked, and waits for it.
// It is idempotent.
func (d *fwdTFTPD) Kill() {
	d.once.Do(func() {
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.exited
	})
}

// fwdSub is one sub-cluster of a test config.
type fwdSub struct {
	Name     string
	Backends []string
}

// fwdSubclustersYAML renders the subclusters section.
func fwdSubclustersYAML(subs []fwdSub) string {
	var b strings.Builder
	b.WriteString("subclusters:\n")
	for _, s := range subs {
		q := make([]string, len(s.Backends))
		for i, be := range s.Backends {
			q[i] = strconv.Quote(be)
		}
		fmt.Fprintf(&b, "  - name: %s\n    version: \"12.5\"\n    backends: [%s]\n", s.Name, strings.Join(q, ", "))
	}
	return b.String()
}

// fwdConfig is a gateway config on 127.0.0.1 with an admin endpoint, an
// empty local root (unless root is given), the sub-clusters, and extra
// YAML sections (backend, routing, cache, dns) appended verbatim.
func fwdConfig(t testing.TB, root string, subs []fwdSub, extra string) string {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	return fmt.Sprintf("listen: [\"127.0.0.1:0\"]\nadmin_listen: \"127.0.0.1:0\"\nroot: %q\n%s%s", root, fwdSubclustersYAML(subs), extra)
}

func fwdFetchSeries(sub, result string) string {
	return fmt.Sprintf(`ctftp_backend_fetches_total{subcluster=%q,result=%q}`, sub, result)
}

// fwdFetches is one sub-cluster's backend attempts in a scrape, all
// results together.
func fwdFetches(m map[string]float64, sub string) int {
	n := 0.0
	for _, r := range []string{"ok", "not_found", "refused", "error"} {
		n += m[fwdFetchSeries(sub, r)]
	}
	return int(n)
}

// fwdTotalFetches is every backend attempt in a scrape.
func fwdTotalFetches(m map[string]float64) int {
	n := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, "ctftp_backend_fetches_total{") {
			n += v
		}
	}
	return int(n)
}

// fwdDelta is after - before for the series that changed, sorted, for
// failure messages.
func fwdDelta(before, after map[string]float64) string {
	var lines []string
	for k, v := range after {
		if d := v - before[k]; d != 0 && strings.HasPrefix(k, "ctftp_") && !strings.Contains(k, "_bucket") && !strings.Contains(k, "duration") {
			lines = append(lines, fmt.Sprintf("%s %+g", k, d))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// fwdGet fetches name from a gateway address with our own client, the
// way a phone does (tsize and a 1428-byte block asked for), within a
// deadline generous enough for a race-built gateway.
func fwdGet(addr, name string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var b bytes.Buffer
	_, err := tftpclient.Get(ctx, netip.MustParseAddrPort(addr), name, &b, tftpclient.Options{
		BlockSize: 1428, TransferSize: true, Timeout: 2 * time.Second, Retries: 5,
	})
	return b.Bytes(), err
}

// fwdMustGet is fwdGet that fails the test on an error and checks the
// bytes are want.
func fwdMustGet(t testing.TB, addr, name string, want []byte) {
	t.Helper()
	got, err := fwdGet(addr, name)
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("get %s: got %d bytes starting %q, want %d bytes starting %q", name, len(got), fwdHead(got), len(want), fwdHead(want))
	}
}

// fwdHead is the readable header line of a fwdContent body.
func fwdHead(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return string(b[:i])
	}
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

// fwdWaitTransferLine waits for the n-th "transfer" log line for file
// (the gateway logs it after the client's last ACK, which the client
// does not wait for) and returns it.
func fwdWaitTransferLine(g *gateway, file string, n int) map[string]any {
	g.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		seen := 0
		for _, m := range g.Lines("transfer") {
			if m["file"] == file {
				if seen++; seen == n {
					return m
				}
			}
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("no transfer log line #%d for %s\n%s", n, file, g.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fwdHangingBackend is a TFTP backend on 127.0.0.1 that answers every
// read request with "file not found" until Hang, and from then on reads
// requests (counting them) but never answers: a backend that was alive
// when the gateway started and checked it, then hung. It is safe for
// concurrent use; Close (registered with t.Cleanup) stops it.
type fwdHangingBackend struct {
	conn *net.UDPConn
	done chan struct{}

	mu       sync.Mutex
	hung     bool
	requests map[string]int
}

func fwdStartHangingBackend(t testing.TB) *fwdHangingBackend {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	h := &fwdHangingBackend{conn: conn, done: make(chan struct{}), requests: map[string]int{}}
	go h.serve()
	t.Cleanup(func() {
		conn.Close()
		<-h.done
	})
	return h
}

func (h *fwdHangingBackend) Addr() string { return h.conn.LocalAddr().String() }

// Hang stops all answers from now on.
func (h *fwdHangingBackend) Hang() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hung = true
}

// Requests counts the read requests for name received after Hang.
func (h *fwdHangingBackend) Requests(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests[name]
}

func (h *fwdHangingBackend) serve() {
	defer close(h.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := h.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		if n < 4 || binary.BigEndian.Uint16(buf) != 1 {
			continue // not an RRQ
		}
		name, _, _ := bytes.Cut(buf[2:n], []byte{0})
		h.mu.Lock()
		hung := h.hung
		if hung {
			h.requests[string(name)]++
		}
		h.mu.Unlock()
		if hung {
			continue
		}
		p := binary.BigEndian.AppendUint16(nil, 5) // ERROR
		p = binary.BigEndian.AppendUint16(p, 1)    // file not found
		p = append(append(p, "File not found"...), 0)
		h.conn.WriteToUDPAddrPort(p, from)
	}
}
