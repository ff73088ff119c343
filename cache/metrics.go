package cache

import (
	"fmt"
	"slices"

	"github.com/VictoriaMetrics/metrics"
)

// Fill results, the values of the result label of ctftp_cache_fills_total.
const (
	fillOK       = "ok"        // fetched and shared (and stored when it may be)
	fillNotFound = "not_found" // the backend does not have it: negative entry
	fillDenied   = "denied"    // the backend refused it: passed on, not cached
	fillError    = "error"     // outage: served stale when possible, else passed on
	fillTooBig   = "too_big"   // larger than max_object: streamed, not cached
)

// Why a prefetch was not sent, the values of the reason label of
// ctftp_cache_prefetch_skipped_total.
const (
	skipCached = "cached" // fresh in memory, or a fill for it already running
	skipBusy   = "busy"   // no idle backend slot (ctftp.ErrNoIdleSlot)
)

// cacheMetrics are the series one Cache exports; the names are listed in
// doc.go and interface.md.
type cacheMetrics struct {
	hits        *metrics.Counter
	misses      *metrics.Counter
	negHits     *metrics.Counter
	staleServed *metrics.Counter
	evictions   *metrics.Counter
	fillShared  *metrics.Counter
	streamed    *metrics.Counter
	fills       map[string]*metrics.Counter // by result; read-only after New
	changed     [numClasses]*metrics.Counter

	prefetchIssued  *metrics.Counter
	prefetchUsed    *metrics.Counter
	prefetchWasted  *metrics.Counter
	prefetchSkipped map[string]*metrics.Counter // by reason; read-only after New
}

// newMetrics registers the cache's series on set. Gauges read c's state
// through the callbacks. It fails instead of panicking when the series
// already exist, e.g. when two caches are given the same set.
func newMetrics(set *metrics.Set, c *Cache) (*cacheMetrics, error) {
	fillResults := []string{fillOK, fillNotFound, fillDenied, fillError, fillTooBig}
	names := []string{
		"ctftp_cache_hits_total", "ctftp_cache_misses_total", "ctftp_cache_negative_hits_total",
		"ctftp_cache_stale_served_total", "ctftp_cache_evictions_total",
		"ctftp_cache_fill_shared_total", "ctftp_cache_streamed_total",
		"ctftp_cache_bytes", "ctftp_cache_entries", "ctftp_cache_negative_entries",
	}
	for _, r := range fillResults {
		names = append(names, fillName(r))
	}
	for k := range Class(numClasses) {
		names = append(names, changedName(k))
	}
	skipReasons := []string{skipCached, skipBusy}
	for _, r := range skipReasons {
		names = append(names, skippedName(r))
	}
	names = append(names, "ctftp_cache_prefetch_issued_total", "ctftp_cache_prefetch_used_total", "ctftp_cache_prefetch_wasted_total")
	existing := set.ListMetricNames()
	for _, n := range names {
		if slices.Contains(existing, n) {
			return nil, fmt.Errorf("cache: metric %s is already registered in this set", n)
		}
	}
	m := &cacheMetrics{
		hits:        set.NewCounter("ctftp_cache_hits_total"),
		misses:      set.NewCounter("ctftp_cache_misses_total"),
		negHits:     set.NewCounter("ctftp_cache_negative_hits_total"),
		staleServed: set.NewCounter("ctftp_cache_stale_served_total"),
		evictions:   set.NewCounter("ctftp_cache_evictions_total"),
		fillShared:  set.NewCounter("ctftp_cache_fill_shared_total"),
		streamed:    set.NewCounter("ctftp_cache_streamed_total"),
		fills:       make(map[string]*metrics.Counter, len(fillResults)),

		prefetchIssued:  set.NewCounter("ctftp_cache_prefetch_issued_total"),
		prefetchUsed:    set.NewCounter("ctftp_cache_prefetch_used_total"),
		prefetchWasted:  set.NewCounter("ctftp_cache_prefetch_wasted_total"),
		prefetchSkipped: make(map[string]*metrics.Counter, len(skipReasons)),
	}
	for k := range Class(numClasses) {
		m.changed[k] = set.NewCounter(changedName(k))
	}
	for _, r := range skipReasons {
		m.prefetchSkipped[r] = set.NewCounter(skippedName(r))
	}
	for _, r := range fillResults {
		m.fills[r] = set.NewCounter(fillName(r))
	}
	set.NewGauge("ctftp_cache_bytes", func() float64 { return float64(c.Stats().Bytes) })
	set.NewGauge("ctftp_cache_entries", func() float64 { return float64(c.Stats().Entries) })
	set.NewGauge("ctftp_cache_negative_entries", func() float64 { return float64(c.Stats().NegEntries) })
	return m, nil
}

func changedName(k Class) string {
	return fmt.Sprintf("ctftp_cache_changed_total{class=%q}", k)
}

func skippedName(reason string) string {
	return fmt.Sprintf("ctftp_cache_prefetch_skipped_total{reason=%q}", reason)
}

func fillName(result string) string {
	return fmt.Sprintf("ctftp_cache_fills_total{result=%q}", result)
}

func (m *cacheMetrics) fillsTotal() uint64 {
	var n uint64
	for _, c := range m.fills {
		n += c.Get()
	}
	return n
}

func (m *cacheMetrics) changedTotal() uint64 {
	var n uint64
	for _, c := range m.changed {
		n += c.Get()
	}
	return n
}
