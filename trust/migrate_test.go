package trust

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/internal/tftptest"
	"github.com/ctftp/ctftp/itl"
)

// migrationPKI is two clusters' keys: A (east) with a TVS, B (west).
type migrationPKI struct {
	a, b pki
	tvsA *itl.Signer
}

func newMigrationPKI(t *testing.T) migrationPKI {
	t.Helper()
	tvs, err := itl.NewSigner("tvs-east", 1024)
	if err != nil {
		t.Fatal(err)
	}
	return migrationPKI{a: newPKI(t, "east"), b: newPKI(t, "west"), tvsA: tvs}
}

// buildITL signs an ITL with signer holding a CCM+TFTP record for ccm and,
// when tvs is set, a TVS record (hash only, as CUCM writes it).
func buildITL(t testing.TB, signer, ccm, tvs *itl.Signer) []byte {
	t.Helper()
	recs := []itl.RecordSpec{{Role: itl.RoleCCMTFTP, Cert: ccm.Cert}}
	if tvs != nil {
		recs = append(recs, itl.RecordSpec{Role: itl.RoleTVS, Cert: tvs.Cert, HashOnly: true})
	}
	b, err := itl.Build(itl.BuildOptions{Signer: signer, Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// twoClusters serves east's and west's files from in-process TFTP servers
// behind a real cluster.Set.
func twoClusters(t *testing.T, east, west map[string][]byte) *cluster.Set {
	t.Helper()
	e, w := tftptest.NewServer(t, east), tftptest.NewServer(t, west)
	return newSet(t, map[string]string{"east": e.Addr(), "west": w.Addr()})
}

func newSet(t testing.TB, backends map[string]string) *cluster.Set {
	t.Helper()
	cfg := cluster.DefaultConfig()
	cfg.Backend.Timeout = 200 * time.Millisecond
	cfg.Backend.Retries = 1
	cfg.Backend.ProbeInterval = 0
	for _, name := range []string{"east", "west"} {
		cfg.Subclusters = append(cfg.Subclusters, cluster.SubclusterConfig{Name: name, Version: VersionAuto, Backends: []string{backends[name]}})
	}
	set, err := cluster.New(cfg, cluster.Options{Metrics: metrics.NewSet()})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func cnf(mac string) string { return "SEP" + mac + ".cnf.xml.sgn" }
func itlsep(mac string) string {
	return "ITLSEP" + mac + ".tlv"
}

// The devices of the wave, one per case.
const (
	macSafe      = "00AABB000001" // B's ITL signed by A's SAST, B's config by B's CallManager
	macTVS       = "00AABB000002" // B's ITL signed by B's SAST; A's ITL lists a TVS
	macBroken    = "00AABB000003" // as macTVS, but the phone's ITL (A's ITLSEP) lists no TVS
	macUnprov    = "00AABB000004" // B has nothing for it
	macFallback  = "00AABB000005" // A has no ITLSEP: the phone holds A's ITLFile.tlv
	macBadConfig = "00AABB000006" // B's ITL fine, B's config signed by a stranger
	macRollback  = "00AABB000007" // A's ITLSEP is blank (rollback): anything goes
)

func migrationWorld(t *testing.T) (*cluster.Set, migrationPKI) {
	set, p, _ := migrationServers(t)
	return set, p
}

// migrationServers is migrationWorld with west's server, to change its
// files.
func migrationServers(t *testing.T) (*cluster.Set, migrationPKI, *tftptest.Server) {
	t.Helper()
	p := newMigrationPKI(t)
	stranger := newPKI(t, "stranger")
	itlA := buildITL(t, p.a.sast, p.a.ccm, p.tvsA)
	itlANoTVS := buildITL(t, p.a.sast, p.a.ccm, nil)
	itlBByA := buildITL(t, p.a.sast, p.b.ccm, nil) // B's records, signed by a certificate A's ITL holds
	itlBOwn := buildITL(t, p.b.sast, p.b.ccm, nil)
	blankA, err := itl.Build(itl.BuildOptions{Signer: p.a.sast, Records: []itl.RecordSpec{{Role: itl.RoleCCMTFTP, Cert: p.a.ccm.Cert}}, Blank: true})
	if err != nil {
		t.Fatal(err)
	}
	east := map[string][]byte{
		ITLFileName:          itlA,
		itlsep(macSafe):      itlA,
		itlsep(macTVS):       itlA,
		itlsep(macBroken):    itlANoTVS,
		itlsep(macUnprov):    itlA,
		itlsep(macBadConfig): itlA,
		itlsep(macRollback):  blankA,
	}
	west := map[string][]byte{ITLFileName: itlBOwn}
	for mac, b := range map[string][]byte{macSafe: itlBByA, macTVS: itlBOwn, macBroken: itlBOwn, macFallback: itlBByA, macBadConfig: itlBByA, macRollback: itlBOwn} {
		west[itlsep(mac)] = b
		west[cnf(mac)] = p.b.sign(t, cnf(mac), []byte("<device>"+mac+"</device>"))
	}
	west[cnf(macBadConfig)] = stranger.sign(t, cnf(macBadConfig), []byte("<device/>"))
	e, w := tftptest.NewServer(t, east), tftptest.NewServer(t, west)
	return newSet(t, map[string]string{"east": e.Addr(), "west": w.Addr()}), p, w
}

func check(t *testing.T, set Fetcher, w WaveSpec) WaveVerdict {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return CheckWave(ctx, set, w, CheckOptions{Workers: 3})
}

func TestCheckWaveOutcomes(t *testing.T) {
	set, _ := migrationWorld(t)
	all := []string{macSafe, macTVS, macBroken, macUnprov, macFallback, macBadConfig, macRollback}
	want := map[string]struct {
		outcome           Outcome
		blocking, imports bool // blocking with check; with imported
		reason            string
	}{
		macSafe:      {OutcomeOK, false, false, "trusted through the phone's ITL chain"},
		macTVS:       {OutcomeTVS, true, false, "asks the TVS"},
		macBroken:    {OutcomeBroken, true, true, "no TVS is listed"},
		macUnprov:    {OutcomeUnprovisioned, true, true, "west has no files for 00AABB000004"},
		macFallback:  {OutcomeOK, false, false, "trusted"},
		macBadConfig: {OutcomeBroken, true, true, cnf(macBadConfig)},
		macRollback:  {OutcomeOK, false, false, "blank one"},
	}
	for _, imported := range []bool{false, true} {
		v := check(t, set, WaveSpec{Name: "wave-1", From: "east", To: "west", Devices: all, Imported: imported})
		if len(v.Devices) != len(all) {
			t.Fatalf("%d verdicts for %d devices", len(v.Devices), len(all))
		}
		for _, d := range v.Devices {
			w := want[d.MAC]
			blocking := w.blocking
			if imported {
				blocking = w.imports
			}
			if d.Outcome != w.outcome || d.Blocking != blocking || !strings.Contains(d.Reason, w.reason) {
				t.Errorf("imported=%v %s: %s blocking=%v %q; want %s blocking=%v containing %q", imported, d.MAC, d.Outcome, d.Blocking, d.Reason, w.outcome, blocking, w.reason)
			}
			if d.Blocking && len(d.WaysOut) == 0 {
				t.Errorf("%s blocks with no way out", d.MAC)
			}
		}
		if got := v.Devices[4].Holds; !strings.Contains(got, "ITLFile.tlv of east") {
			t.Errorf("fallback device holds %q", got)
		}
		wantBlocking := 4
		if imported {
			wantBlocking = 3
		}
		if v.Blocking() != wantBlocking {
			t.Errorf("imported=%v: %d blocking, want %d", imported, v.Blocking(), wantBlocking)
		}
	}
}

func TestCheckWaveWaysOut(t *testing.T) {
	set, _ := migrationWorld(t)
	v := check(t, set, WaveSpec{Name: "wave-1", From: "east", To: "west", Devices: []string{macTVS, macBroken}})
	var b bytes.Buffer
	v.WriteDetail(&b)
	out := b.String()
	for _, s := range []string{"Bulk Certificate Management", "Prepare Cluster for Rollback to pre 8.0", "delete the ITL on each phone", "ways out for tvs devices", "ways out for broken devices"} {
		if !strings.Contains(out, s) {
			t.Errorf("detail lacks %q:\n%s", s, out)
		}
	}
	ref := v.Refusal()
	if !strings.Contains(ref, `wave "wave-1"`) || !strings.Contains(ref, "1 tvs (00AABB000002)") || !strings.Contains(ref, "1 broken (00AABB000003)") {
		t.Errorf("refusal: %s", ref)
	}
	b.Reset()
	if err := WriteSummary(&b, []WaveVerdict{v}); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(b.String()), "\n"); len(lines) != 2 || !strings.Contains(lines[0], "BLOCKING") || !strings.HasPrefix(lines[1], "wave-1") {
		t.Errorf("summary:\n%s", b.String())
	}
	js, err := json.Marshal(v)
	if err != nil || !bytes.Contains(js, []byte(`"outcome":"tvs"`)) || !bytes.Contains(js, []byte(`"ways_out"`)) {
		t.Errorf("json %s, %v", js, err)
	}
}

func TestCheckWavePre8(t *testing.T) {
	const mac = "0011215A1AE3"
	set := twoClusters(t,
		map[string][]byte{"SEP" + mac + ".cnf.xml": []byte("<device>east</device>")},
		map[string][]byte{"SEP" + mac + ".cnf.xml": []byte("<device>west</device>")})
	v := check(t, set, WaveSpec{Name: "old", From: "east", To: "west", Devices: []string{mac}})
	if d := v.Devices[0]; d.Outcome != OutcomePre8 || d.Blocking {
		t.Errorf("pre-8 pair: %+v", d)
	}
}

// A phone holding an ITL asks only for signed configs: a pre-8.0 B
// serving unsigned ones strands it.
func TestCheckWaveUnsignedOnlyBreaksITLPhone(t *testing.T) {
	const mac = "0011215A1AE3"
	p := newMigrationPKI(t)
	set := twoClusters(t,
		map[string][]byte{ITLFileName: buildITL(t, p.a.sast, p.a.ccm, p.tvsA)},
		map[string][]byte{"SEP" + mac + ".cnf.xml": []byte("<device/>")})
	v := check(t, set, WaveSpec{Name: "down", From: "east", To: "west", Devices: []string{mac}})
	if d := v.Devices[0]; d.Outcome != OutcomeBroken || !strings.Contains(d.Reason, "asks only for signed") {
		t.Errorf("unsigned-only B: %+v", d)
	}
}

// A sub-cluster that does not answer gives "error", blocking, never "ok"
// nor "unprovisioned".
func TestCheckWaveUnreachable(t *testing.T) {
	p := newMigrationPKI(t)
	e := tftptest.NewServer(t, map[string][]byte{ITLFileName: buildITL(t, p.a.sast, p.a.ccm, nil)})
	// A bound UDP socket that never answers stands for a dead backend.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	set := newSet(t, map[string]string{"east": e.Addr(), "west": dead.LocalAddr().String()})
	var mu sync.Mutex
	var calls []int
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v := CheckWave(ctx, set, WaveSpec{Name: "w", From: "east", To: "west", Devices: []string{macSafe, macTVS}}, CheckOptions{
		Progress: func(done, total int) {
			mu.Lock()
			calls = append(calls, done*100+total)
			mu.Unlock()
		},
	})
	for _, d := range v.Devices {
		if d.Outcome != OutcomeError || !d.Blocking || !strings.Contains(d.Reason, `subcluster "west"`) {
			t.Errorf("%s: %+v", d.MAC, d)
		}
	}
	if v.Errors() != 2 || len(calls) != 2 || calls[1] != 202 {
		t.Errorf("errors %d, progress %v", v.Errors(), calls)
	}
}

// The wave guard judges what a moved phone is served from B against the
// ITL it holds: a config B re-signed with a stranger's key after the
// check is counted and logged; files from A, and files of other phones,
// are left alone.
func TestWaveGuardCountsWhatAPhoneWouldReject(t *testing.T) {
	set, _, west := migrationServers(t)
	v := check(t, set, WaveSpec{Name: "wave-1", From: "east", To: "west", Devices: []string{macSafe, macTVS}, Imported: true})
	if v.Blocking() != 0 {
		t.Fatalf("the wave must pass: %+v", v.Devices)
	}
	ms := metrics.NewSet()
	sink := &logSink{}
	g := NewWaveGuard(set, []WaveVerdict{v}, slog.New(slog.NewJSONHandler(sink, nil)), ms)
	get := func(sc, name string) {
		t.Helper()
		f, err := g.Open(context.Background(), ctftp.Request{Name: name, Subcluster: sc, Mode: "octet"})
		if err != nil {
			t.Fatalf("%s %s: %v", sc, name, err)
		}
		b, _ := io.ReadAll(f.Body)
		f.Body.Close()
		if len(b) == 0 {
			t.Fatalf("%s %s: empty body after the check", sc, name)
		}
	}
	for _, name := range []string{itlsep(macSafe), cnf(macSafe), itlsep(macTVS), cnf(macTVS)} {
		get("west", name)
	}
	if n := g.Rejected("wave-1"); n != 0 {
		t.Fatalf("%d rejected before any change", n)
	}
	stranger := newPKI(t, "stranger")
	west.SetFile(cnf(macSafe), stranger.sign(t, cnf(macSafe), []byte("<device/>")))
	get("west", cnf(macSafe))
	get("east", itlsep(macSafe)) // from A: the phone's old side, not judged here
	if n := g.Rejected("wave-1"); n != 1 {
		t.Errorf("rejected %d, want 1", n)
	}
	if got := metricValue(t, ms, `ctftp_migration_rejected_total{wave="wave-1"}`); got != "1" {
		t.Errorf("metric %q", got)
	}
	recs := sink.records(t, "migration: a phone of the wave is served a file it would reject (Trust List Verification Failed)")
	if len(recs) != 1 || recs[0]["mac"] != macSafe || recs[0]["file"] != cnf(macSafe) {
		t.Errorf("log: %v", recs)
	}
}

// BenchmarkCheckWave checks a wave of 256 safe devices against two real
// in.tftpd sub-clusters on loopback (four fetches per device) and reports
// devices checked per second: what a reload that cuts a wave over adds.
func BenchmarkCheckWave(b *testing.B) {
	const n = 256
	p := migrationPKI{a: newPKI(b, "east"), b: newPKI(b, "west")}
	tvs, err := itl.NewSigner("tvs-east", 1024)
	if err != nil {
		b.Fatal(err)
	}
	itlA := buildITL(b, p.a.sast, p.a.ccm, tvs)
	itlBByA := buildITL(b, p.a.sast, p.b.ccm, nil)
	east, west := map[string][]byte{ITLFileName: itlA}, map[string][]byte{}
	var macs []string
	for i := range n {
		mac := fmt.Sprintf("00AABB%06X", i)
		macs = append(macs, mac)
		east[itlsep(mac)] = itlA
		west[itlsep(mac)] = itlBByA
		west[cnf(mac)] = p.b.sign(b, cnf(mac), []byte("<device>"+mac+"</device>"))
	}
	set := newSet(b, map[string]string{"east": tftptest.StartTFTPD(b, writeTree(b, east)), "west": tftptest.StartTFTPD(b, writeTree(b, west))})
	w := WaveSpec{Name: "bench", From: "east", To: "west", Devices: macs}
	ctx := context.Background()
	for b.Loop() {
		if v := CheckWave(ctx, set, w, CheckOptions{}); v.Blocking() != 0 {
			b.Fatalf("%d blocking: %+v", v.Blocking(), v.Devices[0])
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "devices/s")
}

// writeTree writes files into a new directory tftpd-hpa can serve.
func writeTree(tb testing.TB, files map[string][]byte) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}
