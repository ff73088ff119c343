package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctftp/ctftp/internal/tftptest"
)

// TestLearnFileStatus: /status and the status page say where learned
// routes are kept and how the last write went: not yet, then the routes
// written, then a failing write (its directory gone) with its error, warned
// of once and counted, the routes still in memory.
func TestLearnFileStatus(t *testing.T) {
	const mac = "0011215A1AE3"
	backend := tftptest.NewServer(t, map[string][]byte{"SEP" + mac + ".cnf.xml": []byte("<device/>")})
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := testGatewayConfig(gatewayRoot(t, nil), sub("east", backend))
	cfg.Routing.LearnFile = filepath.Join(dir, "routes.txt")
	tg := startGateway(t, cfg)

	lf := tg.Status().LearnFile
	if lf == nil || lf.File != cfg.Routing.LearnFile || !lf.SavedAt.IsZero() || lf.Error != "" {
		t.Fatalf("before any write: %+v", lf)
	}
	if _, _, err := tg.get(t, "SEP"+mac+".cnf.xml"); err != nil {
		t.Fatal(err)
	}
	tg.saver.save("interval")
	if lf = tg.Status().LearnFile; lf.Routes != 1 || lf.SavedAt.IsZero() || lf.Error != "" {
		t.Errorf("after a write: %+v", lf)
	}
	if b, err := os.ReadFile(cfg.Routing.LearnFile); err != nil || !strings.Contains(string(b), mac+" east ") {
		t.Errorf("file: %q, %v", b, err)
	}
	facts := map[string]string{}
	for _, f := range routingSection(tg.Status(), lf.SavedAt).Facts {
		facts[f.Label] = f.Value.Text
	}
	if facts["kept in"] != cfg.Routing.LearnFile || !strings.HasPrefix(facts["last saved"], "1 route, ") {
		t.Errorf("status page facts: %v", facts)
	}

	// The directory goes: writes fail, the routes stay.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	tg.gen.Load().router.Forget(mac) // a change to write
	tg.saver.save("interval")
	if lf = tg.Status().LearnFile; lf.Error == "" || !strings.Contains(lf.Error, "routing.learn_file") {
		t.Errorf("after a failed write: %+v", lf)
	}
	if got := tg.metric(t, `ctftp_routing_learn_file_writes_total{result="error"}`); got != "1" {
		t.Errorf("failed writes counted %q", got)
	}
	if n := len(tg.logs.records(t, "routing: learned routes not saved; they stay in memory")); n != 1 {
		t.Errorf("%d warnings for one failing streak", n)
	}
}
