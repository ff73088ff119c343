package routing

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The learn file (routing.learn_file) keeps learned routes across
// restarts: after a restart every phone the gateway had found by fan-out
// would otherwise be asked of every sub-cluster again, in the boot storm
// that follows a site's power coming back. One route a line, oldest first,
// in words an engineer can read and grep:
//
//	# ctftp learned routes: MAC sub-cluster learned-or-confirmed (RFC 3339)
//	0011215A1AE3 east 2026-11-30T19:35:11Z
const learnFileHeader = "# ctftp learned routes: MAC sub-cluster learned-or-confirmed (RFC 3339); written by the gateway, read at its start\n"

// maxLearnFileLines bounds what a start reads: past learn_max the table
// drops the oldest anyway, and a file that is not ours must not cost
// memory without bound.
const maxLearnFileLines = 1 << 22

// readLearnFile reads the routes in path, oldest first. A missing file
// holds none. A line that does not read is skipped and reported in bad
// (at most 10), so that one damaged line does not cost every route.
func readLearnFile(path string) (routes []learned, bad []string, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if n > maxLearnFileLines {
			return routes, bad, fmt.Errorf("more than %d lines: not a learn file", maxLearnFileLines)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		l, err := parseLearnLine(line)
		if err != nil {
			if len(bad) < 10 {
				bad = append(bad, fmt.Sprintf("line %d: %v", n, err))
			}
			continue
		}
		routes = append(routes, l)
	}
	return routes, bad, sc.Err()
}

func parseLearnLine(line string) (learned, error) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return learned{}, fmt.Errorf("want MAC, sub-cluster and time, got %d fields", len(f))
	}
	mac, err := parseMAC(f[0])
	if err != nil {
		return learned{}, err
	}
	at, err := time.Parse(time.RFC3339Nano, f[2])
	if err != nil {
		return learned{}, fmt.Errorf("time %q: want RFC 3339", clip(f[2]))
	}
	return learned{mac: mac, subcluster: f[1], at: at}, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// writeLearnFile replaces path with routes (oldest first) atomically: a
// crash mid-write leaves the previous file, never half of one.
func writeLearnFile(path string, routes []learned) error {
	var b bytes.Buffer
	b.WriteString(learnFileHeader)
	for _, l := range routes {
		fmt.Fprintf(&b, "%s %s %s\n", l.mac, l.subcluster, l.at.UTC().Format(time.RFC3339Nano))
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, nothing is there
	if _, err := io.Copy(tmp, &b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// SaveLearned writes the live learned routes to routing.learn_file when
// they changed since the last save, and reports how many it wrote; with
// no learn_file, or learning off, it does nothing.
func (r *Router) SaveLearned() (saved bool, n int, err error) {
	if r.learnFile == "" || r.learned == nil {
		return false, 0, nil
	}
	v := r.learned.version()
	if v == r.savedVersion.Load() {
		return false, 0, nil
	}
	routes := r.learned.live(r.now())
	if err := writeLearnFile(r.learnFile, routes); err != nil {
		return false, 0, fmt.Errorf("routing.learn_file %s: %w", r.learnFile, err)
	}
	r.savedVersion.Store(v)
	return true, len(routes), nil
}

// LearnFile is routing.learn_file ("" when routes are not kept).
func (r *Router) LearnFile() string { return r.learnFile }

// Restored is how many routes New read from the learn file (0 for a
// Router built for a reload, which takes its predecessor's instead).
func (r *Router) Restored() int { return r.restored }

// restoreLearnFile fills a new Router's table from its learn file at a
// start. A file that cannot be read costs the routes, not the start: the
// phones are found by fan-out again, as without a file.
func (r *Router) restoreLearnFile() int {
	if r.learnFile == "" || r.learned == nil {
		return 0
	}
	routes, bad, err := readLearnFile(r.learnFile)
	for _, b := range bad {
		r.log.Warn("routing: learn_file line skipped", "file", r.learnFile, "problem", b)
	}
	if err != nil {
		r.log.Warn("routing: learn_file not read; phones are found by fan-out again", "file", r.learnFile, "err", err)
	}
	held := r.adopt(routes)
	r.restored = held
	if len(routes) > 0 {
		r.log.Info("routing: learned routes restored from learn_file", "file", r.learnFile, "restored", held,
			"dropped", len(routes)-held, "of", len(routes))
	}
	r.savedVersion.Store(r.learned.version())
	return held
}
