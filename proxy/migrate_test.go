package proxy

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftptest"
	"github.com/ctftp/ctftp/itl"
	"github.com/ctftp/ctftp/routing"
	"github.com/ctftp/ctftp/trust"
)

// The gateway's part of a migration: waves compiled and checked at Start
// and Reload, the refusal, the override in force, /status.
func TestGatewayMigrations(t *testing.T) {
	const mac = "0011215A1AE3"
	itlsep, cnf := "ITLSEP"+mac+".tlv", "SEP"+mac+".cnf.xml.sgn"
	central, east, west := newTrustPKI(t, "central"), newTrustPKI(t, "east"), newTrustPKI(t, "west")
	e := tftptest.NewServer(t, map[string][]byte{trust.ITLFileName: east.itl(t, false), itlsep: east.itl(t, false), cnf: east.sign(t, cnf, []byte("east"))})
	// west's ITL is signed by west's own SAST, which east's ITL does not
	// hold and east lists no TVS: a phone moving would break.
	w := tftptest.NewServer(t, map[string][]byte{trust.ITLFileName: west.itl(t, false), itlsep: west.itl(t, false), cnf: west.sign(t, cnf, []byte("west"))})
	cfg := testGatewayConfig(gatewayRoot(t, central.itl(t, false)), sub("east", e), sub("west", w))
	wave := func(state string) []routing.Wave {
		return []routing.Wave{{Name: "w1", From: "east", To: "west", Devices: []string{mac}, State: state}}
	}

	cut := cfg
	cut.Migrations = wave(routing.WaveCutover)
	_, err := tryGateway(t, cut)
	var me *MigrationError
	if !errors.As(err, &me) || len(me.Verdicts) != 1 || me.Verdicts[0].Devices[0].Outcome != trust.OutcomeBroken ||
		!strings.Contains(err.Error(), `migrations: wave "w1" (east -> west, trust: check) would cut over while 1 of 1 devices are blocked: 1 broken (`+mac+`)`) {
		t.Fatalf("Start with a breaking cutover: %v", err)
	}

	staged := cfg
	staged.Migrations = wave(routing.WaveStaged)
	tg := startGateway(t, staged)
	if _, b, err := tg.get(t, cnf); err != nil || !bytes.Contains(b, []byte("east")) {
		t.Errorf("staged: %q, %v", b, err)
	}
	res := tg.Reload(context.Background(), func() (GatewayConfig, error) { return cut, nil })
	if res.OK || len(res.Migrations) != 1 || !strings.Contains(strings.Join(res.Problems, "\n"), `wave "w1"`) {
		t.Errorf("reload to a breaking cutover: %+v", res)
	}
	if _, b, _ := tg.get(t, cnf); !bytes.Contains(b, []byte("east")) {
		t.Errorf("after the refused reload: %q", b)
	}
	st := tg.Status()
	if len(st.Migrations) != 1 || st.Migrations[0].InForce != routing.WaveStaged || st.Migrations[0].FilesFrom != 2 || st.Migrations[0].Check != nil {
		t.Errorf("/status: %+v", st.Migrations)
	}

	// Rolled back is a state like staged: served from east, nothing checked.
	back := cfg
	back.Migrations = wave(routing.WaveRolledBack)
	if res := tg.Reload(context.Background(), func() (GatewayConfig, error) { return back, nil }); !res.OK {
		t.Fatalf("reload to rolled_back: %+v", res)
	}
	if _, b, _ := tg.get(t, cnf); !bytes.Contains(b, []byte("east")) {
		t.Errorf("rolled back: %q", b)
	}
	if got := tg.Status().Migrations[0].InForce; got != routing.WaveRolledBack {
		t.Errorf("in force %s", got)
	}

	// west re-issues the phone's ITL signed by east's SAST (which the
	// phone's ITL holds): the cutover passes, and west serves the phone.
	safe, err := itl.Build(itl.BuildOptions{Signer: east.sast, Records: []itl.RecordSpec{{Role: itl.RoleCCMTFTP, Cert: west.ccm.Cert}}})
	if err != nil {
		t.Fatal(err)
	}
	w.SetFile(itlsep, safe)
	if res := tg.Reload(context.Background(), func() (GatewayConfig, error) { return cut, nil }); !res.OK {
		t.Fatalf("reload to a safe cutover: %+v", res)
	}
	for _, name := range []string{itlsep, cnf} {
		if f, _, err := tg.get(t, name); err != nil || f.Subcluster != "west" {
			t.Errorf("cut over: %s: %v from %v", name, err, f)
		}
	}
	if _, b, _ := tg.get(t, cnf); !bytes.Contains(b, []byte("west")) {
		t.Errorf("cut over: %q", b)
	}
	m := tg.Status().Migrations[0]
	if m.InForce != routing.WaveCutover || m.PhonesSeen != 1 || m.FilesTo != 3 || m.Check["ok"] != 1 || m.Rejected != 0 {
		t.Errorf("/status after cutover: %+v", m)
	}
	if got := tg.metric(t, "ctftp_cache_prefetch_issued_total"); got == "" || got == "0" {
		t.Errorf("no prefetch behind the wave guard: ctftp_cache_prefetch_issued_total %q", got)
	}
	var sec *StatusSection
	for _, x := range View(tg.Status(), time.Now()).Sections {
		if x.ID == "migrations" {
			sec = &x
		}
	}
	if sec == nil || len(sec.Rows) != 1 || sec.Rows[0][0].Text != "w1" || sec.Rows[0][2] != (StatusCell{Text: "cutover", State: StateOK}) || sec.Rows[0][9].Text != "1 ok" {
		t.Errorf("status page section: %+v", sec)
	}
	// The generation's loop publishes the gauges once it starts.
	series := `ctftp_migration_devices{wave="w1",state="cutover"}`
	for deadline := time.Now().Add(10 * time.Second); tg.metric(t, series) != "1" && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := tg.metric(t, series); got != "1" {
		t.Errorf("%s = %q", series, got)
	}
}
