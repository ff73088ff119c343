package routing

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
)

func wave(name, from, to, state string, devices ...string) Wave {
	return Wave{Name: name, From: from, To: to, State: state, Devices: devices}
}

func TestNewMigrationsProblems(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.txt")
	tests := []struct {
		name  string
		waves []Wave
		want  []string // one substring per problem, in order
	}{
		{"unknown sub-cluster", []Wave{wave("w1", "east", "north", WaveStaged, "0011215A1AE3")},
			[]string{`migrations[0].to: "north": unknown sub-cluster (configured: east, west, south)`}},
		{"from = to", []Wave{wave("w1", "east", "east", WaveStaged, "0011215A1AE3")},
			[]string{`migrations[0].to: "east" is also from`}},
		{"device in two waves", []Wave{
			wave("w1", "east", "west", WaveStaged, "00AABB000000-00AABB0000FF"),
			wave("w2", "east", "south", WaveStaged, "00:aa:bb:00:00:10")},
			[]string{"migrations[1].devices: 00AABB000010 is also in migrations[0] (w1)"}},
		{"range backwards", []Wave{wave("w1", "east", "west", WaveStaged, "00AABB0000FF-00AABB000000")},
			[]string{`migrations[0].devices[0]: range "00AABB0000FF-00AABB000000": 00AABB0000FF comes after 00AABB000000`}},
		{"range too large", []Wave{wave("w1", "east", "west", WaveStaged, "000000000000-0000FFFFFFFF")},
			[]string{`migrations[0].devices[0]: range "000000000000-0000FFFFFFFF": 4294967296 devices; a range holds at most 65536`}},
		{"range with a short end", []Wave{wave("w1", "east", "west", WaveStaged, "00AABB000000-00AABB")},
			[]string{`migrations[0].devices[0]: range "00AABB000000-00AABB": last MAC: "00AABB": fewer than 12 hex digits`}},
		{"bad MAC", []Wave{wave("w1", "east", "west", WaveStaged, "0011215A1AE3", "00112g")},
			[]string{`migrations[0].devices[1]: "00112g": 'g': not a hex digit`}},
		{"bad state, trust, cutover_at", []Wave{{Name: "w1", From: "east", To: "west", Devices: []string{"0011215A1AE3"}, State: "done", Trust: "trusted", CutoverAt: "tomorrow"}},
			[]string{`migrations[0].state: "done": want staged, cutover or rolled_back`, `migrations[0].trust: "trusted": want check or imported`, `migrations[0].cutover_at: "tomorrow": want an RFC 3339 time`}},
		{"missing everything", []Wave{{}},
			[]string{"migrations[0].name: missing", "migrations[0].from: missing", "migrations[0].to: missing", "migrations[0].state: missing"}},
		{"no devices", []Wave{wave("w1", "east", "west", WaveStaged)},
			[]string{"migrations[0].devices: the wave has no devices"}},
		{"duplicate name, bad name", []Wave{wave("w1", "east", "west", WaveStaged, "0011215A1AE3"), wave("w1", "west", "east", WaveStaged, "0011215A1AE4"), wave("w 3", "west", "east", WaveStaged, "0011215A1AE5")},
			[]string{`migrations[1].name: "w1" is also the name of migrations[0]`, `migrations[2].name: "w 3": use letters`}},
		{"device file missing", []Wave{{Name: "w1", From: "east", To: "west", State: WaveStaged, DeviceFile: missing}},
			[]string{"migrations[0].device_file: open " + missing}},
		{"device file with a bad line", []Wave{{Name: "w1", From: "east", To: "west", State: WaveStaged, DeviceFile: "testdata/bad-devices.txt"}},
			[]string{"migrations[0].device_file: testdata/bad-devices.txt:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewMigrations(tc.waves, testSubclusters, Options{})
			if err == nil {
				t.Fatal("accepted")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) < len(tc.want) {
				t.Fatalf("problems %q, want %d", lines, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestNewMigrationsDevices(t *testing.T) {
	m, err := NewMigrations([]Wave{
		{Name: "w1", From: "east", To: "west", State: WaveStaged, Devices: []string{"00AABB0000FE-00AABB000101", "00-11-21-5a-1a-e3"}, DeviceFile: "testdata/devices.txt"},
		{Name: "w2", From: "west", To: "east", State: WaveCutover, Trust: WaveTrustImported, Devices: []string{"001121000000"}},
	}, testSubclusters, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := m.Wave("w1")
	want := []string{"0011215A1AE3", "00AABB0000FE", "00AABB0000FF", "00AABB000100", "00AABB000101", "00AABBCCDD01", "00AABBCCDD02", "00AABBCCDD03", "00AABBCCDD04"}
	if strings.Join(w.Devices, " ") != strings.Join(want, " ") {
		t.Errorf("devices %v, want %v", w.Devices, want)
	}
	if m.Lookup("00AABBCCDD03") != w || m.Lookup("001121000000") != m.Wave("w2") || m.Lookup("001121000001") != nil {
		t.Error("Lookup")
	}
	if w.Imported || !m.Wave("w2").Imported {
		t.Error("trust")
	}
}

func TestParseMACRange(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi uint64
	}{
		{"0011215A1AE3", 0x0011215A1AE3, 0x0011215A1AE3},
		{"00-11-21-5A-1A-E3", 0x0011215A1AE3, 0x0011215A1AE3},
		{"AABBCC000000-AABBCC0000FF", 0xAABBCC000000, 0xAABBCC0000FF},
		{"aa:bb:cc:00:00:00-aa:bb:cc:00:ff:ff", 0xAABBCC000000, 0xAABBCC00FFFF},
		{"FFFFFFFFFFFF-FFFFFFFFFFFF", 0xFFFFFFFFFFFF, 0xFFFFFFFFFFFF},
	} {
		lo, hi, err := ParseMACRange(tc.in)
		if err != nil || lo != tc.lo || hi != tc.hi {
			t.Errorf("ParseMACRange(%q) = %X, %X, %v", tc.in, lo, hi, err)
		}
	}
	for _, in := range []string{"", "-", "AABBCC000000-", "-AABBCC000000", "AABBCC000000--AABBCC000001", "AABBCC000001-AABBCC000000", "AABBCC000000-AABBCD000000", "0011215A1AE"} {
		if _, _, err := ParseMACRange(in); err == nil {
			t.Errorf("ParseMACRange(%q) accepted", in)
		}
	}
}

func FuzzParseMACRange(f *testing.F) {
	for _, s := range []string{"0011215A1AE3", "AABBCC000000-AABBCC0000FF", "00-11-21-5A-1A-E3", "a-b", "FFFFFFFFFFFF-000000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lo, hi, err := ParseMACRange(s)
		if err != nil {
			return
		}
		if lo > hi || hi-lo >= maxRangeDevices || hi > 0xFFFFFFFFFFFF {
			t.Fatalf("ParseMACRange(%q) = %X, %X", s, lo, hi)
		}
	})
}

func TestMigrationOverridesRulesAndLearnedRoutes(t *testing.T) {
	clock := newFakeClock()
	cutAt := clock.Now().Add(time.Hour)
	opts := Options{Now: clock.Now, Metrics: metrics.NewSet()}
	m, err := NewMigrations([]Wave{
		wave("staged", "east", "west", WaveStaged, "0011215A1AE3"),
		wave("done", "east", "west", WaveCutover, "0011215A1AE4"),
		wave("back", "east", "west", WaveRolledBack, "0011215A1AE5"),
		{Name: "timed", From: "south", To: "west", State: WaveStaged, CutoverAt: cutAt.Format(time.RFC3339), Devices: []string{"0011215A1AE6"}},
	}, testSubclusters, opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Rules = []Rule{{MACPrefix: "001121", Subcluster: "south"}}
	opts.Migrations = m
	r := newTestRouter(t, cfg, opts)
	r.Learn("0011215A1AE4", "south")

	for _, tc := range []struct {
		mac, sc, reason string
	}{
		{"0011215A1AE3", "east", "migrations[0] wave staged (staged, east -> west): mac 0011215A1AE3 -> east (from side); overrides rules[0] (mac 0011215A1AE3 has mac_prefix 001121) -> south"},
		{"0011215A1AE4", "west", "migrations[1] wave done (cutover, east -> west): mac 0011215A1AE4 -> west (to side); overrides rules[0]"},
		{"0011215A1AE5", "east", "(rolled_back, east -> west)"},
		{"0011215A1AE6", "south", "(staged until cutover_at " + cutAt.Format(time.RFC3339) + ", south -> west)"},
		{"0011215A1AE7", "south", "rules[0]"},
	} {
		d := r.Route(ctftp.Request{Name: "SEP" + tc.mac + ".cnf.xml.sgn"})
		if d.Subclusters[0] != tc.sc || !strings.Contains(d.Reason, tc.reason) {
			t.Errorf("%s: %v %q; want %s, %q", tc.mac, d.Subclusters, d.Reason, tc.sc, tc.reason)
		}
		if (d.Kind == Migration) != (d.Wave != "") || (d.Kind == Migration) == (tc.mac == "0011215A1AE7") {
			t.Errorf("%s: kind %v wave %q", tc.mac, d.Kind, d.Wave)
		}
	}
	clock.Advance(time.Hour)
	if d := r.Route(ctftp.Request{Name: "ITLSEP0011215A1AE6.tlv"}); d.Subclusters[0] != "south" {
		t.Errorf("at cutover_at, before Run's check: %v %q", d.Subclusters, d.Reason)
	}
	checked := 0
	m.cutDue(context.Background(), clock.Now(), func(_ context.Context, w *MigrationWave) error {
		checked++
		if w.Name != "timed" {
			t.Errorf("checked %s", w.Name)
		}
		return nil
	})
	d := r.Route(ctftp.Request{Name: "ITLSEP0011215A1AE6.tlv"})
	if checked != 1 || d.Subclusters[0] != "west" || !strings.Contains(d.Reason, "(cutover (cutover_at "+cutAt.Format(time.RFC3339)+" passed)") {
		t.Errorf("after cutover_at (%d checks): %v %q", checked, d.Subclusters, d.Reason)
	}
}

// A wave whose check fails when its cutover_at comes stays staged, held,
// and says why; one whose cutover_at had passed when the configuration
// was compiled is cut over at once (the configuration's own check ran).
func TestCutoverAtHeldWhenTheCheckFails(t *testing.T) {
	var logs bytes.Buffer
	start := time.Now()
	opts := Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	m, err := NewMigrations([]Wave{
		{Name: "soon", From: "east", To: "west", State: WaveStaged, CutoverAt: start.Add(time.Second).Format(time.RFC3339), Devices: []string{"0011215A1AE3"}},
		{Name: "past", From: "east", To: "west", State: WaveStaged, CutoverAt: start.Add(-time.Hour).Format(time.RFC3339), Devices: []string{"0011215A1AE4"}},
	}, testSubclusters, opts)
	if err != nil {
		t.Fatal(err)
	}
	if m.Wave("past").InForce() != WaveCutover || m.Wave("soon").InForce() != WaveStaged {
		t.Fatalf("in force: past %s, soon %s", m.Wave("past").InForce(), m.Wave("soon").InForce())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	checked := make(chan string, 2)
	go func() {
		m.Run(ctx, func(_ context.Context, w *MigrationWave) error {
			checked <- w.Name
			return errors.New("1 broken (0011215A1AE3)")
		})
		close(done)
	}()
	if name := <-checked; name != "soon" {
		t.Errorf("checked %s", name)
	}
	deadline := time.Now().Add(10 * time.Second)
	for m.Wave("soon").Held() == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	w := m.Wave("soon")
	if w.InForce() != WaveStaged || w.Held() != "1 broken (0011215A1AE3)" {
		t.Errorf("held wave: in force %s, held %q", w.InForce(), w.Held())
	}
	if sc, side := w.Side(); sc != "east" || side != "from" {
		t.Errorf("held wave served from %s (%s)", sc, side)
	}
	if !strings.Contains(logs.String(), "cutover_at reached, but the wave would break phones now") {
		t.Errorf("log:\n%s", logs.String())
	}
	if len(checked) != 0 {
		t.Errorf("checked again: %s", <-checked)
	}
}

func TestMigrationForwarding(t *testing.T) {
	set := metrics.NewSet()
	var logs bytes.Buffer
	opts := Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: set}
	m, err := NewMigrations([]Wave{wave("w1", "east", "west", WaveCutover, "0011215A1AE3")}, testSubclusters, opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Migrations = m
	r := newTestRouter(t, DefaultConfig(), opts)
	next := newFakeNext(map[string]answerSpec{"east": found(0), "west": found(0), "south": found(0)})
	src := NewForwarder(r, next, opts)
	for _, name := range []string{"ITLSEP0011215A1AE3.tlv", "SEP0011215A1AE3.cnf.xml.sgn", "SEP0011215A1AE3.cnf.xml.sgn"} {
		f, err := src.Open(context.Background(), ctftp.Request{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if got := servedBy(t, f, name); got != "west" {
			t.Errorf("%s served by %s", name, got)
		}
	}
	if calls := next.takeCalls(); strings.Join(calls, ",") != "west,west,west" {
		t.Errorf("asked %v: a wave's device is never fanned out", calls)
	}
	w := m.Wave("w1")
	if w.Files("to") != 3 || w.Files("from") != 0 || w.Seen() != 1 {
		t.Errorf("files to %d from %d, seen %d", w.Files("to"), w.Files("from"), w.Seen())
	}
	if n := strings.Count(logs.String(), "first request after cutover"); n != 1 {
		t.Errorf("%d first-request lines:\n%s", n, logs.String())
	}
	if got := set.GetOrCreateCounter(`ctftp_routing_decisions_total{kind="migration"}`).Get(); got != 3 {
		t.Errorf("migration decisions %d", got)
	}

	// The route is learned, so the phone stays on west once the wave is
	// removed from the configuration.
	if l, ok := r.learned.lookup("0011215A1AE3", r.now()); !ok || l.subcluster != "west" {
		t.Errorf("learned %+v %v: the migration's answer was not learned", l, ok)
	}

	// Inherit keeps the phones seen across a reload that keeps the wave
	// cut over; Run publishes the gauges.
	opts.Migrations = nil
	m2, err := NewMigrations([]Wave{wave("w1", "east", "west", WaveCutover, "0011215A1AE3", "0011215A1AE4")}, testSubclusters, opts)
	if err != nil {
		t.Fatal(err)
	}
	m2.Inherit(m)
	if m2.Wave("w1").Seen() != 1 {
		t.Errorf("inherited seen %d", m2.Wave("w1").Seen())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m2.Run(ctx, nil); close(done) }()
	cancel()
	<-done
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for _, s := range []string{`ctftp_migration_devices{wave="w1",state="cutover"} 2`, `ctftp_migration_devices{wave="w1",state="staged"} 0`, `ctftp_migration_phones_seen{wave="w1"} 1`, `ctftp_migration_files_total{wave="w1",side="to"} 3`} {
		if !strings.Contains(b.String(), s+"\n") {
			t.Errorf("metrics lack %s:\n%s", s, b.String())
		}
	}
}

// A wave's device_file is read by the routing device-file reader, so it
// takes every format rules take.
func TestMigrationDeviceFileFormats(t *testing.T) {
	p := filepath.Join(t.TempDir(), "wave.txt")
	if err := os.WriteFile(p, []byte("# wave 1\n00:11:21:5a:1a:e3\n0011.215a.1ae4 # desk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := NewMigrations([]Wave{{Name: "w", From: "east", To: "west", State: WaveStaged, DeviceFile: p}}, testSubclusters, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Wave("w").Devices, " "); got != "0011215A1AE3 0011215A1AE4" {
		t.Errorf("devices %s", got)
	}
}

// A wave's phone is prefetched for on its wave's side, not where the
// rules would send it.
func TestMigrationPrefetchesIntoItsSide(t *testing.T) {
	const mac = "0011215A1AE3"
	opts := Options{Logger: slog.New(slog.DiscardHandler), Metrics: metrics.NewSet()}
	m, err := NewMigrations([]Wave{wave("w1", "east", "west", WaveCutover, mac)}, testSubclusters, opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Rules = []Rule{{MAC: []string{mac}, Subcluster: "east"}}
	opts.Migrations = m
	next := &prefetchingNext{fakeNext: newFakeNext(map[string]answerSpec{"east": found(0), "west": found(0), "south": found(0)})}
	src := NewForwarder(newTestRouter(t, cfg, opts), next, opts)
	f, err := src.Open(t.Context(), ctftp.Request{Name: "CTLSEP" + mac + ".tlv", Mode: "octet"})
	if err != nil {
		t.Fatal(err)
	}
	f.Body.Close()
	if got, want := next.take(), []string{"west ITLSEP" + mac + ".tlv", "west SEP" + mac + ".cnf.xml.sgn"}; !slices.Equal(got, want) {
		t.Errorf("prefetched %q, want %q", got, want)
	}
}
