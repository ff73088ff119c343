package proxy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// learnSaveInterval is how often the learned routes are written to
// routing.learn_file while they change: a crash loses at most this much
// learning, and a boot storm's thousands of new routes cost one write.
const learnSaveInterval = 30 * time.Second

// learnSaver writes the serving generation's learned routes to its
// routing.learn_file (routing.Router.SaveLearned) every learnSaveInterval
// and once more at shutdown. A failed write is logged once per streak
// and counted; the routes stay in memory.
type learnSaver struct {
	g      *Gateway
	writes map[bool]*metrics.Counter

	mu      sync.Mutex // guards the fields below: /status reads them
	failing bool
	last    LearnFileStatus
}

// LearnFileStatus is routing.learn_file in /status: where the learned
// routes are kept, and how the last write went.
type LearnFileStatus struct {
	File string `json:"file"`
	// SavedAt and Routes are the last successful write (zero before
	// one); Error is the last write's error while writes fail.
	SavedAt time.Time `json:"saved_at,omitzero"`
	Routes  int       `json:"routes_saved"`
	Error   string    `json:"error,omitempty"`
	// Restored is how many routes the gateway read from the file when
	// it started.
	Restored int `json:"routes_restored"`
}

// status is the learn file's state, nil when file is "" (not kept);
// restored is what the gateway read from it at its start.
func (s *learnSaver) status(file string, restored int) *LearnFileStatus {
	if file == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.last
	if st.File != file {
		// Renamed by a reload and not written yet.
		st = LearnFileStatus{}
	}
	st.File, st.Restored = file, restored
	return &st
}

func newLearnSaver(g *Gateway) *learnSaver {
	return &learnSaver{g: g, writes: map[bool]*metrics.Counter{
		true:  g.metrics.GetOrCreateCounter(`ctftp_routing_learn_file_writes_total{result="ok"}`),
		false: g.metrics.GetOrCreateCounter(`ctftp_routing_learn_file_writes_total{result="error"}`),
	}}
}

// run saves every interval until ctx ends.
func (s *learnSaver) run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.save("interval")
		}
	}
}

// save writes the routes if they changed since the last write.
func (s *learnSaver) save(why string) {
	gen := s.g.gen.Load()
	if gen == nil || gen.router == nil {
		return
	}
	saved, n, err := gen.router.SaveLearned()
	s.mu.Lock()
	defer s.mu.Unlock()
	file := gen.router.LearnFile()
	if s.last.File != file {
		s.last = LearnFileStatus{File: file}
	}
	switch {
	case err != nil:
		s.writes[false].Inc()
		if !s.failing {
			s.g.log.Warn("routing: learned routes not saved; they stay in memory", "err", fmt.Errorf("%s: %w", why, err))
		}
		s.failing, s.last.Error = true, err.Error()
	case saved:
		s.writes[true].Inc()
		if s.failing || why == "shutdown" {
			s.g.log.Info("routing: learned routes saved", "file", file, "routes", n, "when", why)
		}
		s.failing = false
		s.last.SavedAt, s.last.Routes, s.last.Error = time.Now(), n, ""
	}
}
