package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
)

const (
	devCnf = "SEP0011215A1AE3.cnf.xml.sgn"
	devITL = "ITLSEP0011215A1AE3.tlv"
	devCTL = "CTLSEP0011215A1AE3.tlv"
)

// newMetricsCache is newTestCache with a metrics set and a debug log the
// test can read.
func newMetricsCache(t *testing.T, next ctftp.Source, cfg Config) (*Cache, *metrics.Set, *syncBuffer) {
	t.Helper()
	set := metrics.NewSet()
	logs := new(syncBuffer)
	c, err := New(next, cfg, Options{Metrics: set, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, set, logs
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// series returns one series' value as /metrics would print it.
func series(t *testing.T, set *metrics.Set, name string) string {
	t.Helper()
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for line := range strings.Lines(b.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			return v
		}
	}
	t.Fatalf("series %s not exported:\n%s", name, b.String())
	return ""
}

// A phone's own file is served from memory only within the burst window:
// a retransmitted or repeated request then gets the same bytes, the next
// boot after it gets what the backend has now, and a change is counted
// and logged. Shared files keep their TTL.
func TestDeviceFileBurstWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.put("east", devCnf, "v1")
		b.put("east", "XMLDefault.cnf.xml", "d1")
		cfg := testConfig()
		c, set, logs := newMetricsCache(t, b, cfg)

		mustRead(t, c, "east", devCnf)
		mustRead(t, c, "east", "XMLDefault.cnf.xml")
		b.put("east", devCnf, "v2")
		b.put("east", "XMLDefault.cnf.xml", "d2")

		time.Sleep(cfg.TTL.Device - time.Nanosecond)
		if got, f := mustRead(t, c, "east", devCnf); got != "v1" || f.Origin != ctftp.OriginCache {
			t.Fatalf("within the burst window: %q from %s, want the cached v1", got, f.Origin)
		}
		time.Sleep(time.Nanosecond)
		if got, f := mustRead(t, c, "east", devCnf); got != "v2" || f.Origin != ctftp.OriginBackend {
			t.Fatalf("after the burst window: %q from %s, want v2 from the backend", got, f.Origin)
		}
		if got, _ := mustRead(t, c, "east", "XMLDefault.cnf.xml"); got != "d1" {
			t.Fatalf("a shared config after %s: %q, want the cached d1 (ttl.config %s)", cfg.TTL.Device, got, cfg.TTL.Config)
		}
		if v := series(t, set, `ctftp_cache_changed_total{class="device"}`); v != "1" {
			t.Errorf("changed{device} = %s, want 1", v)
		}
		if v := series(t, set, `ctftp_cache_changed_total{class="config"}`); v != "0" {
			t.Errorf("changed{config} = %s, want 0", v)
		}
		if !strings.Contains(logs.String(), "file changed on the backend") || !strings.Contains(logs.String(), "class=device") {
			t.Errorf("no debug line for the change:\n%s", logs)
		}

		// Fetched again with the same bytes: not a change.
		time.Sleep(cfg.TTL.Device)
		mustRead(t, c, "east", devCnf)
		if c.Stats().Changed != 1 {
			t.Errorf("Changed = %d after an unchanged refill, want 1", c.Stats().Changed)
		}
	})
}

// After the burst window, a backend that fails still gets the phone the
// last copy (serve-stale), for stale_max_age.
func TestDeviceFileServeStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.put("east", devCnf, "v1")
		cfg := testConfig()
		c := newTestCache(t, b, cfg)
		mustRead(t, c, "east", devCnf)

		b.fail(ctftp.ErrUnavailable)
		time.Sleep(cfg.TTL.Device + time.Minute)
		if got, _ := mustRead(t, c, "east", devCnf); got != "v1" {
			t.Fatalf("backend down after the window: %q, want the stale v1", got)
		}
		if s := c.Stats(); s.StaleServed != 1 {
			t.Errorf("StaleServed = %d, want 1", s.StaleServed)
		}
		time.Sleep(cfg.StaleMaxAge)
		if _, _, err := read(t, c, t.Context(), "east", devCnf); !errors.Is(err, ctftp.ErrUnavailable) {
			t.Fatalf("past stale_max_age: %v, want ErrUnavailable", err)
		}
	})
}

// A device file's "not found" is remembered no longer than its burst
// window: a phone an admin just added finds its files at its next boot.
func TestDeviceNotFoundWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		cfg := testConfig()
		c := newTestCache(t, b, cfg)
		for _, name := range []string{devCnf, "XMLDefault.cnf.xml"} {
			if _, _, err := read(t, c, t.Context(), "east", name); !errors.Is(err, ctftp.ErrNotFound) {
				t.Fatalf("%s: %v, want ErrNotFound", name, err)
			}
			b.put("east", name, "added")
		}
		time.Sleep(cfg.TTL.Device)
		if got, _ := mustRead(t, c, "east", devCnf); got != "added" {
			t.Errorf("device file after the window: %q", got)
		}
		if _, _, err := read(t, c, t.Context(), "east", "XMLDefault.cnf.xml"); !errors.Is(err, ctftp.ErrNotFound) {
			t.Errorf("shared file within negative_ttl: %v, want the remembered not found", err)
		}
	})
}

// Configured class rules come before the built-in classes.
func TestClassRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.put("east", "XMLDefault.cnf.xml", "d1")
		b.put("east", devCnf, "v1")
		cfg := testConfig()
		cfg.Classes = []ClassRule{{Glob: "XMLDefault.cnf.xml", Class: "device"}, {Glob: "SEP*", Class: "firmware"}}
		c := newTestCache(t, b, cfg)
		mustRead(t, c, "east", "XMLDefault.cnf.xml")
		mustRead(t, c, "east", devCnf)
		b.put("east", "XMLDefault.cnf.xml", "d2")
		b.put("east", devCnf, "v2")
		time.Sleep(cfg.TTL.Device)
		if got, _ := mustRead(t, c, "east", "XMLDefault.cnf.xml"); got != "d2" {
			t.Errorf("XMLDefault ruled a device file: %q after the window, want d2", got)
		}
		if got, _ := mustRead(t, c, "east", devCnf); got != "v1" {
			t.Errorf("SEP* ruled firmware: %q, want the cached v1", got)
		}
	})
}

// readString is read for goroutines other than the test's.
func readString(c *Cache, sub, name string) (string, error) {
	f, err := c.Open(context.Background(), ctftp.Request{Name: name, Subcluster: sub})
	if err != nil {
		return "", err
	}
	defer f.Body.Close()
	b, err := io.ReadAll(f.Body)
	return string(b), err
}

// busySource answers prefetches with ctftp.ErrNoIdleSlot while busy is set,
// as cluster does when no backend slot is idle, and counts prefetches.
type busySource struct {
	next ctftp.Source

	mu         sync.Mutex
	busy       bool
	prefetches int
}

func (s *busySource) setBusy(v bool) {
	s.mu.Lock()
	s.busy = v
	s.mu.Unlock()
}

func (s *busySource) Open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	s.mu.Lock()
	busy := s.busy
	if req.Prefetch {
		s.prefetches++
	}
	s.mu.Unlock()
	if req.Prefetch && busy {
		return nil, fmt.Errorf("busy source: %w", ctftp.ErrNoIdleSlot)
	}
	return s.next.Open(ctx, req)
}

func prefetchStats(s Stats) string {
	return fmt.Sprintf("issued %d used %d wasted %d skipped %d", s.PrefetchIssued, s.PrefetchUsed, s.PrefetchWasted, s.PrefetchSkipped)
}

func TestPrefetch(t *testing.T) {
	t.Run("the phone's next requests are hits", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newFake()
			b.put("east", devITL, "itl")
			b.put("east", devCnf, "cnf")
			src := &busySource{next: b}
			c, set, _ := newMetricsCache(t, src, testConfig())
			c.Prefetch(t.Context(), ctftp.Request{Name: devITL, Subcluster: "east"})
			c.Prefetch(t.Context(), ctftp.Request{Name: devCnf, Subcluster: "east"})
			c.Prefetch(t.Context(), ctftp.Request{Name: devCTL, Subcluster: "east"}) // not on the backend
			synctest.Wait()
			for _, name := range []string{devITL, devCnf} {
				if _, f := mustRead(t, c, "east", name); f.Origin != ctftp.OriginCache {
					t.Errorf("%s after its prefetch: from %s, want cache", name, f.Origin)
				}
			}
			if _, _, err := read(t, c, t.Context(), "east", devCTL); !errors.Is(err, ctftp.ErrNotFound) {
				t.Errorf("%s: %v, want the prefetched not found", devCTL, err)
			}
			mustRead(t, c, "east", devCnf) // a second hit is not a second use
			if got := prefetchStats(c.Stats()); got != "issued 3 used 3 wasted 0 skipped 0" {
				t.Errorf("prefetch counts: %s", got)
			}
			if b.total() != 3 || src.prefetches != 3 {
				t.Errorf("backend Opens = %d (prefetches %d), want 3", b.total(), src.prefetches)
			}
			if v := series(t, set, "ctftp_cache_prefetch_used_total"); v != "3" {
				t.Errorf("ctftp_cache_prefetch_used_total = %s", v)
			}
		})
	})
	t.Run("a hit through Peek uses it too", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newFake()
			b.put("east", devCnf, "cnf")
			c := newTestCache(t, b, testConfig())
			c.Prefetch(t.Context(), ctftp.Request{Name: devCnf, Subcluster: "east"})
			c.Prefetch(t.Context(), ctftp.Request{Name: devCTL, Subcluster: "east"})
			synctest.Wait()
			if f, ok, err := c.Peek(ctftp.Request{Name: devCnf, Subcluster: "east"}); !ok || err != nil {
				t.Fatalf("Peek after the prefetch: %v, %v", ok, err)
			} else {
				f.Body.Close()
			}
			if _, ok, err := c.Peek(ctftp.Request{Name: devCTL, Subcluster: "east"}); !ok || !errors.Is(err, ctftp.ErrNotFound) {
				t.Fatalf("Peek of a prefetched not found: %v, %v", ok, err)
			}
			if s := prefetchStats(c.Stats()); s != "issued 2 used 2 wasted 0 skipped 0" {
				t.Errorf("prefetch counts: %s", s)
			}
		})
	})
	t.Run("a phone joins a prefetch in flight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newFake()
			b.put("east", devCnf, "cnf")
			c := newTestCache(t, b, testConfig())
			release := b.block()
			c.Prefetch(t.Context(), ctftp.Request{Name: devCnf, Subcluster: "east"})
			synctest.Wait()
			got := make(chan string, 1)
			go func() {
				s, err := readString(c, "east", devCnf)
				if err != nil {
					s = err.Error()
				}
				got <- s
			}()
			synctest.Wait()
			release()
			if s := <-got; s != "cnf" {
				t.Fatalf("got %q", s)
			}
			if s := prefetchStats(c.Stats()); s != "issued 1 used 1 wasted 0 skipped 0" || b.total() != 1 {
				t.Errorf("prefetch counts: %s, backend Opens %d", s, b.total())
			}
		})
	})
	t.Run("a phone whose miss came just before the prefetch stored uses it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newFake()
			b.put("east", devCnf, "cnf")
			c := newTestCache(t, b, testConfig())
			c.Prefetch(t.Context(), ctftp.Request{Name: devCnf, Subcluster: "east"})
			synctest.Wait()
			// Open missed, then the prefetch's flight ended before the
			// phone's began: its fill finds the answer on looking again.
			req := ctftp.Request{Name: devCnf, Subcluster: "east"}
			f, err := c.await(t.Context(), req, key{req.Subcluster, req.Name})
			if err != nil {
				t.Fatal(err)
			}
			f.Body.Close()
			if s := prefetchStats(c.Stats()); s != "issued 1 used 1 wasted 0 skipped 0" || b.total() != 1 {
				t.Errorf("prefetch counts: %s, backend Opens %d", s, b.total())
			}
		})
	})
	t.Run("skipped when cached or in flight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newFake()
			b.put("east", devCnf, "cnf")
			b.put("east", devITL, "itl")
			c := newTestCache(t, b, testConfig())
			mustRead(t, c, "east", devCnf)
			c.Prefetch(t.Context(), ctftp.Request{Name: devCnf, Subcluster: "east"})
			release := b.block()
			go readString(c, "east", devITL)
			synctest.Wait()
			c.Prefetch(t.Context(), ctftp.Request{Name: devITL, Subcluster: "east"})
			release()
			synctest.Wait()
			if s := prefetchStats(c.Stats()); s != "issued 0 used 0 wasted 0 skipped 2" || b.total() != 2 {
				t.Errorf("prefetch counts: %s, backend Opens %d", s, b.total())
			}
		})
	})
	t.Run("wasted when no phone asks within the window", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newFake()
			b.put("east", devCnf, "cnf")
			b.put("east", devITL, "itl")
			cfg := testConfig()
			c := newTestCache(t, b, cfg)
			c.Prefetch(t.Context(), ctftp.Request{Name: devCnf, Subcluster: "east"})
			c.Prefetch(t.Context(), ctftp.Request{Name: devITL, Subcluster: "east"})
			synctest.Wait()
			time.Sleep(cfg.TTL.Device)
			if _, f := mustRead(t, c, "east", devCnf); f.Origin != ctftp.OriginBackend {
				t.Errorf("after the window: from %s, want backend", f.Origin)
			}
			c.Purge(devITL)
			if s := prefetchStats(c.Stats()); s != "issued 2 used 0 wasted 2 skipped 0" {
				t.Errorf("prefetch counts: %s", s)
			}
		})
	})
	t.Run("busy: nothing sent, and a phone that joined fetches for itself", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newFake()
			b.put("east", devCnf, "cnf")
			src := &busySource{next: b, busy: true}
			c, set, _ := newMetricsCache(t, src, testConfig())
			c.Prefetch(t.Context(), ctftp.Request{Name: devCnf, Subcluster: "east"})
			synctest.Wait()
			if got, f := mustRead(t, c, "east", devCnf); got != "cnf" || f.Origin != ctftp.OriginBackend {
				t.Fatalf("phone after a busy prefetch: %q from %s", got, f.Origin)
			}
			if s := prefetchStats(c.Stats()); s != "issued 0 used 0 wasted 0 skipped 1" {
				t.Errorf("prefetch counts: %s", s)
			}
			if v := series(t, set, `ctftp_cache_prefetch_skipped_total{reason="busy"}`); v != "1" {
				t.Errorf("skipped{busy} = %s", v)
			}
			if v := series(t, set, `ctftp_cache_fills_total{result="error"}`); v != "0" {
				t.Errorf("a busy prefetch counted as a failed fill: %s", v)
			}
		})
	})
	t.Run("a phone in a busy prefetch's flight is served", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newFake()
			b.put("east", devCnf, "cnf")
			gate := make(chan struct{})
			src := ctftp.SourceFunc(func(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
				if req.Prefetch {
					<-gate // the phone joins meanwhile
					return nil, ctftp.ErrNoIdleSlot
				}
				return b.Open(ctx, req)
			})
			c := newTestCache(t, src, testConfig())
			c.Prefetch(t.Context(), ctftp.Request{Name: devCnf, Subcluster: "east"})
			synctest.Wait()
			got := make(chan string, 1)
			go func() {
				s, err := readString(c, "east", devCnf)
				if err != nil {
					s = err.Error()
				}
				got <- s
			}()
			synctest.Wait()
			close(gate)
			if s := <-got; s != "cnf" {
				t.Fatalf("got %q", s)
			}
		})
	})
	t.Run("an oversized prefetch is not kept and its stream is closed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newFake()
			cfg := testConfig()
			b.put("east", devCnf, strings.Repeat("x", int(cfg.MaxObject)+1))
			c := newTestCache(t, b, cfg)
			c.Prefetch(t.Context(), ctftp.Request{Name: devCnf, Subcluster: "east"})
			synctest.Wait()
			if b.opened.Load() != b.closed.Load() {
				t.Errorf("%d bodies opened, %d closed", b.opened.Load(), b.closed.Load())
			}
			if s := prefetchStats(c.Stats()); s != "issued 1 used 0 wasted 1 skipped 0" {
				t.Errorf("prefetch counts: %s", s)
			}
		})
	})
}
