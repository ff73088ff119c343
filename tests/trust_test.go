package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftpclient"
	"github.com/ctftp/ctftp/internal/tftptest"
	"github.com/ctftp/ctftp/itl"
)

// The trust guard end to end: real in.tftpd sub-clusters serving ITLs
// built and signed here, the real binary refusing, warning, watching.

// trPKI is one cluster's keys: the SAST that signs its ITL and the
// CallManager (CCM+TFTP) key that signs its configs. 1024-bit keys keep
// the tests fast.
type trPKI struct{ sast, ccm *itl.Signer }

func trNewPKI(t testing.TB, name string) trPKI {
	t.Helper()
	sast, err := itl.NewSigner("ITLRecovery_"+name, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ccm, err := itl.NewSigner("cucm-"+name+".example.com", 1024)
	if err != nil {
		t.Fatal(err)
	}
	return trPKI{sast, ccm}
}

// itl is the cluster's ITLFile.tlv; blank makes the rollback one.
func (p trPKI) itl(t testing.TB, blank bool) []byte {
	t.Helper()
	b, err := itl.Build(itl.BuildOptions{Signer: p.sast, Records: []itl.RecordSpec{{Role: itl.RoleCCMTFTP, Cert: p.ccm.Cert}}, Blank: blank})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p trPKI) sign(t testing.TB, name string, payload []byte) []byte {
	t.Helper()
	b, err := itl.Sign(name, payload, p.ccm, itl.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// trRoot is a directory with files, readable by everyone as tftpd-hpa
// requires.
func trRoot(t testing.TB, files map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		trWrite(t, root, name, b)
	}
	return root
}

// trWrite replaces a file atomically (a server reading it sees the old
// or the new bytes, never half), readable by everyone.
func trWrite(t testing.TB, dir, name string, b []byte) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// trSub is a sub-cluster for trConfig.
type trSub struct{ name, version, backend string }

// trConfig is a gateway config on loopback with fast backend timeouts,
// no health probing (the trust probes are what is under test) and the
// given sub-clusters; extra is appended as is.
func trConfig(root string, subs []trSub, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: [\"127.0.0.1:0\"]\nadmin_listen: \"127.0.0.1:0\"\nroot: %q\n", root)
	b.WriteString("backend: {timeout: 1s, retries: 1, probe_interval: 0s}\n")
	if len(subs) > 0 {
		b.WriteString("subclusters:\n")
	}
	for _, s := range subs {
		fmt.Fprintf(&b, "  - {name: %s, version: %q, backends: [%q]}\n", s.name, s.version, s.backend)
	}
	b.WriteString(extra)
	return b.String()
}

// trRun runs the ctftp binary to its end and returns its output and
// exit code.
func trRun(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctftpBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v", args, err)
	}
	return o.String(), e.String(), code
}

func trConfigFile(t testing.TB, cfg string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// trGet fetches a file through the gateway with our own client.
func trGet(t testing.TB, gw *gateway, name string) ([]byte, error) {
	t.Helper()
	ap, err := netip.ParseAddrPort(gw.TFTP[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b bytes.Buffer
	_, err = tftpclient.Get(ctx, ap, name, &b, tftpclient.Options{BlockSize: 1428})
	return b.Bytes(), err
}

// trStatus decodes /status.
func trStatus(t testing.TB, gw *gateway) map[string]any {
	t.Helper()
	var st map[string]any
	if err := json.Unmarshal([]byte(gw.adminGet("/status")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// trReady returns /readyz's status code and body.
func trReady(t testing.TB, gw *gateway) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + gw.Admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func trWant(t testing.TB, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

func TestTrustMixedErasRefused(t *testing.T) {
	central, east := trNewPKI(t, "central"), trNewPKI(t, "east")
	e := tftptest.StartTFTPD(t, trRoot(t, map[string][]byte{"ITLFile.tlv": east.itl(t, false)}))
	w := tftptest.StartTFTPD(t, trRoot(t, map[string][]byte{"SEP00AABB000001.cnf.xml": []byte("<device/>")}))
	cfg := trConfigFile(t, trConfig(trRoot(t, map[string][]byte{"ITLFile.tlv": central.itl(t, false)}),
		[]trSub{{"east", "auto", e}, {"west", "auto", w}}, ""))

	stdout, stderr, code := trRun(t, "validate", "--config", cfg)
	if code != 2 {
		t.Errorf("validate exit %d, want 2\n%s%s", code, stdout, stderr)
	}
	table := []string{"SIDE", "DECLARED", "PROBED", "ITL SIGNER",
		"east", "8.x+", "CN=ITLRecovery_east (serial ", "west", "pre-8.0",
		"verdict: mixed", "problem: subclusters: mixed ITL eras: 8.x+ with a real ITL: (central), east; pre-8.0: west",
		"ways out:", "1. upgrade: upgrade west to CUCM 8.0 or later",
		`2. roll back: on east set the enterprise parameter "Prepare Cluster for Rollback to pre 8.0" to True`, "HTTP, not HTTPS"}
	trWant(t, "validate's output", stdout, table...)
	trWant(t, "validate's progress", stderr, "probing every backend", "probing ITLFile.tlv of 2 sub-clusters", "  east: 8.x+", "  west: pre-8.0")

	stdout, stderr, code = trRun(t, "serve", "--config", cfg)
	if code != 2 {
		t.Errorf("serve exit %d, want 2\n%s%s", code, stdout, stderr)
	}
	trWant(t, "serve's refusal", stderr, append([]string{"refusing to start"}, table...)...)
	if strings.Contains(stderr, `"msg":"listening"`) || strings.Contains(stderr, "msg=listening") {
		t.Errorf("serve listened before refusing:\n%s", stderr)
	}
}

func TestTrustRollbackEverywhereRuns(t *testing.T) {
	central, east := trNewPKI(t, "central"), trNewPKI(t, "east")
	const cnf = "SEP001122334455.cnf.xml"
	e := tftptest.StartTFTPD(t, trRoot(t, map[string][]byte{"ITLFile.tlv": east.itl(t, true), cnf: []byte("<east/>")}))
	w := tftptest.StartTFTPD(t, trRoot(t, map[string][]byte{"SEP00AABB000001.cnf.xml": []byte("<west/>")}))
	cfg := trConfig(trRoot(t, map[string][]byte{"ITLFile.tlv": central.itl(t, true)}),
		[]trSub{{"east", "auto", e}, {"west", "7.1", w}}, "")

	stdout, stderr, code := trRun(t, "validate", "--config", trConfigFile(t, cfg))
	if code != 0 {
		t.Errorf("validate exit %d, want 0\n%s%s", code, stdout, stderr)
	}
	trWant(t, "validate's output", stdout, "8.x+ rollback", "verdict: mixed, every 8.x+ side in rollback", "warning:", "ITL security is off")

	gw := startGateway(t, cfg)
	gw.waitLine("trust: pre-8.0 and 8.x+ clusters are mixed; this runs only because every 8.x+ side publishes a blank (rollback) ITL: ITL security is off, and secured phone URLs must use HTTP",
		func(map[string]any) bool { return true })
	if v := gw.metric("ctftp_homogeneous"); v != 0 {
		t.Errorf("ctftp_homogeneous = %v, want 0", v)
	}
	if !strings.Contains(gw.adminGet("/metrics"), "ctftp_homogeneous 0") {
		t.Error("ctftp_homogeneous is not exported")
	}
	if b, err := trGet(t, gw, cnf); err != nil || string(b) != "<east/>" {
		t.Errorf("forwarding under rollback: %q %v", b, err)
	}
	if code, body := trReady(t, gw); code != http.StatusOK {
		t.Errorf("/readyz %d: %s", code, body)
	}
}

func TestTrustDeclaredVersionContradicted(t *testing.T) {
	central, east := trNewPKI(t, "central"), trNewPKI(t, "east")
	e := tftptest.StartTFTPD(t, trRoot(t, map[string][]byte{"ITLFile.tlv": east.itl(t, false)}))
	cfg := trConfig(trRoot(t, map[string][]byte{"ITLFile.tlv": central.itl(t, false)}), []trSub{{"east", "7.1", e}}, "")
	want := `subclusters[0].version: "7.1" declares pre-8.0, but sub-cluster "east" serves a verified ITLFile.tlv (8.x+)`

	stdout, stderr, code := trRun(t, "validate", "--config", trConfigFile(t, cfg))
	if code != 2 {
		t.Errorf("validate exit %d, want 2\n%s%s", code, stdout, stderr)
	}
	trWant(t, "validate's output", stdout, want, "verdict: homogeneous 8.x+")

	// serve judges homogeneity on what it probes (all 8.x+ here) and
	// reports the wrong label as a configuration error.
	gw := startGateway(t, cfg)
	gw.waitLine("trust: "+want+`; fix the version or use "auto"`, func(m map[string]any) bool { return m["level"] == "ERROR" && m["kind"] == "version" })
	st := trStatus(t, gw)
	trust, _ := st["trust"].(map[string]any)
	if probs, _ := json.Marshal(trust["problems"]); !strings.Contains(string(probs), "declares pre-8.0") {
		t.Errorf("/status trust problems: %s", probs)
	}
}

func TestTrustWatchAndForwardedChecks(t *testing.T) {
	central, east, regenerated, stranger := trNewPKI(t, "central"), trNewPKI(t, "east"), trNewPKI(t, "east-regenerated"), trNewPKI(t, "stranger")
	const (
		good = "SEP001122334455.cnf.xml.sgn"
		bad  = "SEP001122334466.cnf.xml.sgn"
	)
	goodBytes := east.sign(t, good, []byte("<device>signed by east</device>"))
	badBytes := stranger.sign(t, bad, []byte("<device>signed by a stranger</device>"))
	eastRoot := trRoot(t, map[string][]byte{"ITLFile.tlv": east.itl(t, false), good: goodBytes, bad: badBytes})
	e := tftptest.StartTFTPD(t, eastRoot)
	cfg := trConfig(trRoot(t, map[string][]byte{"ITLFile.tlv": central.itl(t, false)}), []trSub{{"east", "auto", e}},
		"trust: {probe_interval: 1s}\n")
	gw := startGateway(t, cfg)

	// A .sgn signed by a stranger: served (the phone decides), counted, logged with the reason.
	b, err := trGet(t, gw, bad)
	if err != nil || !bytes.Equal(b, badBytes) {
		t.Fatalf("the stranger's file: %d bytes, %v", len(b), err)
	}
	rec := gw.waitLine("trust: forwarded file a phone would reject (Trust List Verification Failed)", func(m map[string]any) bool { return m["file"] == bad })
	if reason, _ := rec["reason"].(string); !strings.Contains(reason, "cucm-stranger.example.com") || rec["subcluster"] != "east" {
		t.Errorf("log line: %v", rec)
	}
	if v := gw.metric(`ctftp_trust_forwarded_rejected_total{subcluster="east"}`); v != 1 {
		t.Errorf("rejected files counted: %v", v)
	}
	// One signed by the cluster's own CallManager passes.
	if b, err := trGet(t, gw, good); err != nil || !bytes.Equal(b, goodBytes) {
		t.Fatalf("east's own file: %d bytes, %v", len(b), err)
	}
	if v := gw.metric(`ctftp_trust_forwarded_checked_total{subcluster="east"}`); v != 2 {
		t.Errorf("checked files: %v, want 2", v)
	}
	cache := func() float64 {
		c, _ := trStatus(t, gw)["cache"].(map[string]any)
		n, _ := c["Entries"].(float64)
		return n
	}
	if n := cache(); n != 2 {
		t.Fatalf("%v files cached, want 2", n)
	}

	// Certificates regenerated on east: a new ITL signer between two probes.
	trWrite(t, eastRoot, "ITLFile.tlv", regenerated.itl(t, false))
	rec = gw.waitLine("trust: ITL signer changed", func(m map[string]any) bool { return m["subcluster"] == "east" })
	if old, _ := rec["old"].(string); !strings.Contains(old, "ITLRecovery_east ") {
		t.Errorf("old signer in %v", rec)
	}
	if nw, _ := rec["new"].(string); !strings.Contains(nw, "ITLRecovery_east-regenerated") {
		t.Errorf("new signer in %v", rec)
	}
	if v := gw.metric(`ctftp_trust_signer_changes_total{subcluster="east"}`); v != 1 {
		t.Errorf("signer changes counted: %v", v)
	}
	if n := cache(); n != 0 {
		t.Errorf("%v cache entries of east left after its signer changed", n)
	}
	code, body := trReady(t, gw)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `subcluster "east": ITL signer changed`) {
		t.Errorf("/readyz %d: %s", code, body)
	}
	// on_change warn (the default): still forwarded, now checked against the new ITL.
	if b, err := trGet(t, gw, good); err != nil || !bytes.Equal(b, goodBytes) {
		t.Errorf("after the change: %d bytes, %v", len(b), err)
	}
}

func TestTrustValidateOfflineAndKeys(t *testing.T) {
	central := trNewPKI(t, "central")
	withITL := trRoot(t, map[string][]byte{"ITLFile.tlv": central.itl(t, false)})
	without := trRoot(t, nil)
	// 127.0.0.1:9 (discard): --offline must not send it anything, and
	// nothing answers there anyway.
	tests := []struct {
		name   string
		cfg    string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{
			name: "a real root ITL with a declared pre-8.0 cluster is mixed without probing",
			cfg:  trConfig(withITL, []trSub{{"west", "7.1", "127.0.0.1:9"}}, ""),
			args: []string{"--offline"}, code: 2,
			stdout: []string{"--offline: nothing probed", "verdict: mixed", "(central)  (root)    8.x+", "west       7.1       -"},
		},
		{
			name: "declared eras mixed: only a probe can tell",
			cfg:  trConfig(without, []trSub{{"east", "12.5", "127.0.0.1:9"}, {"west", "7.1", "127.0.0.1:9"}}, ""),
			args: []string{"--offline"}, code: 0,
			stdout: []string{"verdict: undecided", "note: pre-8.0 and 8.x+ clusters are mixed; it can only run if east", "validate: ok"},
		},
		{
			name:   "a root ITL that does not verify",
			cfg:    trConfig(trRoot(t, map[string][]byte{"ITLFile.tlv": []byte("garbage")}), nil, "subclusters: []\n"),
			code:   2,
			stdout: []string{"problem: root: ITLFile.tlv does not parse or verify: itl: malformed file"},
		},
		{
			name: "trust and reload keys are checked with the rest",
			cfg:  trConfig(without, nil, "subclusters: []\ntrust: {on_change: block, probe_timeout: 0s, forwarded_policy: drop}\nreload: {poll_interval: 10ms}\n"),
			code: 2,
			stderr: []string{`config: trust.probe_timeout: must be positive`, `config: trust.on_change: "block": want "warn" or "refuse"`,
				`config: trust.forwarded_policy: "drop": want "serve" or "refuse"`, "config: reload.poll_interval: want 0 (SIGHUP only) or at least 100ms, got 10ms"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := trRun(t, append([]string{"validate", "--config", trConfigFile(t, tc.cfg)}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			trWant(t, "stdout", stdout, tc.stdout...)
			trWant(t, "stderr", stderr, tc.stderr...)
		})
	}
}
