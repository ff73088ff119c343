// Package cache is the ctftp.Source that sits between routing and the
// sub-cluster backends: it remembers the files backends served, keyed by
// everything that decides the answer (sub-cluster and file name), and
// collapses the requests of a boot storm for the same missing file into
// one backend fetch.
//
//	First(local, route -> cache -> cluster backends)
//
// Peek answers from memory alone (a fresh file or a remembered "not
// found", never a fill), which lets routing decide a fan-out without a
// goroutine per sub-cluster; a hit allocates one object (the File and its
// reader together).
//
// # What it remembers
//
//   - Files up to max_object bytes, in an LRU bounded by the bytes of file
//     data (max_bytes), each fresh for the TTL of its class (ClassOf, after
//     the configured class rules: device files, trust lists, configs,
//     firmware, other). Values are immutable byte slices; every caller
//     reads them through its own bytes.Reader, so a hit copies nothing and
//     Body is seekable (tsize for free).
//   - Device files (a phone's own: CTLSEP<MAC>.tlv, ITLSEP<MAC>.tlv,
//     SEP<MAC>.cnf.xml.sgn, ...; ctftp.DeviceMAC) only for a burst window
//     (ttl.device, seconds): one phone asks for them once per boot, so a
//     longer TTL buys nothing but an admin's change that does not reach
//     the phone. Retransmissions, a phone's immediate retry and a
//     prefetched file waiting for its phone fall within the window; the
//     next boot fetches again. A refill whose bytes differ from the copy
//     held is counted per class and logged at debug.
//   - "Not found" answers, for negative_ttl, at most negative_max of them
//     (a phone asks for CTLSEP/ITLSEP files that a non-secure cluster
//     does not have on every boot).
//   - Names of files larger than max_object, for their class TTL, so
//     later requests stream them from the backend without a flight.
//   - Expired files for stale_max_age more, served only when a fill fails
//     with an outage (RFC 8767's serve-stale). Failures themselves are not
//     remembered.
//
// Prefetch fills an entry before any phone asks (routing calls it with
// the files a phone asks for next). Its fill carries Request.Prefetch, so
// the backends serve it only from an idle slot or answer ctftp.ErrNoIdleSlot;
// a phone that joined such a flight then fetches for itself. Each
// prefetch sent is counted once as used (a phone got its answer from it)
// or wasted (it expired, left the cache or failed first).
//
// Purge and PurgeSubcluster drop entries (the admin endpoint's
// `cache purge [GLOB]`, and a sub-cluster whose ITL signer changed). A
// fill that was running when its entry was purged still answers its
// callers but stores nothing.
//
// The LRU is written here on container/list rather than taken from
// hashicorp/golang-lru/v2: that library bounds the number of entries, not
// their bytes, and this cache holds both 2 KB configs and 50 MB loads.
// No other module could be added when it was written either.
//
// # Goroutines
//
// Each fill runs in the goroutine golang.org/x/sync/singleflight starts
// for a flight (DoChan). It ends when the backend answers or fails, at
// the latest after fetch_timeout, or when Close cancels it; Close waits
// for all of them. Open itself starts nothing else. A fill whose file
// arrives as a ctftp.Stream (a large file) returns at once, and one more
// goroutine waits for the stream's end to store the file (or not: over
// max_object, or broken); until then the flight stays, and every caller
// asking reads the same stream. Close ends those too. A stream of an
// oversized file that was handed to a caller belongs to that caller:
// its context and Body.Close end it.
//
// # Concurrency
//
// Cache is safe for concurrent use. One mutex guards the LRUs; it is held
// only for map and list operations, never during I/O. Hits take it once.
// BenchmarkHit and BenchmarkHitParallel measure whether it needs sharding:
// on a 2-vCPU VM a hit costs about 0.2 µs and 2 allocations, and a
// parallel hit plus reading a 7.6 KB config about 0.35 µs, millions per
// second against a few thousand TFTP transfers per second, so it does not.
//
// # Metrics
//
// Registered on the *metrics.Set given in Options:
//
//	ctftp_cache_hits_total              fresh files served from memory
//	ctftp_cache_misses_total            Opens answered neither from memory nor by a remembered "not found"
//	ctftp_cache_negative_hits_total     remembered "not found" answers served
//	ctftp_cache_stale_served_total      expired copies served because the backend failed
//	ctftp_cache_evictions_total         entries dropped to stay within max_bytes / negative_max
//	ctftp_cache_fills_total{result}     backend fetches by the cache; result: ok, not_found, denied, error, too_big
//	ctftp_cache_fill_shared_total       callers that got the result of another caller's fill
//	ctftp_cache_streamed_total          callers handed an uncached stream of a file over max_object
//	ctftp_cache_bytes                   bytes of file data held (gauge)
//	ctftp_cache_entries                 files held, including those kept for serve-stale (gauge)
//	ctftp_cache_negative_entries        remembered "not found" answers (gauge)
//	ctftp_cache_changed_total{class}    refills whose bytes differ from the copy held;
//	                                    class: device, trust, config, firmware, other
//	ctftp_cache_prefetch_issued_total   prefetches sent to a backend
//	ctftp_cache_prefetch_used_total     of those, answers a phone got (a hit, or joined the fill)
//	ctftp_cache_prefetch_wasted_total   of those, answers no phone got (counted when the copy
//	                                    is next looked at after its window, or leaves the cache)
//	ctftp_cache_prefetch_skipped_total{reason}  prefetches not sent; reason: cached (fresh
//	                                    or a fill already running), busy (no idle backend slot)
//
// No label carries a file name or a client address.
package cache
