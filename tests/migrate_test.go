package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftptest"
	"github.com/ctftp/ctftp/itl"
)

// Migration waves end to end: real in.tftpd sub-clusters whose ITLs and
// signed configs are built with `ctftp itl build` and `ctftp itl sign`,
// checked by `ctftp migrate check` and validate, moved by reloads of a
// running gateway.

// migPKI writes PEM files (certificate and key) of new signers into a
// directory, for `ctftp itl`.
type migPKI struct {
	t   *testing.T
	dir string
}

func (p migPKI) signer(cn string) string {
	p.t.Helper()
	s, err := itl.NewSigner(cn, 1024)
	if err != nil {
		p.t.Fatal(err)
	}
	b, err := s.PEM()
	if err != nil {
		p.t.Fatal(err)
	}
	path := filepath.Join(p.dir, cn+".pem")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// itl runs `ctftp itl build` and returns the file's bytes.
func (p migPKI) itl(name, signer string, records ...string) []byte {
	p.t.Helper()
	out := filepath.Join(p.t.TempDir(), name)
	args := []string{"itl", "build", "--signer", signer, "--name", name, "-o", out}
	for _, r := range records {
		args = append(args, "--record", r)
	}
	return p.run(out, args...)
}

// sign runs `ctftp itl sign` on payload and returns the .sgn's bytes.
func (p migPKI) sign(name, signer string, payload []byte) []byte {
	p.t.Helper()
	dir := p.t.TempDir()
	in := filepath.Join(dir, strings.TrimSuffix(name, ".sgn"))
	if err := os.WriteFile(in, payload, 0o644); err != nil {
		p.t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	return p.run(out, "itl", "sign", "--signer", signer, in, "-o", out)
}

func (p migPKI) run(out string, args ...string) []byte {
	p.t.Helper()
	stdout, stderr, code := trRun(p.t, args...)
	if code != 0 {
		p.t.Fatalf("ctftp %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

// The devices of the 8.x world, by wave.
const (
	migSafe1  = "00AABB000001" // B's ITL signed by A's SAST (which A's ITL holds): ok
	migSafe2  = "00AABB000002"
	migTVS    = "00AABB000003" // B's ITL signed by B's SAST; A's ITL lists a TVS: tvs
	migBroken = "00AABB000004" // as migTVS, but the phone's ITL (A's ITLSEP) lists no TVS: broken
	migUnprov = "00AABB000005" // B has nothing for it: unprovisioned
)

func migCnf(mac string) string { return "SEP" + mac + ".cnf.xml.sgn" }

// migConfigPayload is a phone's config from one side, large enough (about
// 40 blocks of 512) that a transfer can be held in flight across reloads.
func migConfigPayload(side, mac string) []byte {
	return []byte(fmt.Sprintf("<device><side>%s</side><mac>%s</mac><pad>%s</pad></device>", side, mac, strings.Repeat("x", 20_000)))
}

// migWorld is east (A) and west (B), both CUCM 8.x+, behind a gateway
// root with its own ITL.
type migWorld struct {
	east, west, root string
	files            map[string][]byte // "east/NAME" and "west/NAME": what each side serves
}

func newMigWorld(t *testing.T) migWorld {
	t.Helper()
	p := migPKI{t: t, dir: t.TempDir()}
	sastA, ccmA, tvsA := p.signer("ITLRecovery_east"), p.signer("cucm-east.example.com"), p.signer("tvs-east.example.com")
	sastB, ccmB := p.signer("ITLRecovery_west"), p.signer("cucm-west.example.com")
	sastC, ccmC := p.signer("ITLRecovery_central"), p.signer("cucm-central.example.com")

	east := map[string][]byte{"ITLFile.tlv": p.itl("ITLFile.tlv", sastA, "ccm+tftp="+ccmA, "tvs="+tvsA+":hash")}
	west := map[string][]byte{"ITLFile.tlv": p.itl("ITLFile.tlv", sastB, "ccm+tftp="+ccmB)}
	for _, mac := range []string{migSafe1, migSafe2, migTVS, migBroken, migUnprov} {
		name := "ITLSEP" + mac + ".tlv"
		if mac == migBroken {
			east[name] = p.itl(name, sastA, "ccm+tftp="+ccmA)
		} else {
			east[name] = p.itl(name, sastA, "ccm+tftp="+ccmA, "tvs="+tvsA+":hash")
		}
		east[migCnf(mac)] = p.sign(migCnf(mac), ccmA, migConfigPayload("east", mac))
		switch mac {
		case migSafe1, migSafe2:
			west[name] = p.itl(name, sastA, "ccm+tftp="+ccmB)
		case migTVS, migBroken:
			west[name] = p.itl(name, sastB, "ccm+tftp="+ccmB)
		default:
			continue
		}
		west[migCnf(mac)] = p.sign(migCnf(mac), ccmB, migConfigPayload("west", mac))
	}
	w := migWorld{files: map[string][]byte{}}
	for n, b := range east {
		w.files["east/"+n] = b
	}
	for n, b := range west {
		w.files["west/"+n] = b
	}
	w.east = tftptest.StartTFTPD(t, trRoot(t, east))
	w.west = tftptest.StartTFTPD(t, trRoot(t, west))
	w.root = trRoot(t, map[string][]byte{"ITLFile.tlv": p.itl("ITLFile.tlv", sastC, "ccm+tftp="+ccmC)})
	return w
}

// config is the gateway's config with a rule sending every 00AABB phone
// to west (the waves override it) and the given waves.
func (w migWorld) config(waves string) string {
	return trConfig(w.root, []trSub{{"east", "auto", w.east}, {"west", "auto", w.west}},
		"tftp: {timeout: 5s}\nreload: {poll_interval: 200ms}\n"+
			"routing:\n  rules:\n    - {mac_prefix: \"00AABB\", subcluster: west}\n"+
			"migrations:\n"+waves)
}

func migWave(name, devices, state, extra string) string {
	return fmt.Sprintf("  - {name: %s, from: east, to: west, devices: [%q], state: %s%s}\n", name, devices, state, extra)
}

func (w migWorld) allWaves(safe, tvs, broken, unprov string) string {
	return migWave("safe", migSafe1+"-"+migSafe2, safe, "") +
		migWave("tvs", migTVS, tvs, "") +
		migWave("broken", migBroken, broken, "") +
		migWave("unprov", migUnprov, unprov, "")
}

// migWaitMsg waits until more than n log lines have a msg containing s,
// and returns the last.
func migWaitMsg(t *testing.T, gw *gateway, s string, n int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if got := migMsgs(gw, s); len(got) > n {
			return got[len(got)-1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no new log line containing %q\n%s", s, gw.Log())
	return nil
}

func migMsgs(gw *gateway, s string) []map[string]any {
	gw.mu.Lock()
	defer gw.mu.Unlock()
	var out []map[string]any
	for _, m := range gw.lines {
		if msg, _ := m["msg"].(string); strings.Contains(msg, s) {
			out = append(out, m)
		}
	}
	return out
}

// migFetch fetches a phone's file through the gateway and says which
// side's bytes came back.
func migFetch(t *testing.T, gw *gateway, w migWorld, name string) string {
	t.Helper()
	b, err := trGet(t, gw, name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	switch {
	case bytes.Equal(b, w.files["east/"+name]):
		return "east"
	case bytes.Equal(b, w.files["west/"+name]):
		return "west"
	}
	t.Fatalf("%s: %d bytes from neither side", name, len(b))
	return ""
}

func TestMigrateCheckAndValidate(t *testing.T) {
	w := newMigWorld(t)
	cfg := trConfigFile(t, w.config(w.allWaves("staged", "staged", "staged", "staged")))

	stdout, stderr, code := trRun(t, "migrate", "check", "--config", cfg)
	if code != 3 {
		t.Errorf("migrate check: exit %d, want 3\n%s%s", code, stdout, stderr)
	}
	trWant(t, "migrate check", stdout,
		"WAVE", "TVS", "UNPROVISIONED", "BLOCKING",
		"wave safe (migrations[0], east -> west, state staged, trust check): all 2 devices can move",
		"wave tvs (migrations[1], east -> west, state staged, trust check): 1 of 1 devices are blocked",
		migTVS+"  tvs: ITLSEP"+migTVS+".tlv: signer", "asks the TVS listed in its ITL",
		"holds ITLSEP"+migTVS+".tlv of east",
		"ways out for tvs devices:", "Bulk Certificate Management", "Prepare Cluster for Rollback to pre 8.0", "delete the ITL on each phone",
		migBroken+"  broken:", "no TVS is listed",
		migUnprov+"  unprovisioned: west has no files for "+migUnprov, "add the device on B",
		"migrate check: some phones would break or strand (exit 3)")
	trWant(t, "migrate check's progress", stderr, "checking wave safe: 2 devices, east -> west")

	stdout, stderr, code = trRun(t, "migrate", "check", "--config", cfg, "--wave", "safe", "--json")
	if code != 0 {
		t.Errorf("migrate check --wave safe: exit %d\n%s%s", code, stdout, stderr)
	}
	var js struct {
		Waves []struct {
			Wave    string
			Counts  map[string]int
			Devices []struct{ MAC, Outcome, Holds string }
		}
		Exit int
	}
	if err := json.Unmarshal([]byte(stdout), &js); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	if len(js.Waves) != 1 || js.Waves[0].Wave != "safe" || js.Waves[0].Counts["ok"] != 2 || js.Exit != 0 || js.Waves[0].Devices[0].Outcome != "ok" {
		t.Errorf("--json: %+v", js)
	}

	// trust: imported lets the TVS-only wave through, not the broken one.
	imported := trConfigFile(t, w.config(migWave("tvs", migTVS, "staged", ", trust: imported")+migWave("broken", migBroken, "staged", ", trust: imported")))
	stdout, _, code = trRun(t, "migrate", "check", "--config", imported)
	if code != 3 || !strings.Contains(stdout, "wave tvs (migrations[0], east -> west, state staged, trust imported): all 1 devices can move") ||
		!strings.Contains(stdout, "wave broken (migrations[1], east -> west, state staged, trust imported): 1 of 1 devices are blocked") {
		t.Errorf("imported: exit %d\n%s", code, stdout)
	}

	// validate runs the same check: staged waves are notes, a cutover
	// that would break phones makes the config one that must change.
	stdout, stderr, code = trRun(t, "validate", "--config", cfg)
	if code != 0 {
		t.Errorf("validate (all staged): exit %d\n%s%s", code, stdout, stderr)
	}
	trWant(t, "validate", stdout, `note: wave "tvs" is staged; 1 of its 1 devices could not move yet`)
	cut := trConfigFile(t, w.config(w.allWaves("cutover", "staged", "cutover", "staged")))
	stdout, stderr, code = trRun(t, "validate", "--config", cut)
	if code != 2 {
		t.Errorf("validate (broken wave cut over): exit %d\n%s%s", code, stdout, stderr)
	}
	trWant(t, "validate", stdout, `problem: migrations: wave "broken" (east -> west, trust: check) would cut over while 1 of 1 devices are blocked: 1 broken (`+migBroken+`)`)
	if strings.Contains(stdout, `wave "safe" (east`) {
		t.Errorf("validate blamed the safe wave:\n%s", stdout)
	}

	// serve refuses to start on it, with the detail.
	stdout, stderr, code = trRun(t, "serve", "--config", cut)
	if code != 2 {
		t.Errorf("serve: exit %d, want 2\n%s%s", code, stdout, stderr)
	}
	trWant(t, "serve's refusal", stderr, "refusing to start: a migration wave would cut over while it would break phones",
		migBroken+"  broken:", "ways out for broken devices:")

	// ctftp route explains the override.
	stdout, _, code = trRun(t, "route", "--config", cfg, migCnf(migSafe1))
	if code != 0 {
		t.Errorf("route: exit %d", code)
	}
	trWant(t, "route", stdout, "decision  migrations[0] wave safe (staged, east -> west): mac "+migSafe1+" -> east (from side); overrides rules[0] (mac "+migSafe1+" has mac_prefix 00AABB) -> west",
		"wave      safe: east -> west, state staged, 2 devices, trust check")
}

func TestMigrationCutoverAndRollback(t *testing.T) {
	w := newMigWorld(t)
	gw := startGateway(t, w.config(w.allWaves("staged", "staged", "staged", "staged")))
	path := gw.cmd.Args[len(gw.cmd.Args)-1]
	dir, file := filepath.Dir(path), filepath.Base(path)
	reload := func(waves string) {
		t.Helper()
		trWrite(t, dir, file, []byte(w.config(waves)))
	}

	// Staged: the wave's phones stay on east although a rule says west.
	for _, name := range []string{migCnf(migSafe1), "ITLSEP" + migSafe1 + ".tlv", migCnf(migTVS)} {
		if got := migFetch(t, gw, w, name); got != "east" {
			t.Errorf("staged: %s from %s", name, got)
		}
	}
	// A transfer in flight across every reload below keeps east's bytes.
	x := rlStart(t, gw.TFTP[0], migCnf(migSafe2))
	x.blocks(2)

	// A cutover that would break phones is refused; east keeps serving.
	reload(w.allWaves("staged", "cutover", "cutover", "cutover"))
	migWaitMsg(t, gw, "config reload failed; the previous configuration keeps serving", 0)
	for _, wave := range []string{`wave "tvs"`, `wave "broken"`, `wave "unprov"`} {
		migWaitMsg(t, gw, "config reload: migrations: "+wave, 0)
	}
	x.blocks(2)
	if got := migFetch(t, gw, w, migCnf(migTVS)); got != "east" {
		t.Errorf("after the refused reload: tvs phone served from %s", got)
	}
	st := trStatus(t, gw)
	cfgSt, _ := st["config"].(map[string]any)
	if cfgSt["generation"] != 1.0 {
		t.Errorf("generation %v after a refused reload", cfgSt["generation"])
	}

	// Cutover of the safe wave, and of the TVS-only wave with trust:
	// imported, scheduled a moment ahead with cutover_at.
	at := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339)
	reload(migWave("safe", migSafe1+"-"+migSafe2, "cutover", "") +
		migWave("tvs", migTVS, "staged", fmt.Sprintf(", trust: imported, cutover_at: %q", at)) +
		migWave("broken", migBroken, "staged", "") + migWave("unprov", migUnprov, "staged", ""))
	gw.waitLine("config reloaded", func(m map[string]any) bool { return m["generation"] == 2.0 })
	x.blocks(2)
	for _, name := range []string{"ITLSEP" + migSafe1 + ".tlv", migCnf(migSafe1), migCnf(migSafe1), migCnf(migSafe2)} {
		if got := migFetch(t, gw, w, name); got != "west" {
			t.Errorf("cut over: %s from %s (the cached east file must not be served)", name, got)
		}
	}
	x.blocks(1000)
	if !bytes.Equal(x.data, w.files["east/"+migCnf(migSafe2)]) {
		t.Errorf("the transfer in flight across the reloads got %d bytes, not east's file", len(x.data))
	}
	firsts := migMsgs(gw, "migration: phone's first request after cutover")
	if len(firsts) != 2 {
		t.Errorf("%d first-request lines, want one per phone: %v", len(firsts), firsts)
	}
	if got := migFetch(t, gw, w, migCnf(migTVS)); got != "east" && !strings.Contains(gw.Log(), "cutover_at passed") {
		t.Errorf("tvs phone before cutover_at: %s", got)
	}
	migWaitMsg(t, gw, "migration: cutover_at passed", 0)
	if got := migFetch(t, gw, w, migCnf(migTVS)); got != "west" {
		t.Errorf("tvs phone after cutover_at: %s", got)
	}

	m := gw.scrape()
	for series, want := range map[string]float64{
		`ctftp_migration_devices{wave="safe",state="cutover"}`:  2,
		`ctftp_migration_devices{wave="safe",state="staged"}`:   0,
		`ctftp_migration_devices{wave="tvs",state="cutover"}`:   1,
		`ctftp_migration_devices{wave="broken",state="staged"}`: 1,
		`ctftp_migration_phones_seen{wave="safe"}`:              2,
		`ctftp_migration_files_total{wave="safe",side="to"}`:    4,
		`ctftp_migration_rejected_total{wave="safe"}`:           0,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
	var safe map[string]any
	for _, s := range trStatus(t, gw)["migrations"].([]any) {
		if s := s.(map[string]any); s["wave"] == "safe" {
			safe = s
		}
	}
	if safe["in_force"] != "cutover" || safe["phones_seen"] != 2.0 || safe["files_to"] != 4.0 || safe["devices"] != 2.0 {
		t.Errorf("/status safe wave: %v", safe)
	}

	// Rollback: back to east.
	reload(w.allWaves("rolled_back", "staged", "staged", "staged"))
	gw.waitLine("config reloaded", func(m map[string]any) bool { return m["generation"] == 3.0 })
	for _, name := range []string{"ITLSEP" + migSafe1 + ".tlv", migCnf(migSafe1)} {
		if got := migFetch(t, gw, w, name); got != "east" {
			t.Errorf("rolled back: %s from %s", name, got)
		}
	}
	if got := gw.metric(`ctftp_migration_devices{wave="safe",state="rolled_back"}`); got != 2 {
		t.Errorf("rolled_back devices %v", got)
	}
}

// Two pre-8.0 clusters: no ITL anywhere, nothing to check, the wave moves.
func TestMigratePre8Pair(t *testing.T) {
	const mac = "0011215A1AE3"
	e := tftptest.StartTFTPD(t, trRoot(t, map[string][]byte{"SEP" + mac + ".cnf.xml": []byte("<device>east</device>")}))
	w := tftptest.StartTFTPD(t, trRoot(t, map[string][]byte{"SEP" + mac + ".cnf.xml": []byte("<device>west</device>")}))
	cfg := trConfigFile(t, trConfig(trRoot(t, nil), []trSub{{"east", "7.1", e}, {"west", "7.1", w}},
		"migrations:\n  - {name: old, from: east, to: west, devices: [\""+mac+"\"], state: cutover}\n"))
	stdout, stderr, code := trRun(t, "migrate", "check", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "wave old (migrations[0], east -> west, state cutover, trust check): all 1 devices can move") {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
	var js struct {
		Waves []struct{ Counts map[string]int }
	}
	stdout, _, _ = trRun(t, "migrate", "check", "--config", cfg, "--json")
	if err := json.Unmarshal([]byte(stdout), &js); err != nil || js.Waves[0].Counts["pre8"] != 1 {
		t.Errorf("--json: %v %s", err, stdout)
	}
}

// A sub-cluster that does not answer: nothing can be said, exit 1, and
// a config cutting the wave over is refused (serve exits 2).
func TestMigrateCheckUnreachable(t *testing.T) {
	const mac = "0011215A1AE3"
	e := tftptest.StartTFTPD(t, trRoot(t, map[string][]byte{"SEP" + mac + ".cnf.xml": []byte("<device>east</device>")}))
	dead, err := net.ListenPacket("udp", "127.0.0.1:0") // bound, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	cfg := trConfigFile(t, trConfig(trRoot(t, nil), []trSub{{"east", "7.1", e}, {"west", "7.1", dead.LocalAddr().String()}},
		"migrations:\n  - {name: w, from: east, to: west, devices: [\""+mac+"\"], state: staged}\n"))
	stdout, stderr, code := trRun(t, "migrate", "check", "--config", cfg)
	if code != 1 {
		t.Errorf("exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	trWant(t, "migrate check", stdout, mac+"  error: subcluster \"west\": ", "make both sub-clusters answer", "some devices could not be checked (exit 1)")
}
