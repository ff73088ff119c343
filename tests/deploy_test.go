package tests

// Running it for real (issue 12): `ctftp status` against a gateway and
// against nothing, the HA pair behind both option-150 addresses, a CUCM
// BAT export as a device file, readiness reported to systemd, and the
// shipped systemd unit checked by systemd-analyze.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftpclient"
)

// depStatusJSON is the part of /status these tests read.
type depStatusJSON struct {
	Config struct {
		Generation int    `json:"generation"`
		SHA256     string `json:"sha256"`
	} `json:"config"`
	NotReady  []string `json:"not_ready"`
	LearnFile *struct {
		File     string `json:"file"`
		Restored int    `json:"routes_restored"`
	} `json:"learn_file"`
}

// depPhoneFiles are per-device files of a phone whose content the
// gateway forwards as it comes (an unsigned XML config and a SIP
// profile): these tests are about where a file comes from, not about
// signatures, which the forwarding and trust tests cover.
func depPhoneFiles(mac string) []string {
	return []string{"SEP" + mac + ".cnf.xml", "SIP" + mac + ".cnf"}
}

// depPhonesRoot is a served root holding depPhoneFiles of macs, with
// content tagged server.
func depPhonesRoot(t testing.TB, server string, macs ...string) string {
	t.Helper()
	files := map[string][]byte{}
	for _, mac := range macs {
		for _, name := range depPhoneFiles(mac) {
			files[name] = fwdContent(server, name)
		}
	}
	return fwdRoot(t, files)
}

func depStatus(t testing.TB, gw *gateway) depStatusJSON {
	t.Helper()
	var st depStatusJSON
	if err := json.Unmarshal([]byte(gw.adminGet("/status")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// depTwoClusters starts east and west (real in.tftpd) holding the files
// of one phone each, and a gateway in front with backend health probes
// every 200ms.
func depTwoClusters(t *testing.T, extra string) (gw *gateway, east, west *fwdTFTPD, macE, macW string) {
	t.Helper()
	macE, macW = fwdMAC("00AA01", 1), fwdMAC("00AA02", 1)
	east = fwdStartTFTPD(t, "127.0.0.1", depPhonesRoot(t, "east", macE))
	west = fwdStartTFTPD(t, "127.0.0.1", depPhonesRoot(t, "west", macW))
	cfg := fwdConfig(t, "", []fwdSub{{"east", []string{east.Addr}}, {"west", []string{west.Addr}}},
		"backend: {timeout: 300ms, retries: 1, probe_interval: 200ms, max_fails: 1}\n"+extra)
	return startGateway(t, cfg), east, west, macE, macW
}

// TestStatusCommand: `ctftp status` prints the tables of a running
// gateway and exits 0 while it is ready, 3 once a sub-cluster has no
// backend up (naming it), and 1 when nothing answers.
func TestStatusCommand(t *testing.T) {
	gw, east, west, macE, _ := depTwoClusters(t, "")
	fwdMustGet(t, gw.TFTP[0], "SEP"+macE+".cnf.xml", fwdContent("east", "SEP"+macE+".cnf.xml"))

	out, errOut, code := trRun(t, "status", "--admin", gw.Admin)
	if code != 0 {
		t.Fatalf("status of a ready gateway: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{": ready (", "== Configuration", "sha256:", "== Sub-cluster east", "== Sub-cluster west",
		east.Addr, west.Addr, "== Trust (ITL eras)", "verdict:", "== Cache", "hit ratio:", "learned routes:"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(east.Addr) + `\s+up\s+\S+ ago`).MatchString(out) {
		t.Errorf("east's backend is not shown up with its last answer:\n%s", out)
	}

	js, _, code := trRun(t, "status", "--admin", gw.Admin, "--json")
	var st depStatusJSON
	if code != 0 || json.Unmarshal([]byte(js), &st) != nil || st.Config.Generation != 1 || len(st.Config.SHA256) != 64 {
		t.Errorf("status --json: exit %d, %+v\n%s", code, st, js)
	}

	west.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, code = trRun(t, "status", "--admin", gw.Admin)
		if code != 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code != 3 || !strings.Contains(out, "NOT READY") || !strings.Contains(out, `!! subcluster "west": no backend up`) ||
		!regexp.MustCompile(`(?m)^  `+regexp.QuoteMeta(west.Addr)+`\s+!! down`).MatchString(out) {
		t.Errorf("status with west down: exit %d, want 3\n%s", code, out)
	}
	if _, _, code := trRun(t, "status", "--admin", gw.Admin, "--json"); code != 3 {
		t.Errorf("status --json with west down: exit %d, want 3", code)
	}

	// Nothing listening: exit 1, saying what was tried.
	c, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nothing := c.Addr().String()
	c.Close()
	out, errOut, code = trRun(t, "status", "--admin", nothing)
	if code != 1 || !strings.Contains(errOut, "is the gateway running with admin_listen "+nothing) || out != "" {
		t.Errorf("status of nothing: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, _, code := trRun(t, "status", "extra"); code != 2 {
		t.Errorf("status with an argument: exit %d, want 2", code)
	}
}

// TestHAPair: two gateways run one configuration file, as the two
// addresses of DHCP option 150. Both serve the same bytes and report the
// same sha256; when the first stops, a phone falling back to the second
// gets the same bytes from it, and it still reports that sha256.
func TestHAPair(t *testing.T) {
	mac := fwdMAC("00AA03", 1)
	name := "SEP" + mac + ".cnf.xml"
	east := fwdStartTFTPD(t, "127.0.0.1", depPhonesRoot(t, "east", mac))
	local := []byte("the gateway's own file, the same on both\n")
	root := fwdRoot(t, map[string][]byte{"SEPDefault.cnf.xml": local})
	cfg := fwdConfig(t, root, []fwdSub{{"east", []string{east.Addr}}}, "backend: {timeout: 500ms, retries: 1}\n")
	a, b := startGateway(t, cfg), startGateway(t, cfg)

	sa, sb := depStatus(t, a), depStatus(t, b)
	if fileSum := fmt.Sprintf("%x", sha256.Sum256([]byte(cfg))); sa.Config.SHA256 != fileSum || sb.Config.SHA256 != fileSum {
		t.Fatalf("sha256: A %q, B %q; want the file's, %s", sa.Config.SHA256, sb.Config.SHA256, fileSum)
	}
	info := fmt.Sprintf(`ctftp_config_info{sha256=%q}`, sa.Config.SHA256)
	if a.metric(info) != 1 || b.metric(info) != 1 {
		t.Errorf("%s: A %g, B %g", info, a.metric(info), b.metric(info))
	}
	want := fwdContent("east", name)
	for _, gw := range []*gateway{a, b} {
		fwdMustGet(t, gw.TFTP[0], name, want)
		fwdMustGet(t, gw.TFTP[0], "SEPDefault.cnf.xml", local)
	}

	a.stop(t)
	// A phone with option 150 "A B": A first, one second per packet and
	// a few retransmissions, then B.
	var got []byte
	var errA error
	for i, addr := range []string{a.TFTP[0], b.TFTP[0]} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var buf bytes.Buffer
		_, err := tftpclient.Get(ctx, netip.MustParseAddrPort(addr), name, &buf, tftpclient.Options{
			BlockSize: 1428, TransferSize: true, Timeout: time.Second, Retries: 3})
		cancel()
		if err == nil {
			if i == 0 {
				t.Fatal("the stopped gateway answered")
			}
			got = buf.Bytes()
			break
		}
		errA = err
	}
	if errA == nil || !bytes.Equal(got, want) {
		t.Fatalf("fallback to B: A's error %v; got %d bytes starting %q", errA, len(got), fwdHead(got))
	}
	if sb2 := depStatus(t, b); sb2.Config.SHA256 != sa.Config.SHA256 || len(sb2.NotReady) != 0 {
		t.Errorf("B after A stopped: %+v", sb2)
	}

	// Drift: B's file gains a line and B reloads; its sha256 is now the
	// new file's, in /status and in the one ctftp_config_info series.
	path := b.cmd.Args[len(b.cmd.Args)-1]
	edited := append([]byte(cfg), "# edited on gw2 only\n"...)
	if err := os.WriteFile(path, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	b.cmd.Process.Signal(syscall.SIGHUP)
	newSum := fmt.Sprintf("%x", sha256.Sum256(edited))
	var sb3 depStatusJSON
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if sb3 = depStatus(t, b); sb3.Config.Generation == 2 {
			break
		}
	}
	m := b.scrape()
	if sb3.Config.SHA256 != newSum || m[fmt.Sprintf(`ctftp_config_info{sha256=%q}`, newSum)] != 1 {
		t.Errorf("after B's reload: /status %+v, want sha256 %s", sb3.Config, newSum)
	}
	if _, ok := m[info]; ok {
		t.Errorf("B still exports %s after its reload", info)
	}
}

// TestBATExportRoutesPhones: a CUCM "Export Phones" CSV as device_file
// sends the two phones it names to west, although east (first in
// priority) has files for the same MACs; the Jabber row is skipped and
// the load is logged with the count.
func TestBATExportRoutesPhones(t *testing.T) {
	m1, m2 := fwdMAC("00AA04", 1), fwdMAC("00AA04", 2)
	east := fwdStartTFTPD(t, "127.0.0.1", depPhonesRoot(t, "east", m1, m2))
	west := fwdStartTFTPD(t, "127.0.0.1", depPhonesRoot(t, "west", m1, m2))
	csv := filepath.Join(t.TempDir(), "west-phones.csv")
	export := "\ufeffDevice Name,Description,Device Pool,Directory Number 1\r\n" +
		"SEP" + m1 + ",\"Lobby, ground floor\",DP_West,2001\r\n" +
		"CSFJSMITH,Jabber for Windows,DP_West,2002\r\n" +
		"SEP" + strings.ToLower(m2) + ",Reception,DP_West,2003\r\n"
	if err := os.WriteFile(csv, []byte(export), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, fwdConfig(t, "", []fwdSub{{"east", []string{east.Addr}}, {"west", []string{west.Addr}}},
		fmt.Sprintf("backend: {timeout: 500ms, retries: 1}\nrouting:\n  rules:\n    - {device_file: %q, subcluster: west}\n", csv)))
	gw.waitLine("routing: device file loaded", func(m map[string]any) bool {
		return m["format"] == "csv" && m["devices"] == 2.0 && m["skipped"] == 1.0
	})
	for _, mac := range []string{m1, m2} {
		for _, name := range depPhoneFiles(mac) {
			fwdMustGet(t, gw.TFTP[0], name, fwdContent("west", name))
		}
	}
	m := gw.scrape()
	if n := fwdFetches(m, "east"); n != 0 {
		t.Errorf("east was asked %d times; the export's rule names west", n)
	}
	if m[`ctftp_routing_decisions_total{kind="rule"}`] != 4 {
		t.Errorf("rule decisions: %g, want 4", m[`ctftp_routing_decisions_total{kind="rule"}`])
	}

	// validate says what the export holds.
	out, errOut, code := trRun(t, "validate", "--offline", "--config", trConfigFile(t,
		fwdConfig(t, "", []fwdSub{{"west", []string{west.Addr}}}, fmt.Sprintf("routing:\n  rules:\n    - {device_file: %q, subcluster: west}\n", csv))))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("routing.rules[0].device_file %s (csv): 2 devices -> west; rows skipped (no MAC in the device name): 1\n", csv)) {
		t.Errorf("validate with the export: exit %d\n%s%s", code, out, errOut)
	}

	// A damaged export is refused with the line named.
	bad := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(bad, []byte("Device Name,Description\nSEP"+m1+",ok\nSEP00AA04,truncated\n"), 0o644)
	_, errOut, code = trRun(t, "validate", "--offline", "--config", trConfigFile(t,
		fwdConfig(t, "", []fwdSub{{"west", []string{west.Addr}}}, fmt.Sprintf("routing:\n  rules:\n    - {device_file: %q, subcluster: west}\n", bad))))
	if code != 2 || !strings.Contains(errOut, fmt.Sprintf(`routing.rules[0].device_file: %s:3: device name "SEP00AA04": want SEP and 12 hex digits`, bad)) {
		t.Errorf("validate of a damaged export: exit %d\n%s", code, errOut)
	}
}

// TestServeNotifiesSystemd: under a unit of Type=notify, `ctftp serve`
// says READY=1 once it listens, RELOADING=1 then READY=1 around a
// SIGHUP reload, and STOPPING=1 at shutdown.
func TestServeNotifiesSystemd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	recv := func() string {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		b := make([]byte, 4096)
		n, err := c.Read(b)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(b[:n])
	}
	gw := startGateway(t, fmt.Sprintf("listen: [\"127.0.0.1:0\"]\nadmin_listen: \"127.0.0.1:0\"\nroot: %q\n", t.TempDir()), "NOTIFY_SOCKET="+sock)
	if got := recv(); !strings.HasPrefix(got, "READY=1\nSTATUS=serving: config generation 1 (sha256 ") {
		t.Errorf("first notification %q", got)
	}
	if len(gw.Lines("listening")) != 1 {
		t.Error("READY=1 before the gateway listened")
	}
	gw.cmd.Process.Signal(syscall.SIGHUP)
	if got := recv(); !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=\d+$`).MatchString(got) {
		t.Errorf("reload notification %q", got)
	}
	if got := recv(); !strings.HasPrefix(got, "READY=1\nSTATUS=serving: config generation 2") {
		t.Errorf("after reload %q", got)
	}
	gw.stop(t)
	if got := recv(); got != "STOPPING=1\nSTATUS=stopping" {
		t.Errorf("at shutdown %q", got)
	}
}

// TestSystemdUnit: deploy/ctftp.service passes `systemd-analyze verify`
// with no complaint (an unknown or misspelt key is only a warning there,
// so any output fails), and its sandbox scores as well exposed as
// `systemd-analyze security` calls OK.
func TestSystemdUnit(t *testing.T) {
	needTool(t, "systemd-analyze")
	unit, err := os.ReadFile("../deploy/ctftp.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart's program exists: point it at the
	// binary under test, wherever the unit would install it.
	dir := t.TempDir()
	path := filepath.Join(dir, "ctftp.service")
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/ctftp serve --config /etc/ctftp/config.yaml\n")) {
		t.Fatal("ExecStart is not the path the README installs to")
	}
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/ctftp"), []byte(ctftpBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"Type=notify\n", "DynamicUser=yes\n", "AmbientCapabilities=CAP_NET_BIND_SERVICE\n",
		"ExecReload=/bin/kill -HUP $MAINPID\n", "Restart=on-failure\n", "ProtectSystem=strict\n", "NoNewPrivileges=yes\n"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}
	out, err = exec.Command("systemd-analyze", "security", "--offline=yes", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for ctftp\.service: (\d+\.\d+) (\S+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	if score, _ := strconv.ParseFloat(string(m[1]), 64); score > 2.5 {
		t.Errorf("exposure %s %s, want at most 2.5 (OK)", m[1], m[2])
	}
	t.Logf("systemd-analyze security: exposure %s %s", m[1], m[2])
}

// TestREADMEDeployment follows the README's Deployment block line by
// line, with the file system it installs into moved under a temporary
// directory: the binary it builds is the one installed, the config it
// edits is the one validated and served, the unit it installs passes
// `systemd-analyze verify`, and `systemctl enable --now` is done as
// systemd would: the unit's ExecStart with a notification socket, until
// READY=1. Then `ctftp status` must say ready, and the unit's ExecReload
// must reload it. Environment overrides keep it on loopback ports.
func TestREADMEDeployment(t *testing.T) {
	needTool(t, "systemd-analyze")
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "\n## Deployment\n")
	_, block, ok2 := strings.Cut(after, "```sh\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README has no Deployment section with a sh block")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	for _, d := range []string{"usr/local/bin", "etc/systemd/system", "build"} {
		os.MkdirAll(filepath.Join(tmp, d), 0o755)
	}
	relocate := strings.NewReplacer("/etc/systemd/system", tmp+"/etc/systemd/system", "/etc/ctftp", tmp+"/etc/ctftp",
		"/var/lib/ctftp", tmp+"/var/lib/ctftp", "/var/cache/ctftp", tmp+"/var/cache/ctftp", "/usr/local/bin", tmp+"/usr/local/bin")
	unitPath := tmp + "/etc/systemd/system/ctftp.service"
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := adminLn.Addr().String()
	adminLn.Close()
	env := append(os.Environ(), "PATH="+tmp+"/usr/local/bin:"+os.Getenv("PATH"),
		"CTFTP_LISTEN=127.0.0.1:0", "CTFTP_ADMIN_LISTEN="+admin, "CTFTP_LOG_FORMAT=json")

	sock := filepath.Join(tmp, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	recv := func() string {
		t.Helper()
		notify.SetReadDeadline(time.Now().Add(60 * time.Second))
		b := make([]byte, 4096)
		n, err := notify.Read(b)
		if err != nil {
			t.Fatalf("no notification from the service: %v", err)
		}
		return string(b[:n])
	}
	unitKey := func(key string) string {
		t.Helper()
		unit, err := os.ReadFile(unitPath)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^` + key + `=(.+)$`).FindSubmatch(unit)
		if m == nil {
			t.Fatalf("unit has no %s=", key)
		}
		return string(m[1])
	}
	var service *exec.Cmd
	t.Cleanup(func() {
		if service != nil {
			service.Process.Signal(syscall.SIGTERM)
			service.Wait()
		}
	})
	run := func(dir, line string, extraEnv ...string) string {
		t.Helper()
		cmd := exec.Command("bash", "-c", line)
		cmd.Dir, cmd.Env = dir, append(env, extraEnv...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("README step %q: %v\n%s", line, err, out)
		}
		return string(out)
	}

	steps := 0
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(line, "sudo "))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		steps++
		switch {
		case line == "go build -o ctftp ./cmd/ctftp":
			run(repo, "go build -o "+tmp+"/build/ctftp ./cmd/ctftp")
		case strings.HasPrefix(line, "install -m 0755 ctftp "):
			run(repo, relocate.Replace(strings.Replace(line, " ctftp ", " "+tmp+"/build/ctftp ", 1)))
		case line == "systemctl daemon-reload":
			t.Logf("skipped: %s", line)
		case line == "systemctl enable --now ctftp":
			exe := strings.Fields(unitKey("ExecStart"))
			service = exec.Command(exe[0], exe[1:]...)
			service.Env = append(env, "NOTIFY_SOCKET="+sock)
			var logs bytes.Buffer
			service.Stderr = &logs
			if err := service.Start(); err != nil {
				t.Fatal(err)
			}
			if got := recv(); !strings.HasPrefix(got, "READY=1\n") {
				t.Fatalf("first notification %q\n%s", got, logs.String())
			}
		case line == "ctftp status":
			out := run(repo, "ctftp status --admin "+admin)
			if !strings.Contains(out, ": ready (") {
				t.Errorf("ctftp status after enable --now:\n%s", out)
			}
		default:
			run(repo, relocate.Replace(line))
			if strings.HasSuffix(line, "/etc/systemd/system/ctftp.service") && strings.HasPrefix(line, "install ") {
				// The installed unit names the installed paths: move them too.
				unit, err := os.ReadFile(unitPath)
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(unitPath, []byte(relocate.Replace(string(unit))), 0o644)
			}
		}
	}
	if steps < 10 || service == nil {
		t.Fatalf("followed %d steps, service started: %v; the README block changed shape", steps, service != nil)
	}
	cfg, _ := os.ReadFile(tmp + "/etc/ctftp/config.yaml")
	if !bytes.Contains(cfg, []byte("\nlisten: [\"0.0.0.0:69\", \"[::]:69\"]\n")) || !bytes.Contains(cfg, []byte("\nroot: "+tmp+"/var/lib/ctftp\n")) ||
		!bytes.Contains(cfg, []byte("\n  learn_file: "+tmp+"/var/cache/ctftp/learned-routes.txt ")) {
		t.Errorf("the README's edit of config.yaml did not take:\n%s", cfg)
	}

	// systemctl reload ctftp: the unit's ExecReload, with $MAINPID.
	run(repo, unitKey("ExecReload"), fmt.Sprintf("MAINPID=%d", service.Process.Pid))
	if got := recv(); !strings.HasPrefix(got, "RELOADING=1\n") {
		t.Errorf("reload: %q", got)
	}
	if got := recv(); !strings.HasPrefix(got, "READY=1\nSTATUS=serving: config generation 2") {
		t.Errorf("after reload: %q", got)
	}
}

// TestPort69WithoutRoot: what the unit's DynamicUser, NoNewPrivileges
// and AmbientCapabilities=CAP_NET_BIND_SERVICE amount to, done with
// setpriv: an unprivileged user with only that capability serves TFTP on
// port 69; the same user without it is refused with a message saying
// so (exit 1).
func TestPort69WithoutRoot(t *testing.T) {
	needTool(t, "setpriv")
	if os.Geteuid() != 0 {
		fwdSkipOrFail(t, "setpriv needs root to change user")
	}
	// Everything the unprivileged user reads must be readable by others,
	// as the README says of /var/lib/ctftp.
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755) // the test's own temp directory, which holds dir
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "ctftp")
	b, err := os.ReadFile(ctftpBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o755)
	want := []byte("served on port 69 by a user with one capability\n")
	os.WriteFile(filepath.Join(root, "SEPDefault.cnf.xml"), want, 0o644)
	// A loopback address of its own: port 69 is then free whatever else
	// this host runs.
	ip := fmt.Sprintf("127.69.%d.%d", os.Getpid()%250+1, time.Now().Nanosecond()%250+1)
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("listen: [\"%s:69\"]\nadmin_listen: \"\"\nroot: %q\n", ip, root)), 0o644)

	setpriv := func(caps bool) *exec.Cmd {
		args := []string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", "--no-new-privs"}
		if caps {
			args = append(args, "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service")
		}
		return exec.Command("setpriv", append(args, bin, "serve", "--config", cfg)...)
	}

	// Without the capability: refused, saying why.
	out, err := setpriv(false).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "port 69 needs root or CAP_NET_BIND_SERVICE") {
		t.Fatalf("without CAP_NET_BIND_SERVICE: %v\n%s", err, out)
	}

	// With it.
	cmd := setpriv(true)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	var got []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		got, err = fwdGet(ip+":69", "SEPDefault.cnf.xml")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("get from %s:69: %v %q\n%s", ip, err, got, logs.String())
	}
	// It really runs as nobody.
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)`).FindSubmatch(status); m == nil || string(m[1]) == "0" {
		t.Errorf("the gateway runs as uid %s", m)
	}
}

// TestDeviceFileChangeReloads: a CUCM export replaced by a nightly job
// (the config file itself untouched) is a change of the configuration:
// the gateway reloads within reload.poll_interval, says which file
// changed, and routes the phones of the new export by its rule.
func TestDeviceFileChangeReloads(t *testing.T) {
	m1, m2 := fwdMAC("00AA05", 1), fwdMAC("00AA05", 2)
	west := fwdStartTFTPD(t, "127.0.0.1", depPhonesRoot(t, "west", m1, m2))
	csv := filepath.Join(t.TempDir(), "west-phones.csv")
	export := func(mac string) {
		t.Helper()
		// Written beside and renamed over, as an export job does.
		tmp := csv + ".new"
		if err := os.WriteFile(tmp, []byte("Device Name,Description\r\nSEP"+mac+",phone\r\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, csv); err != nil {
			t.Fatal(err)
		}
	}
	export(m1)
	gw := startGateway(t, fwdConfig(t, "", []fwdSub{{"west", []string{west.Addr}}},
		fmt.Sprintf("reload: {poll_interval: 200ms}\nrouting:\n  rules:\n    - {device_file: %q, subcluster: west}\n", csv)))
	rules := func() float64 { return gw.metric(`ctftp_routing_decisions_total{kind="rule"}`) }
	name := func(mac string) string { return "SEP" + mac + ".cnf.xml" }
	fwdMustGet(t, gw.TFTP[0], name(m1), fwdContent("west", name(m1)))
	if rules() != 1 {
		t.Fatalf("rule decisions %g, want 1 (m1 is in the export)", rules())
	}

	export(m2)
	gw.waitLine("config reload", func(m map[string]any) bool { return m["reason"] == "file changed" && m["file"] == csv })
	gw.waitLine("config reloaded", func(m map[string]any) bool { return m["generation"] == 2.0 })
	fwdMustGet(t, gw.TFTP[0], name(m2), fwdContent("west", name(m2)))
	if rules() != 2 {
		t.Errorf("rule decisions %g after the new export, want 2 (m2 by its rule)", rules())
	}
	fwdMustGet(t, gw.TFTP[0], name(m1), fwdContent("west", name(m1)))
	if got := gw.metric(`ctftp_routing_decisions_total{kind="rule"}`); got != 2 {
		t.Errorf("rule decisions %g after m1 again, want still 2: m1 left the export", got)
	}
}

// TestLearnedRoutesSurviveReload: a phone found by fan-out keeps its
// learned route across a reload (SIGHUP here; an edited config or a
// replaced device file reload the same way): its next file goes to its
// own sub-cluster only, not to every sub-cluster again.
func TestLearnedRoutesSurviveReload(t *testing.T) {
	gw, _, _, macE, _ := depTwoClusters(t, "")
	fwdMustGet(t, gw.TFTP[0], "SEP"+macE+".cnf.xml", fwdContent("east", "SEP"+macE+".cnf.xml"))
	// West's "not found" may be counted after the phone has its file
	// from east (a fan-out's fills outlive the request): wait for it.
	m := fwdWaitFetches(t, gw, nil, map[string]int{"west": 1})
	westMisses := fwdFetchSeries("west", "not_found")
	if m[`ctftp_routing_decisions_total{kind="fanout"}`] != 1 || m[westMisses] != 1 || m["ctftp_routing_learned_routes"] != 1 {
		t.Fatalf("before the reload: fan-out %v, west asked %v, routes %v; want 1, 1, 1",
			m[`ctftp_routing_decisions_total{kind="fanout"}`], m[westMisses], m["ctftp_routing_learned_routes"])
	}

	if err := gw.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	gw.waitLine("config reloaded", func(m map[string]any) bool { return m["generation"] == 2.0 })
	gw.waitLine("routing: learned routes kept across the reload", func(m map[string]any) bool { return m["kept"] == 1.0 })

	fwdMustGet(t, gw.TFTP[0], "SIP"+macE+".cnf", fwdContent("east", "SIP"+macE+".cnf"))
	m = gw.scrape()
	if m[`ctftp_routing_decisions_total{kind="learned"}`] != 1 || m[`ctftp_routing_decisions_total{kind="fanout"}`] != 1 || fwdFetches(m, "west") != 1 {
		t.Errorf("after the reload: learned %v, fan-out %v, west asked %d; want 1, 1, 1 (east only)",
			m[`ctftp_routing_decisions_total{kind="learned"}`], m[`ctftp_routing_decisions_total{kind="fanout"}`], fwdFetches(m, "west"))
	}
	if st := depStatus(t, gw); st.Config.Generation != 2 {
		t.Errorf("generation %d, want 2", st.Config.Generation)
	}
}

// TestLearnedRoutesSurviveRestart: with routing.learn_file, a phone found
// by fan-out before a restart is asked of its own sub-cluster only after
// it; the file is one readable line a route, and a damaged line costs
// that line, not the others.
func TestLearnedRoutesSurviveRestart(t *testing.T) {
	macE, macW := fwdMAC("00AA01", 1), fwdMAC("00AA02", 1)
	east := fwdStartTFTPD(t, "127.0.0.1", depPhonesRoot(t, "east", macE))
	west := fwdStartTFTPD(t, "127.0.0.1", depPhonesRoot(t, "west", macW))
	file := filepath.Join(t.TempDir(), "learned-routes.txt")
	cfg := fwdConfig(t, "", []fwdSub{{"east", []string{east.Addr}}, {"west", []string{west.Addr}}},
		fmt.Sprintf("routing:\n  learn_file: %q\n", file))
	fanouts, learned := `ctftp_routing_decisions_total{kind="fanout"}`, `ctftp_routing_decisions_total{kind="learned"}`

	gw := startGateway(t, cfg)
	fwdMustGet(t, gw.TFTP[0], "SEP"+macE+".cnf.xml", fwdContent("east", "SEP"+macE+".cnf.xml"))
	// West's "not found" may be counted after the phone has its file
	// from east (a fan-out's fills outlive the request): wait for it.
	if m := fwdWaitFetches(t, gw, nil, map[string]int{"west": 1}); m[fanouts] != 1 || m[fwdFetchSeries("west", "not_found")] != 1 {
		t.Fatalf("first boot: fan-out %v, west asked %v; want 1, 1", m[fanouts], m[fwdFetchSeries("west", "not_found")])
	}
	gw.stop(t)
	gw.waitLine("routing: learned routes saved", func(m map[string]any) bool { return m["routes"] == 1.0 && m["when"] == "shutdown" })
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^` + macE + ` east \d{4}-\d\d-\d\dT\S+Z$`).Match(b) {
		t.Fatalf("learn file lacks %s's route:\n%s", macE, b)
	}
	// A line damaged by hand (or by a disk) is skipped with a warning.
	if err := os.WriteFile(file, append(b, []byte("0011215A1AE3 west yesterday\n")...), 0o644); err != nil {
		t.Fatal(err)
	}

	gw = startGateway(t, cfg)
	gw.waitLine("routing: learned routes restored from learn_file", func(m map[string]any) bool { return m["restored"] == 1.0 })
	gw.waitLine("routing: learn_file line skipped", func(m map[string]any) bool {
		return strings.Contains(fmt.Sprint(m["problem"]), "line 3: time \"yesterday\"")
	})
	if st := depStatus(t, gw); st.LearnFile == nil || st.LearnFile.File != file || st.LearnFile.Restored != 1 {
		t.Errorf("/status learn_file after the restart: %+v", st.LearnFile)
	}
	fwdMustGet(t, gw.TFTP[0], "SIP"+macE+".cnf", fwdContent("east", "SIP"+macE+".cnf"))
	if m := gw.scrape(); m[learned] != 1 || m[fanouts] != 0 || fwdFetches(m, "west") != 0 || m["ctftp_routing_learned_routes"] != 1 {
		t.Errorf("after the restart: learned %v, fan-out %v, west asked %d, routes %v; want 1, 0, 0, 1",
			m[learned], m[fanouts], fwdFetches(m, "west"), m["ctftp_routing_learned_routes"])
	}
}
