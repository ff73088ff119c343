package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
)

func TestHitAfterFill(t *testing.T) {
	b := newFake()
	b.put("east", "SEP0011215A1AE3.cnf.xml.sgn", "signed config")
	c := newTestCache(t, b, testConfig())

	got, f := mustRead(t, c, "east", "SEP0011215A1AE3.cnf.xml.sgn")
	if got != "signed config" || f.Origin != ctftp.OriginBackend || f.Size != 13 {
		t.Fatalf("first Open = %q origin %s size %d, want the file from the backend", got, f.Origin, f.Size)
	}
	got, f = mustRead(t, c, "east", "SEP0011215A1AE3.cnf.xml.sgn")
	if got != "signed config" || f.Origin != ctftp.OriginCache {
		t.Fatalf("second Open = %q origin %s, want the file from the cache", got, f.Origin)
	}
	if f.Subcluster != "east" || f.Backend != "backend-east" || f.Size != 13 {
		t.Errorf("cached File = sub %q backend %q size %d, want east, backend-east, 13", f.Subcluster, f.Backend, f.Size)
	}
	if _, ok := f.Body.(io.Seeker); !ok {
		t.Errorf("cached Body %T is not an io.Seeker (tsize needs one)", f.Body)
	}
	if n := b.total(); n != 1 {
		t.Errorf("backend Opens = %d, want 1", n)
	}
	s := c.Stats()
	if s.Hits != 1 || s.Misses != 1 || s.Fills != 1 || s.Entries != 1 || s.Bytes != 13 {
		t.Errorf("Stats = %+v, want 1 hit, 1 miss, 1 fill, 1 entry of 13 bytes", s)
	}
}

func TestCachedBytesAreNotShared(t *testing.T) {
	b := newFake()
	b.put("east", "a.xml", "abcdef")
	c := newTestCache(t, b, testConfig())
	mustRead(t, c, "east", "a.xml")

	// Two readers over the same bytes must not disturb each other.
	f1, err := c.Open(t.Context(), ctftp.Request{Name: "a.xml", Subcluster: "east"})
	if err != nil {
		t.Fatal(err)
	}
	f2, err := c.Open(t.Context(), ctftp.Request{Name: "a.xml", Subcluster: "east"})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	io.ReadFull(f1.Body, buf)
	f1.Body.(io.Seeker).Seek(0, io.SeekEnd)
	all, _ := io.ReadAll(f2.Body)
	if string(all) != "abcdef" || string(buf) != "abc" {
		t.Fatalf("readers interfered: f1 read %q, f2 read %q", buf, all)
	}
}

// TestSingleflight proves that N concurrent misses for one key cause one
// backend fetch, that every caller gets the file, and that exactly one of
// them (the one that started the fill) sees it as a backend transfer.
func TestSingleflight(t *testing.T) {
	const n = 50
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.put("east", "ITLSEP0011215A1AE3.tlv", "itl bytes")
		c := newTestCache(t, b, testConfig())
		release := b.block()

		type result struct {
			body   string
			origin ctftp.Origin
			err    error
		}
		results := make(chan result, n)
		for range n {
			go func() {
				s, f, err := read(t, c, t.Context(), "east", "ITLSEP0011215A1AE3.tlv")
				if err != nil {
					results <- result{err: err}
					return
				}
				results <- result{s, f.Origin, nil}
			}()
		}
		synctest.Wait() // all n callers are now waiting on one fill
		if got := b.count("east", "ITLSEP0011215A1AE3.tlv"); got != 1 {
			t.Fatalf("backend Opens while %d callers wait = %d, want 1", n, got)
		}
		release()
		origins := map[ctftp.Origin]int{}
		for range n {
			r := <-results
			if r.err != nil || r.body != "itl bytes" {
				t.Fatalf("caller got %q, %v", r.body, r.err)
			}
			origins[r.origin]++
		}
		if origins[ctftp.OriginBackend] != 1 || origins[ctftp.OriginCache] != n-1 {
			t.Errorf("origins = %v, want 1 backend and %d cache", origins, n-1)
		}
		if got := b.count("east", "ITLSEP0011215A1AE3.tlv"); got != 1 {
			t.Errorf("backend Opens = %d, want 1", got)
		}
		s := c.Stats()
		if s.FillShared != n-1 || s.Fills != 1 || s.Misses != n {
			t.Errorf("Stats = %+v, want %d shared, 1 fill, %d misses", s, n-1, n)
		}
	})
}

func TestWaiterLeavesWhileFillCompletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.put("east", "SEP001.cnf.xml", "cfg")
		c := newTestCache(t, b, testConfig())
		release := b.block()

		leaderDone := make(chan error, 1)
		go func() {
			s, _, err := read(t, c, t.Context(), "east", "SEP001.cnf.xml")
			if err == nil && s != "cfg" {
				err = errors.New("wrong body " + s)
			}
			leaderDone <- err
		}()
		synctest.Wait()

		ctx, cancel := context.WithCancel(t.Context())
		waiterDone := make(chan error, 1)
		go func() {
			_, _, err := read(t, c, ctx, "east", "SEP001.cnf.xml")
			waiterDone <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-waiterDone; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter got %v, want context.Canceled", err)
		}
		select {
		case err := <-leaderDone:
			t.Fatalf("leader returned before the backend answered: %v", err)
		default:
		}
		release()
		if err := <-leaderDone; err != nil {
			t.Fatalf("leader: %v", err)
		}
		if n := b.total(); n != 1 {
			t.Errorf("backend Opens = %d, want 1", n)
		}
	})
}

func TestLeaderCancelDoesNotCancelFill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.put("east", "SEP002.cnf.xml", "cfg2")
		c := newTestCache(t, b, testConfig())
		release := b.block()

		ctx, cancel := context.WithCancel(t.Context())
		leaderDone := make(chan error, 1)
		go func() {
			_, _, err := read(t, c, ctx, "east", "SEP002.cnf.xml")
			leaderDone <- err
		}()
		synctest.Wait()
		otherDone := make(chan string, 1)
		go func() {
			s, _ := mustRead(t, c, "east", "SEP002.cnf.xml")
			otherDone <- s
		}()
		synctest.Wait()

		cancel()
		if err := <-leaderDone; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled leader got %v, want context.Canceled", err)
		}
		release()
		if s := <-otherDone; s != "cfg2" {
			t.Fatalf("other caller got %q", s)
		}
		b.mu.Lock()
		ctxErrs := b.ctxErrs
		b.mu.Unlock()
		if len(ctxErrs) != 1 || ctxErrs[0] != nil {
			t.Fatalf("backend saw ctx errors %v, want one Open with a live context", ctxErrs)
		}
		// The fill was stored: the next Open is a hit.
		if _, f := mustRead(t, c, "east", "SEP002.cnf.xml"); f.Origin != ctftp.OriginCache {
			t.Errorf("Open after the fill: origin %s, want cache", f.Origin)
		}
		if n := b.total(); n != 1 {
			t.Errorf("backend Opens = %d, want 1", n)
		}
	})
}

func TestFetchTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.put("east", "slow.xml", "x")
		cfg := testConfig()
		cfg.FetchTimeout = 2 * time.Second
		c := newTestCache(t, b, cfg)
		release := b.block()
		defer release()

		start := time.Now()
		_, _, err := read(t, c, t.Context(), "east", "slow.xml")
		if !errors.Is(err, ErrFetchTimeout) || !errors.Is(err, ctftp.ErrUnavailable) {
			t.Fatalf("Open of a hung backend: %v, want ErrFetchTimeout wrapping ErrUnavailable", err)
		}
		if d := time.Since(start); d != cfg.FetchTimeout {
			t.Errorf("gave up after %s (bubble time), want fetch_timeout %s", d, cfg.FetchTimeout)
		}
	})
}

func TestNegativeCache(t *testing.T) {
	tests := []struct {
		name        string
		negativeTTL time.Duration
		wait        time.Duration
		wantCalls   int
	}{
		{"remembered within ttl", 30 * time.Second, 29 * time.Second, 1},
		{"asked again after ttl", 30 * time.Second, 30 * time.Second, 2},
		{"disabled", 0, 0, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newFake()
				cfg := testConfig()
				cfg.NegativeTTL = tc.negativeTTL
				c := newTestCache(t, b, cfg)

				for range 2 {
					_, _, err := read(t, c, t.Context(), "east", "CTLFile.tlv")
					if !errors.Is(err, ctftp.ErrNotFound) {
						t.Fatalf("Open of a missing file: %v, want ErrNotFound", err)
					}
					time.Sleep(tc.wait)
				}
				if got := b.total(); got != tc.wantCalls {
					t.Errorf("backend Opens = %d, want %d", got, tc.wantCalls)
				}
			})
		})
	}
}

func TestNegativeSingleflight(t *testing.T) {
	const n = 20
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		c := newTestCache(t, b, testConfig())
		release := b.block()
		errs := make(chan error, n)
		for range n {
			go func() {
				_, _, err := read(t, c, t.Context(), "east", "ITLSEP0011215A1AE3.tlv")
				errs <- err
			}()
		}
		synctest.Wait()
		release()
		for range n {
			if err := <-errs; !errors.Is(err, ctftp.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
		}
		// And the answer is remembered for the next boot wave.
		for range n {
			if _, _, err := read(t, c, t.Context(), "east", "ITLSEP0011215A1AE3.tlv"); !errors.Is(err, ctftp.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
		}
		if got := b.total(); got != 1 {
			t.Errorf("backend Opens = %d, want 1", got)
		}
		if s := c.Stats(); s.NegativeHits != n || s.NegEntries != 1 {
			t.Errorf("Stats = %+v, want %d negative hits and 1 negative entry", s, n)
		}
	})
}

func TestNegativeMaxEvicts(t *testing.T) {
	b := newFake()
	cfg := testConfig()
	cfg.NegativeMax = 2
	c := newTestCache(t, b, cfg)
	for _, name := range []string{"a.tlv", "b.tlv", "c.tlv"} {
		read(t, c, t.Context(), "east", name)
	}
	if s := c.Stats(); s.NegEntries != 2 || s.Evictions != 1 {
		t.Fatalf("Stats = %+v, want 2 negative entries and 1 eviction", s)
	}
	read(t, c, t.Context(), "east", "a.tlv") // the oldest was evicted: asked again
	read(t, c, t.Context(), "east", "c.tlv") // still remembered
	if b.count("east", "a.tlv") != 2 || b.count("east", "c.tlv") != 1 {
		t.Errorf("backend Opens a=%d c=%d, want 2 and 1", b.count("east", "a.tlv"), b.count("east", "c.tlv"))
	}
}

func TestTTLPerClass(t *testing.T) {
	ttl := TTLConfig{Device: 5 * time.Second, Trust: time.Minute, Config: 2 * time.Minute, Firmware: 3 * time.Minute, Other: 4 * time.Minute}
	tests := []struct {
		name string
		file string
		ttl  time.Duration
	}{
		{"device", "SEP0011215A1AE3.cnf.xml.sgn", ttl.Device},
		{"device trust list", "ITLSEP0011215A1AE3.tlv", ttl.Device},
		{"trust", "ITLFile.tlv", ttl.Trust},
		{"config", "XMLDefault.cnf.xml", ttl.Config},
		{"firmware", "SIP88xx.14-2-1-0001-14.loads", ttl.Firmware},
		{"other", "Ringer1.raw", ttl.Other},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newFake()
				b.put("east", tc.file, "v1")
				cfg := testConfig()
				cfg.TTL = ttl
				cfg.StaleMaxAge = 0
				c := newTestCache(t, b, cfg)

				mustRead(t, c, "east", tc.file)
				b.put("east", tc.file, "v2")
				time.Sleep(tc.ttl - time.Nanosecond)
				if got, _ := mustRead(t, c, "east", tc.file); got != "v1" {
					t.Fatalf("just before the %s TTL: got %q, want the cached v1", tc.ttl, got)
				}
				time.Sleep(time.Nanosecond)
				if got, _ := mustRead(t, c, "east", tc.file); got != "v2" {
					t.Fatalf("at the %s TTL: got %q, want the refetched v2", tc.ttl, got)
				}
				if n := b.total(); n != 2 {
					t.Errorf("backend Opens = %d, want 2", n)
				}
			})
		})
	}
}

func TestZeroTTLClassIsNotStored(t *testing.T) {
	b := newFake()
	b.put("east", "SEP1.cnf.xml", "cfg")
	cfg := testConfig()
	cfg.TTL.Config = 0
	c := newTestCache(t, b, cfg)
	for range 3 {
		mustRead(t, c, "east", "SEP1.cnf.xml")
	}
	if n := b.total(); n != 3 {
		t.Errorf("backend Opens = %d, want 3 (ttl.config 0 caches nothing)", n)
	}
	if s := c.Stats(); s.Entries != 0 {
		t.Errorf("Entries = %d, want 0", s.Entries)
	}
}

func TestEvictionByBytes(t *testing.T) {
	b := newFake()
	for _, n := range []string{"a.xml", "b.xml", "c.xml"} {
		b.put("east", n, strings.Repeat(n[:1], 40))
	}
	cfg := testConfig()
	cfg.MaxBytes = 100
	cfg.MaxObject = 40
	c := newTestCache(t, b, cfg)

	mustRead(t, c, "east", "a.xml")
	mustRead(t, c, "east", "b.xml")
	mustRead(t, c, "east", "a.xml") // a is now the most recently used
	mustRead(t, c, "east", "c.xml") // 120 bytes > 100: b goes
	s := c.Stats()
	if s.Bytes != 80 || s.Entries != 2 || s.Evictions != 1 {
		t.Fatalf("Stats = %+v, want 80 bytes in 2 entries after 1 eviction", s)
	}
	mustRead(t, c, "east", "a.xml")
	mustRead(t, c, "east", "c.xml")
	if b.count("east", "a.xml") != 1 || b.count("east", "c.xml") != 1 {
		t.Errorf("a and c should still be cached: backend Opens a=%d c=%d", b.count("east", "a.xml"), b.count("east", "c.xml"))
	}
	mustRead(t, c, "east", "b.xml")
	if got := b.count("east", "b.xml"); got != 2 {
		t.Errorf("b should have been evicted: backend Opens = %d, want 2", got)
	}
}

func TestOversizedFileStreams(t *testing.T) {
	big := strings.Repeat("0123456789", 25) // 250 bytes > max_object 100
	tests := []struct {
		name     string
		announce int64 // File.Size the backend reports
	}{
		{"size known", 250},
		{"size unknown", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newFake()
			b.put("east", "kern88xx.14-2-1.sbn", big)
			b.announce[key{"east", "kern88xx.14-2-1.sbn"}] = tc.announce
			c := newTestCache(t, b, testConfig())

			got, f := mustRead(t, c, "east", "kern88xx.14-2-1.sbn")
			if got != big || f.Origin != ctftp.OriginBackend || f.Size != tc.announce {
				t.Fatalf("streamed file: %d bytes, origin %s, size %d; want all 250 bytes from the backend", len(got), f.Origin, f.Size)
			}
			s := c.Stats()
			if s.Entries != 0 || s.Bytes != 0 || s.TooBigEntries != 1 || s.Streamed != 1 {
				t.Fatalf("Stats = %+v, want nothing stored, 1 too-big marker, 1 streamed", s)
			}
			// Later requests go straight to the backend, each with its own stream.
			got, f = mustRead(t, c, "east", "kern88xx.14-2-1.sbn")
			if got != big || f.Origin != ctftp.OriginBackend {
				t.Fatalf("second Open: %d bytes origin %s", len(got), f.Origin)
			}
			if n := b.total(); n != 2 {
				t.Errorf("backend Opens = %d, want 2", n)
			}
			if s := c.Stats(); s.Fills != 1 || s.Streamed != 2 {
				t.Errorf("Stats = %+v, want 1 fill and 2 streamed", s)
			}
			if o, cl := b.opened.Load(), b.closed.Load(); o != cl {
				t.Errorf("backend bodies opened %d, closed %d", o, cl)
			}
		})
	}
}

func TestOversizedFileWaitersEachStream(t *testing.T) {
	const n = 5
	big := strings.Repeat("x", 300)
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.put("east", "rootfs88xx.sbn", big)
		c := newTestCache(t, b, testConfig())
		release := b.block()
		type result struct {
			body string
			err  error
		}
		results := make(chan result, n)
		for range n {
			go func() {
				s, _, err := read(t, c, t.Context(), "east", "rootfs88xx.sbn")
				results <- result{s, err}
			}()
		}
		synctest.Wait()
		release()
		for range n {
			r := <-results
			if r.err != nil || r.body != big {
				t.Fatalf("caller got %d bytes, %v", len(r.body), r.err)
			}
		}
		// One fill (which the leader streamed) plus one uncached Open per waiter.
		if got := b.total(); got != n {
			t.Errorf("backend Opens = %d, want %d", got, n)
		}
		if s := c.Stats(); s.Streamed != n || s.FillShared != n-1 {
			t.Errorf("Stats = %+v, want %d streamed and %d shared", s, n, n-1)
		}
		if o, cl := b.opened.Load(), b.closed.Load(); o != cl {
			t.Errorf("backend bodies opened %d, closed %d", o, cl)
		}
	})
}

// A leader that leaves before its oversized stream is ready must not leak
// the backend body.
func TestOversizedStreamAbandoned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.put("east", "big.loads", strings.Repeat("x", 300))
		c := newTestCache(t, b, testConfig())
		release := b.block()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, _, err := read(t, c, ctx, "east", "big.loads")
			done <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		release()
		synctest.Wait() // the fill finishes on its own
		if o, cl := b.opened.Load(), b.closed.Load(); o != 1 || cl != 1 {
			t.Errorf("backend bodies opened %d, closed %d; want 1 and 1", o, cl)
		}
	})
}

func TestShortBodyIsNotCached(t *testing.T) {
	b := newFake()
	b.put("east", "SEP1.cnf.xml", "12345")
	b.announce[key{"east", "SEP1.cnf.xml"}] = 10
	c := newTestCache(t, b, testConfig())
	if _, _, err := read(t, c, t.Context(), "east", "SEP1.cnf.xml"); err == nil || errors.Is(err, ctftp.ErrNotFound) {
		t.Fatalf("truncated body: got %v, want an outage error", err)
	}
	if s := c.Stats(); s.Entries != 0 {
		t.Errorf("a truncated file was stored: %+v", s)
	}
}

func TestServeStale(t *testing.T) {
	tests := []struct {
		name        string
		staleMaxAge time.Duration
		after       time.Duration // time past the TTL when the backend fails
		backendErr  error
		wantStale   bool
	}{
		{"within stale_max_age", time.Hour, 59 * time.Minute, ctftp.ErrUnavailable, true},
		{"at stale_max_age", time.Hour, time.Hour, ctftp.ErrUnavailable, false},
		{"serve-stale disabled", 0, 0, ctftp.ErrUnavailable, false},
		{"any outage error", time.Hour, time.Minute, io.ErrUnexpectedEOF, true},
		{"denied is an answer, not an outage", time.Hour, time.Minute, ctftp.ErrDenied, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newFake()
				b.put("east", "ITLFile.tlv", "itl v1")
				cfg := testConfig()
				cfg.StaleMaxAge = tc.staleMaxAge
				c := newTestCache(t, b, cfg)

				mustRead(t, c, "east", "ITLFile.tlv")
				time.Sleep(cfg.TTL.Trust + tc.after)
				b.fail(tc.backendErr)
				got, f, err := read(t, c, t.Context(), "east", "ITLFile.tlv")
				if !tc.wantStale {
					if !errors.Is(err, tc.backendErr) {
						t.Fatalf("got %q, %v; want the backend's error %v", got, err, tc.backendErr)
					}
					return
				}
				if err != nil || got != "itl v1" || f.Origin != ctftp.OriginCache {
					t.Fatalf("got %q, %v; want the stale copy from the cache", got, err)
				}
				if s := c.Stats(); s.StaleServed != 1 {
					t.Errorf("StaleServed = %d, want 1", s.StaleServed)
				}
				// The backend recovers: fresh data replaces the stale copy.
				b.fail(nil)
				b.put("east", "ITLFile.tlv", "itl v2")
				if got, _ := mustRead(t, c, "east", "ITLFile.tlv"); got != "itl v2" {
					t.Errorf("after recovery got %q, want itl v2", got)
				}
			})
		})
	}
}

func TestNotFoundReplacesStaleCopy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.put("east", "SEP1.cnf.xml", "cfg")
		c := newTestCache(t, b, testConfig())
		mustRead(t, c, "east", "SEP1.cnf.xml")
		time.Sleep(c.cfg.TTL.Config)
		b.remove("east", "SEP1.cnf.xml")
		if _, _, err := read(t, c, t.Context(), "east", "SEP1.cnf.xml"); !errors.Is(err, ctftp.ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
		// Now an outage must not resurrect the deleted file.
		b.fail(ctftp.ErrUnavailable)
		time.Sleep(c.cfg.NegativeTTL)
		if _, _, err := read(t, c, t.Context(), "east", "SEP1.cnf.xml"); !errors.Is(err, ctftp.ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
		if s := c.Stats(); s.Entries != 0 || s.StaleServed != 0 {
			t.Errorf("Stats = %+v, want no entries and nothing served stale", s)
		}
	})
}

func TestSubclustersNeverMix(t *testing.T) {
	b := newFake()
	b.put("east", "ITLFile.tlv", "east itl")
	b.put("west", "ITLFile.tlv", "west itl")
	b.put("west", "only-west.xml", "w")
	c := newTestCache(t, b, testConfig())

	for range 2 {
		if got, _ := mustRead(t, c, "east", "ITLFile.tlv"); got != "east itl" {
			t.Fatalf("east got %q", got)
		}
		if got, _ := mustRead(t, c, "west", "ITLFile.tlv"); got != "west itl" {
			t.Fatalf("west got %q", got)
		}
	}
	// A negative answer in east says nothing about west.
	if _, _, err := read(t, c, t.Context(), "east", "only-west.xml"); !errors.Is(err, ctftp.ErrNotFound) {
		t.Fatalf("east only-west.xml: %v, want ErrNotFound", err)
	}
	if got, _ := mustRead(t, c, "west", "only-west.xml"); got != "w" {
		t.Fatalf("west only-west.xml = %q", got)
	}
	// A name that would collide with a naive concatenation.
	b.put("ea", "stITLFile.tlv", "other")
	if got, _ := mustRead(t, c, "ea", "stITLFile.tlv"); got != "other" {
		t.Fatalf("ea/stITLFile.tlv = %q", got)
	}
}

func TestPurge(t *testing.T) {
	tests := []struct {
		name      string
		glob      string
		wantN     int
		wantGone  []string
		wantKept  []string
		subPurged string // PurgeSubcluster instead of Purge when set
	}{
		{"empty is all", "", 6, []string{"SEP1.cnf.xml", "Desktops/a.png", "CTLSEP1.tlv"}, nil, ""},
		{"star is all, slashes too", "*", 6, []string{"SEP1.cnf.xml", "Desktops/a.png", "CTLSEP1.tlv"}, nil, ""},
		{"configs", "SEP*", 2, []string{"SEP1.cnf.xml"}, []string{"ITLFile.tlv", "Desktops/a.png"}, ""},
		{"trust lists, positive and negative", "*.tlv", 3, []string{"ITLFile.tlv", "CTLSEP1.tlv"}, []string{"SEP1.cnf.xml"}, ""},
		{"directory", "Desktops/*", 1, []string{"Desktops/a.png"}, []string{"SEP1.cnf.xml"}, ""},
		{"malformed glob matches nothing", "[", 0, nil, []string{"SEP1.cnf.xml", "ITLFile.tlv"}, ""},
		{"one sub-cluster", "", 3, []string{"SEP1.cnf.xml", "ITLFile.tlv"}, nil, "east"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newFake()
			for _, sub := range []string{"east", "west"} {
				b.put(sub, "SEP1.cnf.xml", "cfg "+sub)
				b.put(sub, "ITLFile.tlv", "itl "+sub)
			}
			b.put("west", "Desktops/a.png", "png")
			c := newTestCache(t, b, testConfig())
			for _, sub := range []string{"east", "west"} {
				mustRead(t, c, sub, "SEP1.cnf.xml")
				mustRead(t, c, sub, "ITLFile.tlv")
			}
			mustRead(t, c, "west", "Desktops/a.png")
			read(t, c, t.Context(), "east", "CTLSEP1.tlv") // negative entry
			// 5 files + 1 negative entry

			var n int
			if tc.subPurged != "" {
				n = c.PurgeSubcluster(tc.subPurged)
			} else {
				n = c.Purge(tc.glob)
			}
			if n != tc.wantN {
				t.Errorf("removed %d entries, want %d", n, tc.wantN)
			}
			before := b.total()
			subs := []string{"east", "west"}
			if tc.subPurged != "" {
				subs = []string{tc.subPurged}
			}
			for _, name := range tc.wantGone {
				sub := subs[0]
				if name == "Desktops/a.png" {
					sub = "west"
				}
				read(t, c, t.Context(), sub, name)
				if b.total() == before {
					t.Errorf("%s/%s was still cached after the purge", sub, name)
				}
				before = b.total()
			}
			for _, name := range tc.wantKept {
				sub := "west"
				read(t, c, t.Context(), sub, name)
				if b.total() != before {
					t.Errorf("%s/%s was purged, want kept", sub, name)
				}
				before = b.total()
			}
			if tc.subPurged != "" {
				// The other sub-cluster is untouched.
				mustRead(t, c, "west", "SEP1.cnf.xml")
				if b.total() != before {
					t.Errorf("west was purged along with %s", tc.subPurged)
				}
			}
		})
	}
}

// A fill that started before a purge must not store what it fetched: it
// may be the file the purge was meant to get rid of.
func TestPurgeDuringFillStoresNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.put("east", "ITLSEP1.tlv", "old signer")
		c := newTestCache(t, b, testConfig())
		release := b.block()
		done := make(chan string, 1)
		go func() {
			s, _ := mustRead(t, c, "east", "ITLSEP1.tlv")
			done <- s
		}()
		synctest.Wait()
		if n := c.PurgeSubcluster("east"); n != 0 {
			t.Errorf("purge removed %d entries, want 0 (the fill has not stored yet)", n)
		}
		release()
		if s := <-done; s != "old signer" {
			t.Errorf("the fill's own caller got %q, want the file", s)
		}
		if s := c.Stats(); s.Entries != 0 {
			t.Errorf("the purged fill stored its file: %+v", s)
		}
		mustRead(t, c, "east", "ITLSEP1.tlv")
		if n := b.total(); n != 2 {
			t.Errorf("backend Opens = %d, want 2", n)
		}
	})
}

// A request that arrives after a purge starts its own fill instead of
// joining one that started before it.
func TestPurgeDuringFillForgetsFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.put("east", "ITLSEP1.tlv", "itl")
		c := newTestCache(t, b, testConfig())
		release := b.block()
		var wg sync.WaitGroup
		wg.Go(func() { mustRead(t, c, "east", "ITLSEP1.tlv") })
		synctest.Wait()
		c.Purge("ITLSEP*")
		wg.Go(func() { mustRead(t, c, "east", "ITLSEP1.tlv") })
		synctest.Wait()
		if n := b.total(); n != 2 {
			t.Errorf("backend Opens while both wait = %d, want 2", n)
		}
		release()
		wg.Wait()
		// The second fill was not purged: it stored the file.
		mustRead(t, c, "east", "ITLSEP1.tlv")
		if n := b.total(); n != 2 {
			t.Errorf("backend Opens = %d, want 2", n)
		}
	})
}

func TestMaxBytesZeroStillCollapses(t *testing.T) {
	const n = 10
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.put("east", "SEP1.cnf.xml", "cfg")
		cfg := testConfig()
		cfg.MaxBytes = 0
		c := newTestCache(t, b, cfg)
		release := b.block()
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if s, _ := mustRead(t, c, "east", "SEP1.cnf.xml"); s != "cfg" {
					t.Errorf("got %q", s)
				}
			})
		}
		synctest.Wait()
		release()
		wg.Wait()
		mustRead(t, c, "east", "SEP1.cnf.xml")
		if got := b.total(); got != 2 {
			t.Errorf("backend Opens = %d, want 2 (one shared fill, then nothing stored)", got)
		}
		if s := c.Stats(); s.Entries != 0 {
			t.Errorf("Entries = %d, want 0", s.Entries)
		}
	})
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.put("east", "cached.xml", "c")
		b.put("east", "slow.xml", "s")
		c, err := New(b, testConfig(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		mustRead(t, c, "east", "cached.xml")
		release := b.block()
		defer release()
		done := make(chan error, 1)
		go func() {
			_, _, err := read(t, c, t.Context(), "east", "slow.xml")
			done <- err
		}()
		synctest.Wait()
		c.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("fill cut by Close: %v, want ErrClosed", err)
		}
		if _, _, err := read(t, c, t.Context(), "east", "other.xml"); !errors.Is(err, ErrClosed) {
			t.Fatalf("miss after Close: %v, want ErrClosed", err)
		}
		if got, _ := mustRead(t, c, "east", "cached.xml"); got != "c" {
			t.Fatalf("hit after Close: %q", got)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

func TestMetricsExported(t *testing.T) {
	set := metrics.NewSet()
	b := newFake()
	b.put("east", "a.xml", "abc")
	c, err := New(b, testConfig(), Options{Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustRead(t, c, "east", "a.xml")
	mustRead(t, c, "east", "a.xml")
	read(t, c, t.Context(), "east", "missing.xml")
	read(t, c, t.Context(), "east", "missing.xml")

	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	out := buf.String()
	for _, want := range []string{
		"ctftp_cache_hits_total 1\n",
		"ctftp_cache_misses_total 2\n",
		"ctftp_cache_negative_hits_total 1\n",
		"ctftp_cache_bytes 3\n",
		"ctftp_cache_entries 1\n",
		"ctftp_cache_negative_entries 1\n",
		`ctftp_cache_fills_total{result="ok"} 1` + "\n",
		`ctftp_cache_fills_total{result="not_found"} 1` + "\n",
		`ctftp_cache_fills_total{result="error"} 0` + "\n",
		"ctftp_cache_stale_served_total 0\n",
		"ctftp_cache_evictions_total 0\n",
		"ctftp_cache_fill_shared_total 0\n",
		"ctftp_cache_streamed_total 0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "a.xml") {
		t.Errorf("a file name leaked into a metric:\n%s", out)
	}
	if _, err := New(b, testConfig(), Options{Metrics: set}); err == nil {
		t.Errorf("a second cache on the same set: want an error, not shared or panicking counters")
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(nil, DefaultConfig(), Options{}); err == nil {
		t.Error("New(nil source): want an error")
	}
	bad := DefaultConfig()
	bad.FetchTimeout = 0
	if _, err := New(newFake(), bad, Options{}); err == nil || !strings.Contains(err.Error(), "fetch_timeout") {
		t.Errorf("New(bad config) = %v, want the fetch_timeout problem", err)
	}
}

func TestNowOption(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	b := newFake()
	b.put("east", "SEP1.cnf.xml", "cfg")
	c, err := New(b, testConfig(), Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustRead(t, c, "east", "SEP1.cnf.xml")
	advance(c.cfg.TTL.Config - time.Second)
	mustRead(t, c, "east", "SEP1.cnf.xml")
	advance(time.Second)
	mustRead(t, c, "east", "SEP1.cnf.xml")
	if n := b.total(); n != 2 {
		t.Errorf("backend Opens = %d, want 2", n)
	}
}
