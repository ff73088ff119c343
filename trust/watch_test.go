package trust

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/internal/tftptest"
)

// watchWorld is a central side and two sub-clusters, east and west, each
// one in-process TFTP server whose ITLFile.tlv a test can swap.
type watchWorld struct {
	t          *testing.T
	east, west *tftptest.Server
	set        *cluster.Set
	metrics    *metrics.Set

	mu         sync.Mutex
	centralITL []byte // nil: the root has none
	events     []Event
}

func newWatchWorld(t *testing.T, east, west, central []byte) *watchWorld {
	t.Helper()
	w := &watchWorld{t: t, centralITL: central, metrics: metrics.NewSet()}
	w.east = tftptest.NewServer(t, files(east))
	w.west = tftptest.NewServer(t, files(west))
	// Fast timeouts and no active health probing: the watcher's probes
	// are the subject.
	cfg := cluster.DefaultConfig()
	cfg.Backend.Timeout = 150 * time.Millisecond
	cfg.Backend.Retries = 1
	cfg.Backend.ProbeInterval = 0
	cfg.Subclusters = []cluster.SubclusterConfig{
		{Name: "east", Version: VersionAuto, Backends: []string{w.east.Addr()}},
		{Name: "west", Version: VersionAuto, Backends: []string{w.west.Addr()}},
	}
	set, err := cluster.New(cfg, cluster.Options{Metrics: w.metrics})
	if err != nil {
		t.Fatal(err)
	}
	w.set = set
	return w
}

func files(itlBytes []byte) map[string][]byte {
	if itlBytes == nil {
		return map[string][]byte{}
	}
	return map[string][]byte{ITLFileName: itlBytes}
}

func (w *watchWorld) setCentral(b []byte) {
	w.mu.Lock()
	w.centralITL = b
	w.mu.Unlock()
}

func (w *watchWorld) watcher(prev *Watcher) *Watcher {
	return NewWatcher(w.set, WatchOptions{
		Timeout: 5 * time.Second,
		Metrics: w.metrics,
		Central: func(context.Context) ([]byte, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.centralITL == nil {
				return nil, fmt.Errorf("root: %w", ctftp.ErrNotFound)
			}
			return w.centralITL, nil
		},
		OnEvent: func(ev Event) {
			w.mu.Lock()
			w.events = append(w.events, ev)
			w.mu.Unlock()
		},
		Previous: prev,
	})
}

// takeEvents returns the events since the last call.
func (w *watchWorld) takeEvents() []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	ev := w.events
	w.events = nil
	return ev
}

func probe(t *testing.T, w *Watcher) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return w.Probe(ctx)
}

func TestWatcherSignerChange(t *testing.T) {
	c, e1, e2, wst := newPKI(t, "central"), newPKI(t, "east"), newPKI(t, "east-regenerated"), newPKI(t, "west")
	world := newWatchWorld(t, e1.itlOf(t, false), wst.itlOf(t, false), c.itlOf(t, false))
	w := world.watcher(nil)
	if r := probe(t, w); r.Verdict != VerdictAll8x || len(r.Problems) != 0 {
		t.Fatalf("first round: %v %q", r.Verdict, r.Messages())
	}
	if ev := world.takeEvents(); len(ev) != 0 {
		t.Fatalf("first round events: %+v", ev)
	}
	if st := w.Sub("east"); !st.Known || st.Class != ClassSBD || st.ITL == nil || st.Alarm != "" {
		t.Fatalf("east after the first round: %+v", st)
	}

	world.east.SetFile(ITLFileName, e2.itlOf(t, false))
	probe(t, w)
	ev := world.takeEvents()
	if len(ev) != 1 || ev[0].Kind != EventSignerChanged || ev[0].Subcluster != "east" ||
		!strings.Contains(ev[0].OldSigner, "ITLRecovery_east ") || !strings.Contains(ev[0].NewSigner, "ITLRecovery_east-regenerated") {
		t.Fatalf("events after the regeneration: %+v", ev)
	}
	if got := metricValue(t, world.metrics, `ctftp_trust_signer_changes_total{subcluster="east"}`); got != "1" {
		t.Errorf("signer changes counted: %q", got)
	}
	if a := w.Sub("east").Alarm; !strings.Contains(a, "ITL signer changed") {
		t.Errorf("east alarm = %q", a)
	}
	if w.Sub("west").Alarm != "" {
		t.Errorf("west alarmed: %q", w.Sub("west").Alarm)
	}
	if p := strings.Join(w.Problems(), "\n"); !strings.Contains(p, `subcluster "east": ITL signer changed`) {
		t.Errorf("problems: %s", p)
	}

	// The same new signer again is no news, and the alarm stays.
	probe(t, w)
	if ev := world.takeEvents(); len(ev) != 0 {
		t.Errorf("events on an unchanged round: %+v", ev)
	}
	if w.Sub("east").Alarm == "" {
		t.Error("the alarm must stay until the watcher is replaced")
	}

	// A reload's watcher starts from the last signer seen: no alarm
	// (acknowledged), and no event for what was already reported.
	w2 := world.watcher(w)
	probe(t, w2)
	if ev := world.takeEvents(); len(ev) != 0 {
		t.Errorf("events after a reload: %+v", ev)
	}
	if a := w2.Sub("east").Alarm; a != "" {
		t.Errorf("alarm after a reload: %q", a)
	}
	// ... but a change between the two is seen.
	world.east.SetFile(ITLFileName, e1.itlOf(t, false))
	w3 := world.watcher(w2)
	probe(t, w3)
	if ev := world.takeEvents(); len(ev) != 1 || ev[0].Kind != EventSignerChanged {
		t.Errorf("a change across a reload: %+v", ev)
	}
}

func TestWatcherHeterogeneity(t *testing.T) {
	c, e, wst := newPKI(t, "central"), newPKI(t, "east"), newPKI(t, "west")
	world := newWatchWorld(t, e.itlOf(t, false), wst.itlOf(t, false), c.itlOf(t, false))
	w := world.watcher(nil)
	probe(t, w)
	w.Activate()
	if got := metricValue(t, world.metrics, "ctftp_homogeneous"); got != "1" {
		t.Fatalf("ctftp_homogeneous = %q after a homogeneous start", got)
	}

	// west drops its ITL (e.g. reinstalled as pre-8.0).
	world.west.SetFile(ITLFileName, nil)
	r := probe(t, w)
	if r.Verdict != VerdictMixed {
		t.Errorf("verdict %v", r.Verdict)
	}
	ev := world.takeEvents()
	if len(ev) != 1 || ev[0].Kind != EventHeterogeneous || ev[0].Subcluster != "west" || ev[0].Class != ClassPre80 || ev[0].Baseline != VerdictAll8x {
		t.Fatalf("events: %+v", ev)
	}
	if got := metricValue(t, world.metrics, "ctftp_homogeneous"); got != "0" {
		t.Errorf("ctftp_homogeneous = %q", got)
	}
	if got := metricValue(t, world.metrics, `ctftp_trust_heterogeneous_total{subcluster="west"}`); got != "1" {
		t.Errorf("heterogeneous counted: %q", got)
	}
	if a := w.Sub("west").Alarm; !strings.Contains(a, "pre-8.0") {
		t.Errorf("west alarm %q", a)
	}
	if p := strings.Join(w.Problems(), "\n"); !strings.Contains(p, `subcluster "west": now pre-8.0, which conflicts with the setup's era (homogeneous 8.x+)`) {
		t.Errorf("problems: %s", p)
	}

	// It comes back: the alarm clears by itself (no signer change: same key).
	world.west.SetFile(ITLFileName, wst.itlOf(t, false))
	probe(t, w)
	ev = world.takeEvents()
	if len(ev) != 1 || ev[0].Kind != EventHomogeneous || ev[0].Subcluster != "west" {
		t.Fatalf("events on recovery: %+v", ev)
	}
	if w.Sub("west").Alarm != "" || metricValue(t, world.metrics, "ctftp_homogeneous") != "1" {
		t.Errorf("after recovery: alarm %q, homogeneous %s", w.Sub("west").Alarm, metricValue(t, world.metrics, "ctftp_homogeneous"))
	}

	// The root's ITL removed: the central side conflicts; no sub-cluster is blamed.
	world.setCentral(nil)
	probe(t, w)
	if ev := world.takeEvents(); len(ev) != 0 {
		t.Errorf("events for the root: %+v", ev)
	}
	if p := strings.Join(w.Problems(), "\n"); !strings.Contains(p, "root: ITLFile.tlv is now pre-8.0") {
		t.Errorf("problems: %s", p)
	}
}

func TestWatcherInactiveDoesNotPublish(t *testing.T) {
	c, e := newPKI(t, "central"), newPKI(t, "east")
	world := newWatchWorld(t, e.itlOf(t, false), nil, c.itlOf(t, false))
	world.metrics.GetOrCreateGauge("ctftp_homogeneous", nil).Set(1)
	w := world.watcher(nil)
	if r := probe(t, w); r.Verdict != VerdictMixed {
		t.Fatalf("verdict %v", r.Verdict)
	}
	if got := metricValue(t, world.metrics, "ctftp_homogeneous"); got != "1" {
		t.Errorf("a watcher still being validated set ctftp_homogeneous to %s", got)
	}
}

func TestWatcherKeepsFindingThroughOutage(t *testing.T) {
	c, e, wst := newPKI(t, "central"), newPKI(t, "east"), newPKI(t, "west")
	world := newWatchWorld(t, e.itlOf(t, false), wst.itlOf(t, false), c.itlOf(t, false))
	w := world.watcher(nil)
	probe(t, w)
	world.east.Close()
	r := probe(t, w)
	if r.Verdict != VerdictAll8x || len(r.Problems) != 0 {
		t.Errorf("after an outage: %v %q", r.Verdict, r.Messages())
	}
	st := w.Sub("east")
	if !st.Known || st.Class != ClassSBD || st.ITL == nil || st.Alarm != "" {
		t.Errorf("east during its outage: %+v", st)
	}
	var east SideStatus
	for _, s := range w.Status().Sides {
		if s.Name == "east" {
			east = s
		}
	}
	if !east.Stale || east.Error == "" {
		t.Errorf("status of east: %+v", east)
	}
	if len(world.takeEvents()) != 0 {
		t.Error("an outage is not an event")
	}
}

func TestWatcherUnreachableAtStart(t *testing.T) {
	c, e := newPKI(t, "central"), newPKI(t, "east")
	world := newWatchWorld(t, e.itlOf(t, false), nil, c.itlOf(t, false))
	world.west.Close()
	w := world.watcher(nil)
	r := probe(t, w)
	if r.Verdict != VerdictAll8x || !r.Has(ProblemUnreachable) || r.Refused() {
		t.Fatalf("verdict %v, problems %q", r.Verdict, r.Messages())
	}
	if st := w.Sub("west"); st.Known {
		t.Errorf("west known: %+v", st)
	}
	if p := strings.Join(w.Problems(), "\n"); !strings.Contains(p, "subclusters[1].backends (west)") {
		t.Errorf("readiness problems: %s", p)
	}
}

func TestWatcherProbesCountAsProbes(t *testing.T) {
	c, e, wst := newPKI(t, "central"), newPKI(t, "east"), newPKI(t, "west")
	world := newWatchWorld(t, e.itlOf(t, false), wst.itlOf(t, false), c.itlOf(t, false))
	probe(t, world.watcher(nil))
	if got := metricValue(t, world.metrics, `ctftp_backend_fetches_total{subcluster="east",result="ok"}`); got != "0" {
		t.Errorf("ITL probes counted as fetches: %q", got)
	}
	if got := metricValue(t, world.metrics, `ctftp_backend_probes_total{subcluster="east",result="alive"}`); got != "1" {
		t.Errorf("ITL probe not counted as a probe: %q", got)
	}
	if world.east.Requests(ITLFileName) != 1 {
		t.Errorf("east asked %d times for its ITL", world.east.Requests(ITLFileName))
	}
}

func TestWatcherRun(t *testing.T) {
	c, e1, e2 := newPKI(t, "central"), newPKI(t, "east"), newPKI(t, "east2")
	world := newWatchWorld(t, e1.itlOf(t, false), nil, c.itlOf(t, false))
	world.west.SetFile(ITLFileName, newPKI(t, "west").itlOf(t, false))
	w := NewWatcher(world.set, WatchOptions{Interval: 20 * time.Millisecond, Timeout: 5 * time.Second, Metrics: world.metrics,
		Central: func(context.Context) ([]byte, error) { return c.itlOf(t, false), nil }})
	probe(t, w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	world.east.SetFile(ITLFileName, e2.itlOf(t, false))
	deadline := time.Now().Add(20 * time.Second)
	for w.Sub("east").Alarm == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if w.Sub("east").Alarm == "" {
		t.Error("Run's rounds did not see the signer change")
	}
}

func TestWatcherRetriesWhileUnclassified(t *testing.T) {
	c, e, wst := newPKI(t, "central"), newPKI(t, "east"), newPKI(t, "west")
	world := newWatchWorld(t, e.itlOf(t, false), nil, c.itlOf(t, false))
	addr := world.west.AddrPort()
	world.west.Close() // west is down at start
	w := NewWatcher(world.set, WatchOptions{Interval: time.Hour, Retry: 20 * time.Millisecond, Timeout: 5 * time.Second, Metrics: world.metrics,
		Central: func(context.Context) ([]byte, error) { return c.itlOf(t, false), nil }})
	if r := probe(t, w); !r.Has(ProblemUnreachable) || w.Sub("west").Known {
		t.Fatalf("west at start: %q", r.Messages())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	tftptest.NewServer(t, map[string][]byte{ITLFileName: wst.itlOf(t, false)}, tftptest.ListenOn(addr)) // west comes up
	deadline := time.Now().Add(20 * time.Second)
	for !w.Sub("west").Known && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if st := w.Sub("west"); !st.Known || st.Class != ClassSBD {
		t.Errorf("west after it came up: %+v (an hourly interval must not delay its first classification)", st)
	}
	if p := w.Problems(); len(p) != 0 {
		t.Errorf("problems left: %q", p)
	}
}

// metricValue is series' value as /metrics would show it, "" when absent.
func metricValue(t *testing.T, set *metrics.Set, series string) string {
	t.Helper()
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for l := range strings.Lines(b.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSuffix(l, "\n"), series+" "); ok {
			return v
		}
	}
	return ""
}
