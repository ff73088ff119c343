package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftptest"
)

// A transfer that runs longer than the progress interval says how far it
// got on stderr (with the announced size), and the summary on stdout is
// unchanged; a quick one says nothing.
func TestGetShowsProgress(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = 5 * time.Millisecond
	srv := tftptest.NewServer(t, map[string][]byte{"kern88xx.sbn": bytes.Repeat([]byte("load"), 256<<10), "small": []byte("x")})
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"get", "--server", srv.Addr(), "kern88xx.sbn"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "ctftp get: kern88xx.sbn: ") || !strings.Contains(lines[0], " of 1.0 MiB (") ||
		!strings.Contains(lines[0], "/s, ") {
		t.Errorf("progress on stderr: %q", errb.String())
	}
	if !strings.Contains(out.String(), "size    1048576 bytes") {
		t.Errorf("summary: %q", out.String())
	}

	progressEvery = time.Hour
	errb.Reset()
	if code := run(context.Background(), []string{"get", "--server", srv.Addr(), "small"}, &out, &errb); code != exitOK || errb.Len() != 0 {
		t.Errorf("quick transfer: exit %d, stderr %q", code, errb.String())
	}
}
