package routing

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLearnFile: routes written at one start are read at the next with
// their ages; a write happens only when the routes changed; damaged lines
// are skipped one by one; an unknown sub-cluster's routes are dropped; a
// missing file is an empty table; a missing directory is a config error.
func TestLearnFile(t *testing.T) {
	const a, b, c = "0011215A1AE3", "0011215A1AE4", "0011215A1AE5"
	dir := t.TempDir()
	file := filepath.Join(dir, "routes.txt")
	clock := newFakeClock()
	cfg := DefaultConfig()
	cfg.LearnFile = file
	r := newTestRouter(t, cfg, Options{Now: clock.Now})
	if r.Learned() != 0 {
		t.Fatalf("%d routes from a file that does not exist", r.Learned())
	}
	if saved, _, err := r.SaveLearned(); saved || err != nil {
		t.Fatalf("nothing learned, yet saved %v (%v)", saved, err)
	}
	r.Learn(a, "east")
	clock.Advance(time.Hour)
	r.Learn(b, "west")
	r.Learn(c, "south")
	if saved, n, err := r.SaveLearned(); !saved || n != 3 || err != nil {
		t.Fatalf("SaveLearned = %v, %d, %v; want a write of 3 routes", saved, n, err)
	}
	if saved, _, _ := r.SaveLearned(); saved {
		t.Error("saved again with nothing changed")
	}
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "# ") || !strings.HasPrefix(lines[1], a+" east 2026-01-01T00:00:00Z") {
		t.Fatalf("file, oldest first after a header:\n%s", text)
	}
	// Damage one line; the others still count.
	damaged := strings.Replace(string(text), b+" west", b+" west extra-field", 1)
	if err := os.WriteFile(file, []byte(damaged), 0o644); err != nil {
		t.Fatal(err)
	}

	clock.Advance(22*time.Hour + 30*time.Minute) // a: 23.5 h old, 30 min to live
	next := DefaultConfig()
	next.LearnFile = file
	r2, err := New(next, []string{"east", "west"}, Options{Now: clock.Now}) // south is gone
	if err != nil {
		t.Fatal(err)
	}
	if r2.Learned() != 1 {
		t.Errorf("%d routes restored, want 1 (a; b's line is damaged, c's sub-cluster gone)", r2.Learned())
	}
	if d := r2.Route(req("SEP"+a+".cnf.xml", "")); d.Kind != Learned || d.Subclusters[0] != "east" {
		t.Errorf("a after the restart: %v %v", d.Kind, d.Subclusters)
	}
	clock.Advance(30 * time.Minute)
	if d := r2.Route(req("SEP"+a+".cnf.xml", "")); d.Kind != FanOut {
		t.Errorf("a 24 h after it was learned: %v, want fanout (its age came with it)", d.Kind)
	}

	bad := DefaultConfig()
	bad.LearnFile = filepath.Join(dir, "no-such-dir", "routes.txt")
	if _, err := New(bad, testSubclusters, Options{}); err == nil || !strings.Contains(err.Error(), "learn_file:") {
		t.Errorf("learn_file in a missing directory: %v", err)
	}
	bad.LearnFile = dir
	if _, err := New(bad, testSubclusters, Options{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("learn_file naming a directory: %v", err)
	}
}

// FuzzLearnFile: whatever the file holds, reading it never fails the
// start, and the routes read write back to a file that reads the same.
func FuzzLearnFile(f *testing.F) {
	f.Add("# header\n0011215A1AE3 east 2026-11-30T19:35:11Z\n")
	f.Add("00:11:21:5a:1a:e3 west 2026-11-30T19:35:11.123456789+01:00\n\n  \n")
	f.Add("0011215A1AE3 east\n")
	f.Add("zz east 2026-11-30T19:35:11Z\n0011215A1AE3 east yesterday\n")
	f.Add("\x00\xff\n0011215A1AE3 \u00e9 2026-11-30T19:35:11Z")
	f.Fuzz(func(t *testing.T, content string) {
		dir := t.TempDir()
		file := filepath.Join(dir, "routes.txt")
		os.WriteFile(file, []byte(content), 0o644)
		routes, _, err := readLearnFile(file)
		if err != nil {
			return
		}
		again := filepath.Join(dir, "again.txt")
		if err := writeLearnFile(again, routes); err != nil {
			t.Fatal(err)
		}
		back, bad, err := readLearnFile(again)
		if err != nil || len(bad) != 0 || len(back) != len(routes) {
			t.Fatalf("rewritten file: %d routes of %d, bad %v, %v", len(back), len(routes), bad, err)
		}
		for i := range back {
			if back[i].mac != routes[i].mac || back[i].subcluster != routes[i].subcluster || !back[i].at.Equal(routes[i].at) {
				t.Fatalf("route %d: %+v, want %+v", i, back[i], routes[i])
			}
		}
	})
}

// TestLearnFileOrderAndClock: a file listing routes out of order, or dated
// after now (another host's clock), restores a table that expires each
// route on time: a future date counts as now.
func TestLearnFileOrderAndClock(t *testing.T) {
	clock := newFakeClock()
	now := clock.Now()
	file := filepath.Join(t.TempDir(), "routes.txt")
	content := "0011215A1AE4 west " + now.Add(-time.Hour).Format(time.RFC3339) + "\n" +
		"0011215A1AE3 east " + now.Add(-20*time.Hour).Format(time.RFC3339) + "\n" +
		"0011215A1AE5 south " + now.Add(48*time.Hour).Format(time.RFC3339) + "\n"
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.LearnFile = file
	r := newTestRouter(t, cfg, Options{Now: clock.Now})
	if n := r.Learned(); n != 3 {
		t.Fatalf("%d routes restored, want 3", n)
	}
	clock.Advance(4*time.Hour + time.Minute) // east's is 24 h old now
	if n := r.Learned(); n != 2 {
		t.Errorf("%d routes after east's expired, want 2 (the table's order is by age, whatever the file's)", n)
	}
	clock.Advance(20 * time.Hour) // west's 25 h, south's (dated in the future) 24 h
	if n := r.Learned(); n != 0 {
		t.Errorf("%d routes a day later, want 0: a route dated ahead lived past learn_ttl", n)
	}
}
