package tests

import (
	"net"
	"strings"
	"testing"

	"github.com/ctftp/ctftp/internal/tftptest"
)

// TestValidateNotesSilentBackend: a backend that does not answer while its
// sibling does is not a failure (the sibling serves), but validate says
// so on its own line, so a mistyped address does not pass unnoticed in
// the table before a rollout.
func TestValidateNotesSilentBackend(t *testing.T) {
	live := tftptest.StartTFTPD(t, trRoot(t, map[string][]byte{"SEP001122334455.cnf.xml": []byte("<east/>")}))
	// A socket that is bound and never read: the backend that never answers.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	cfg := trConfig(trRoot(t, nil), []trSub{{"east", "7.1", live}}, "")
	cfg = strings.Replace(cfg, `backends: ["`+live+`"]`, `backends: ["`+live+`", "`+silent.LocalAddr().String()+`"]`, 1)
	if !strings.Contains(cfg, silent.LocalAddr().String()) {
		t.Fatalf("config has no second backend:\n%s", cfg)
	}
	stdout, stderr, code := trRun(t, "validate", "--config", trConfigFile(t, cfg))
	if code != 0 {
		t.Errorf("validate exit %d, want 0 (east has a backend that answers)\n%s%s", code, stdout, stderr)
	}
	trWant(t, "validate's output", stdout,
		`note: subcluster "east": `+silent.LocalAddr().String()+` did not answer; its other backends did`, "validate: ok")
}
