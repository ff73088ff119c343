package main

import (
	"bytes"
	"strings"
	"testing"
)

// Progress of a large wave: a line per tenth in logs, a redrawn bar on a
// terminal.
func TestMigrateProgress(t *testing.T) {
	var b bytes.Buffer
	p := &progressBar{w: &b, label: "wave-1"}
	for i := 1; i <= 250; i++ {
		p.update(i, 250)
	}
	p.finish()
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 10 || lines[0] != "  wave-1: 25/250 devices checked" || lines[9] != "  wave-1: 250/250 devices checked" {
		t.Errorf("log progress:\n%s", b.String())
	}

	b.Reset()
	p = &progressBar{w: &b, label: "wave-1", term: true}
	for i := 1; i <= 4; i++ {
		p.update(i, 4)
	}
	p.finish()
	out := b.String()
	if !strings.HasPrefix(out, "\r\033[K  wave-1 [#######.......................] 1/4") ||
		!strings.HasSuffix(out, "[##############################] 4/4\n") {
		t.Errorf("terminal progress: %q", out)
	}
}
