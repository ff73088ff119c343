package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/internal/tftptest"
	"github.com/ctftp/ctftp/routing"
	"github.com/ctftp/ctftp/trust"
)

// deadAddr is a loopback UDP address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

func findSection(v StatusView, id string) *StatusSection {
	for i := range v.Sections {
		if v.Sections[i].ID == id {
			return &v.Sections[i]
		}
	}
	return nil
}

func fact(s *StatusSection, label string) StatusCell {
	for _, f := range s.Facts {
		if f.Label == label {
			return f.Value
		}
	}
	return StatusCell{}
}

// statusGateway runs a gateway with a healthy 8.x sub-cluster (east)
// and one whose only backend is dead (west, declared 12.5).
func statusGateway(t *testing.T) (*testGateway, *tftptest.Server) {
	central, east := newTrustPKI(t, "central"), newTrustPKI(t, "east")
	e := tftptest.NewServer(t, map[string][]byte{trust.ITLFileName: east.itl(t, false), "SEP001122334455.cnf.xml": []byte("east")})
	west := cluster.SubclusterConfig{Name: "west", Version: "12.5", Backends: []string{deadAddr(t)}}
	cfg := testGatewayConfig(gatewayRoot(t, central.itl(t, false)), sub("east", e), west)
	cfg.Cluster.Backend.MaxFails = 1
	cfg.ConfigSHA256 = "ab12"
	cfg.Version = "test"
	tg := startGateway(t, cfg)
	// One fetch that west cannot answer marks its backend down.
	tg.get(t, "SEP00AABBCCDDEE.cnf.xml")
	tg.get(t, "SEP001122334455.cnf.xml")
	return tg, e
}

func TestStatusView(t *testing.T) {
	tg, e := statusGateway(t)
	v := View(tg.Status(), time.Now())
	if v.Ready || !strings.HasPrefix(v.Title, "ctftp on ") {
		t.Errorf("ready %v, title %q; want not ready (west has no backend up)", v.Ready, v.Title)
	}
	if !strings.Contains(strings.Join(v.NotReady, "\n"), `subcluster "west": no backend up`) {
		t.Errorf("not ready: %q", v.NotReady)
	}
	var ids []string
	for _, s := range v.Sections {
		ids = append(ids, s.ID)
	}
	if got := strings.Join(ids, " "); got != "config subcluster-east subcluster-west trust transfers cache routing" {
		t.Errorf("sections %s", got)
	}
	east, west := findSection(v, "subcluster-east"), findSection(v, "subcluster-west")
	if len(east.Rows) != 1 || east.Rows[0][0].Text != e.Addr() || east.Rows[0][1] != (StatusCell{"up", StateOK}) ||
		!strings.Contains(east.Rows[0][2].Text, "ago") || !strings.Contains(east.Rows[0][2].Text, "took") {
		t.Errorf("east rows %+v", east.Rows)
	}
	if h := fact(east, "health"); h != (StatusCell{"1 of 1 backends up", StateOK}) {
		t.Errorf("east health %+v", h)
	}
	if len(west.Rows) != 1 || west.Rows[0][1].State != StateBad || !strings.HasPrefix(west.Rows[0][1].Text, "down") ||
		west.Rows[0][2].Text != "never" || west.Rows[0][4].Text == "" {
		t.Errorf("west rows %+v", west.Rows)
	}
	if h := fact(west, "health"); h.State != StateBad {
		t.Errorf("west health %+v", h)
	}
	if !strings.Contains(west.Rows[0][1].Text, "next trial") {
		t.Errorf("west's down backend shows no next trial: %+v", west.Rows[0][1])
	}
	if d := fact(east, "hedge delay"); d.Text == "" || d.Text == "off" {
		t.Errorf("east hedge delay %+v", d)
	}
	tr := findSection(v, "trust")
	if vd := fact(tr, "verdict"); vd != (StatusCell{"homogeneous 8.x+", StateOK}) {
		t.Errorf("verdict %+v", vd)
	}
	if len(tr.Rows) != 3 || tr.Rows[0][0].Text != trust.CentralName || tr.Rows[1][0].Text != "east" ||
		tr.Rows[1][3].Text == "" || len(tr.Rows[1][4].Text) != 32 {
		t.Errorf("trust rows %+v", tr.Rows)
	}
	if sha := fact(findSection(v, "config"), "sha256"); sha.Text != "ab12" {
		t.Errorf("sha256 %+v", sha)
	}
	if r := fact(findSection(v, "cache"), "hit ratio"); !regexp.MustCompile(`^\d+\.\d% \(\d+ of [1-9]\d*\)$`).MatchString(r.Text) {
		t.Errorf("hit ratio %+v", r)
	}
	rt := findSection(v, "routing")
	if l, e := fact(rt, "learned routes"), fact(rt, "to east"); l.Text != "1" || e.Text != "1" ||
		len(rt.Rows) != 1 || rt.Rows[0][0].Text != "001122334455" || rt.Rows[0][1].Text != "east" {
		t.Errorf("routing %+v", rt)
	}
}

func TestStatusPage(t *testing.T) {
	tg, e := statusGateway(t)
	h := tg.adminHandler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	page := rec.Body.String()
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET / = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<meta http-equiv="refresh" content="5">`,
		`<section id="subcluster-east">`, `<section id="subcluster-west">`, e.Addr(),
		`<span class="badge bad" id="ready">not ready</span>`,
		`homogeneous 8.x&#43;`, "ab12",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Nothing is loaded from anywhere: no script, link, image or URL.
	if m := regexp.MustCompile(`(?i)<script|<link|<img|src=|url\(|https?://`).FindString(page); m != "" {
		t.Errorf("page refers to something outside itself: %q", m)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	// Only the root is the page; other paths are still 404.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/nothing", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /nothing = %d", rec.Code)
	}

	// A purge with a malformed glob is refused, not answered "0 removed".
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/cache/purge?glob=SEP%5B", nil))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `bad glob "SEP["`) {
		t.Errorf("POST /cache/purge?glob=SEP[ = %d %q", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/cache/purge?glob=SEP%2A", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"glob":"SEP*"`) {
		t.Errorf("POST /cache/purge?glob=SEP* = %d %q", rec.Code, rec.Body.String())
	}

	// /status/tables is the same view, as JSON.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status/tables", nil))
	var v StatusView
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.Ready || findSection(v, "subcluster-west") == nil || fact(findSection(v, "trust"), "verdict").Text != "homogeneous 8.x+" {
		t.Errorf("/status/tables = %+v", v)
	}
	// /status carries the sha256 too.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
	var st struct {
		Config struct{ SHA256 string } `json:"config"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Config.SHA256 != "ab12" {
		t.Errorf("/status config.sha256 = %q, %v", st.Config.SHA256, err)
	}
}

// TestStatusPageEscapes: backend errors and config problems are text
// from elsewhere; they must never become markup.
func TestStatusPageEscapes(t *testing.T) {
	v := StatusView{Title: "ctftp x", Sections: []StatusSection{{ID: "x", Title: "<b>t</b>",
		Columns: []string{"c"}, Rows: [][]StatusCell{{{Text: `<script>alert(1)</script>`, State: `bad" onclick="x`}}}}}}
	var b strings.Builder
	if err := statusPage.Execute(&b, struct {
		View    StatusView
		Refresh int
	}{v, 5}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<script>alert") || strings.Contains(b.String(), `" onclick="`) || strings.Contains(b.String(), "<b>t</b>") {
		t.Errorf("unescaped: %s", b.String())
	}
}

// BenchmarkStatusPage: rendering the page for ten sub-clusters of three
// backends and twenty recent routes, the View and the template only.
func BenchmarkStatusPage(b *testing.B) {
	now := time.Now()
	st := GatewayStatus{Host: "gw1", Version: "bench", Config: ConfigStatus{Generation: 3, SHA256: strings.Repeat("ab", 32), LoadedAt: now}}
	for i := range 10 {
		sc := cluster.SubclusterStatus{Name: fmt.Sprintf("sc%d", i), Version: "14"}
		for j := range 3 {
			sc.Backends = append(sc.Backends, cluster.BackendStatus{Source: fmt.Sprintf("10.%d.0.%d:69", i, j), Up: j != 2,
				LastAnswer: now, AnswerSeconds: 0.004, LastError: "no answer"})
		}
		st.Subclusters = append(st.Subclusters, sc)
		st.Trust.Sides = append(st.Trust.Sides, trust.SideStatus{Classification: trust.Classification{Name: sc.Name, Declared: "14", MD5: strings.Repeat("0f", 16)}})
	}
	st.Routes = &routing.LearnedRoutes{Total: 20}
	for i := range 20 {
		st.Routes.Recent = append(st.Routes.Recent, routing.LearnedRoute{MAC: fmt.Sprintf("%012X", i), Subcluster: "sc1", At: now})
	}
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := statusPage.Execute(&buf, struct {
			View    StatusView
			Refresh int
		}{View(st, now), 5}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes/page")
}

// TestStatusViewMigrations: migration waves, when there are any, get
// their section after trust, with the state in force, what was served
// from each side, and the check's outcomes marked by how bad they are.
func TestStatusViewMigrations(t *testing.T) {
	now := time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC)
	at := now.Add(time.Hour)
	st := GatewayStatus{Migrations: []MigrationStatus{
		{Wave: "wave-1", From: "east", To: "west", State: "cutover", InForce: "cutover", Trust: "check", Devices: 40,
			PhonesSeen: 12, FilesFrom: 3, FilesTo: 36, Check: map[string]int{"ok": 38, "tvs": 2}},
		{Wave: "wave-2", From: "east", To: "west", State: "staged", InForce: "staged", CutoverAt: &at, Trust: "imported",
			Devices: 5, Rejected: 1, Held: "2 devices would break", Check: map[string]int{"ok": 3, "broken": 2}},
	}}
	v := View(st, now)
	var ids []string
	for _, s := range v.Sections {
		ids = append(ids, s.ID)
	}
	if got := strings.Join(ids, " "); got != "config trust migrations transfers cache routing" {
		t.Fatalf("sections %s", got)
	}
	m := findSection(v, "migrations")
	if len(m.Rows) != 2 {
		t.Fatalf("rows %+v", m.Rows)
	}
	w1, w2 := m.Rows[0], m.Rows[1]
	if w1[2] != stateCell("cutover", StateOK) || w1[6] != cell("3") || w1[7] != cell("36") || w1[8] != cell("0") || w1[9] != stateCell("38 ok, 2 tvs", StateWarn) {
		t.Errorf("wave-1 %+v", w1)
	}
	if w2[2] != stateCell("staged (held at cutover_at)", StateWarn) || w2[3] != cell("imported") ||
		w2[8] != stateCell("1", StateBad) || w2[9] != stateCell("3 ok, 2 broken", StateBad) {
		t.Errorf("wave-2 %+v", w2)
	}
	if len(m.Notes) != 2 {
		t.Errorf("notes %+v, want the hold and the rejected files", m.Notes)
	}
	if findSection(View(GatewayStatus{}, now), "migrations") != nil {
		t.Error("a migrations section without waves")
	}
}

// A large file on its way from a backend shows as a "streaming" fact of
// its sub-cluster, with its progress: a firmware load crossing a WAN for
// minutes is a long operation an admin watches.
func TestStatusViewStreams(t *testing.T) {
	now := time.Date(2026, 11, 30, 17, 0, 0, 0, time.UTC)
	s := subclusterSection(cluster.SubclusterStatus{Name: "east", Streams: []cluster.StreamStatus{
		{File: "kern88xx.sbn", Backend: "10.0.0.1:69", Started: now.Add(-12 * time.Second), Arrived: 300 << 10, Size: 1 << 20},
	}}, now)
	got := fact(&s, "streaming").Text
	for _, want := range []string{"kern88xx.sbn from 10.0.0.1:69", "300.0 KiB of 1.0 MiB (29%)", "12s ago"} {
		if !strings.Contains(got, want) {
			t.Errorf("streaming fact %q lacks %q", got, want)
		}
	}
}
