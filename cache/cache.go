package cache

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sync/singleflight"

	"github.com/ctftp/ctftp"
)

// Errors the cache produces itself. Both wrap ctftp.ErrUnavailable, so the
// front end answers them like any other outage.
var (
	// ErrClosed is the cause of a fill that Close cancelled or that was
	// asked for after Close.
	ErrClosed = fmt.Errorf("cache closed: %w", ctftp.ErrUnavailable)
	// ErrFetchTimeout is the cause of a fill that ran past fetch_timeout.
	ErrFetchTimeout = fmt.Errorf("fill exceeded fetch_timeout: %w", ctftp.ErrUnavailable)
)

// Options are the collaborators of a Cache. The zero value is usable.
type Options struct {
	// Logger receives the events the cache consumes itself (a stale copy
	// served in place of an error). nil discards them.
	Logger *slog.Logger
	// Metrics is the set the cache registers its series on. nil keeps
	// them in a private set (Stats still works).
	Metrics *metrics.Set
	// Now is the clock for TTLs and stale ages; nil means time.Now.
	// fetch_timeout runs on real timers: tests drive it with testing/synctest.
	Now func() time.Time
}

// Cache is a ctftp.Source that remembers what the Source behind it
// answered. It is safe for concurrent use.
type Cache struct {
	next     ctftp.Source
	cfg      Config
	classify classifier
	log      *slog.Logger
	now      func() time.Time
	m        *cacheMetrics
	group    singleflight.Group

	// closing is cancelled by Close; every fill's context follows it.
	closing     context.Context
	stopClosing context.CancelFunc

	mu      sync.Mutex // guards everything below
	files   *lru       // kindFile entries, bounded by cfg.MaxBytes
	marks   *lru       // kindNotFound and kindTooBig entries, bounded by cfg.NegativeMax
	flights map[key]*flight
	closed  bool
	running sync.WaitGroup // fills that have started fetching; Add only under mu while !closed
}

// flight is the cache's side of one fill in progress, so Purge can stop
// a fetch that started before it from storing what it fetched.
type flight struct {
	purged bool // guarded by Cache.mu
	// stream, once set, is the file arriving from the backend (a fill
	// that streams: backend.stream_over): the flight stays in
	// Cache.flights until it ends, and every caller asking meanwhile
	// reads it instead of fetching again. Guarded by Cache.mu.
	stream *streamFill
}

// streamFill is a streamed fill's file while it arrives.
type streamFill struct {
	st      *ctftp.Stream
	sub     string // the File.Subcluster the backend reported
	backend string
	// tooBig: larger than max_object, shared while it arrives and then
	// not kept.
	tooBig bool
}

// streamFile is sf.file for a caller, counted in cache_streamed_total
// when the file is over max_object.
func (c *Cache) streamFile(sf *streamFill, origin ctftp.Origin) *ctftp.File {
	if sf.tooBig {
		c.m.streamed.Inc()
	}
	return sf.file(origin)
}

// file returns a File reading the stream from its start. Its reads wait
// for bytes until the stream ends or the body is closed.
func (sf *streamFill) file(origin ctftp.Origin) *ctftp.File {
	return &ctftp.File{Body: sf.st.NewReader(nil), Size: sf.st.Size(), Origin: origin, Subcluster: sf.sub, Backend: sf.backend}
}

// streamingLocked returns the stream a fill for k is passing on, if any.
func (c *Cache) streamingLocked(k key) *streamFill {
	if fl := c.flights[k]; fl != nil {
		return fl.stream
	}
	return nil
}

// New returns a Cache in front of next. It validates cfg.
func New(next ctftp.Source, cfg Config, opts Options) (*Cache, error) {
	if next == nil {
		return nil, errors.New("cache: next source is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cache: invalid config: %w", err)
	}
	classify, _ := newClassifier(cfg.Classes) // Validate accepted them
	c := &Cache{
		next:     next,
		cfg:      cfg,
		classify: classify,
		log:      opts.Logger,
		now:      opts.Now,
		flights:  make(map[key]*flight),
	}
	c.files, c.marks = newLRU(c.wastedLocked), newLRU(c.wastedLocked)
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	m, err := newMetrics(set, c)
	if err != nil {
		return nil, err
	}
	c.m = m
	c.closing, c.stopClosing = context.WithCancel(context.Background())
	return c, nil
}

var _ ctftp.Source = (*Cache)(nil)

// Open answers req from memory when it can. A fresh file comes back with
// Origin cache and a seekable Body over the shared bytes; a remembered
// "not found" comes back as an error wrapping ctftp.ErrNotFound.
//
// On a miss every caller asking for the same sub-cluster and name joins
// one fill. The fill runs on a context that keeps ctx's values but not its
// cancellation, bounded by fetch_timeout and Close, so no single phone
// giving up can fail it for the others; each caller waits on its own ctx.
// The caller whose request started the fill gets Origin backend; callers
// that joined get Origin cache.
//
// A file that next passes on while it arrives (a ctftp.StreamingBody: a
// backend's large file) is read by every caller asking until it ends,
// and then stored, unless it is larger than max_object.
//
// Another file larger than max_object is not stored: the caller that
// started the fill gets a stream of it (the part already read, then the
// rest) and every caller that joined opens its own uncached stream from
// next, since the one stream cannot be shared. The name is then
// remembered as too big for its TTL, and later requests for it go
// straight to next.
//
// When the fill fails for any reason other than not found or denied
// (an outage), a copy expired less than stale_max_age ago is served in
// its place. Failures are not remembered: the flight already holds a key
// to one backend fetch at a time, and a remembered failure would keep
// failing phones after the backend came back.
func (c *Cache) Open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	k := key{req.Subcluster, req.Name}
	now := c.now()
	c.mu.Lock()
	e := c.lookupLocked(k, now)
	if e != nil && e.kind != kindTooBig {
		c.usedLocked(e)
	}
	var sf *streamFill
	if e == nil {
		sf = c.streamingLocked(k)
	}
	c.mu.Unlock()
	if sf != nil {
		// The file is on its way from the backend for another phone:
		// read along.
		c.m.misses.Inc()
		c.m.fillShared.Inc()
		return c.streamFile(sf, ctftp.OriginCache), nil
	}
	if e != nil {
		switch e.kind {
		case kindFile:
			c.m.hits.Inc()
			return e.file(ctftp.OriginCache), nil
		case kindNotFound:
			c.m.negHits.Inc()
			return nil, fmt.Errorf("cache: subcluster=%q file=%q: remembered: %w", req.Subcluster, req.Name, ctftp.ErrNotFound)
		case kindTooBig:
			c.m.misses.Inc()
			return c.bypass(ctx, req, k)
		}
	}
	c.m.misses.Inc()
	return c.await(ctx, req, k)
}

// Peek answers req from memory alone, without waiting: a fresh file, or a
// remembered "not found" (an error wrapping ctftp.ErrNotFound that names
// nothing: formatting one per request was most of a warm miss's cost),
// each counted as Open counts it. ok is false when only a fill could
// answer; nothing is counted then, and Open does the rest.
func (c *Cache) Peek(req ctftp.Request) (f *ctftp.File, ok bool, err error) {
	k := key{req.Subcluster, req.Name}
	now := c.now()
	c.mu.Lock()
	e := c.lookupLocked(k, now)
	if e != nil && e.kind != kindTooBig {
		c.usedLocked(e) // a phone's hit on a prefetched copy uses it
	}
	c.mu.Unlock()
	if e == nil {
		return nil, false, nil
	}
	switch e.kind {
	case kindFile:
		c.m.hits.Inc()
		return e.file(ctftp.OriginCache), true, nil
	case kindNotFound:
		c.m.negHits.Inc()
		return nil, true, errRemembered
	}
	return nil, false, nil // too big: Open streams it
}

// errRemembered is Peek's remembered "not found".
var errRemembered = fmt.Errorf("cache: remembered: %w", ctftp.ErrNotFound)

// lookupLocked returns the live answer for k: a fresh file, a "not found"
// or a "too big" marker, or nil. It drops expired answers, except files
// still within stale_max_age, which stay for serve-stale.
func (c *Cache) lookupLocked(k key, now time.Time) *entry {
	if e := c.files.get(k); e != nil {
		if now.Before(e.expires) {
			c.files.touch(e)
			return e
		}
		c.wastedLocked(e) // a prefetched copy nobody asked for in time
		if !now.Before(e.expires.Add(c.cfg.StaleMaxAge)) {
			c.files.remove(e)
		}
		return nil
	}
	if e := c.marks.get(k); e != nil {
		if now.Before(e.expires) {
			c.marks.touch(e)
			return e
		}
		c.marks.remove(e)
	}
	return nil
}

// bypass opens req on next for the caller, uncached.
func (c *Cache) bypass(ctx context.Context, req ctftp.Request, k key) (*ctftp.File, error) {
	c.m.streamed.Inc()
	f, err := c.next.Open(ctx, req)
	if err != nil {
		if errors.Is(err, ctftp.ErrNotFound) {
			// The big file is gone: remember that instead.
			c.storeMarker(nil, k, kindNotFound, c.cfg.negativeTTL(c.classify.of(req.Name)), false)
		}
		return nil, fmt.Errorf("cache: subcluster=%q file=%q: uncached: %w", req.Subcluster, req.Name, err)
	}
	return f, nil
}

// fillResult is what one fill hands every caller that waited for it.
type fillResult struct {
	e       *entry      // the answer's bytes and provenance (stored or not)
	fetched bool        // e came from next in this fill, not from memory
	stale   bool        // e expired; served because the fetch failed
	tooBig  bool        // nothing to share: each caller streams from next
	stream  *streamFill // instead of e: the file as it arrives
}

// await joins or starts the fill for k and waits for it on ctx.
func (c *Cache) await(ctx context.Context, req ctftp.Request, k key) (*ctftp.File, error) {
	for {
		h := new(handoff)
		ch := c.group.DoChan(k.String(), func() (any, error) {
			r, err := c.fill(ctx, req, k, h)
			if err != nil {
				return nil, err
			}
			return r, nil
		})
		select {
		case r := <-ch:
			if errors.Is(r.Err, ctftp.ErrNoIdleSlot) && !req.Prefetch {
				// This phone joined a prefetch's flight, and the prefetch
				// found no idle slot: fetch for the phone itself (the
				// flight is over, so DoChan starts a new one).
				continue
			}
			return c.answer(ctx, req, k, r, h)
		case <-ctx.Done():
			h.abandon()
			return nil, fmt.Errorf("cache: subcluster=%q file=%q: stopped waiting for the fill: %w", req.Subcluster, req.Name, ctx.Err())
		}
	}
}

// answer turns a fill's shared result into this caller's File.
func (c *Cache) answer(ctx context.Context, req ctftp.Request, k key, r singleflight.Result, h *handoff) (*ctftp.File, error) {
	led, stream := h.take()
	if !led {
		c.m.fillShared.Inc()
	}
	if r.Err != nil {
		if !led && errors.Is(r.Err, ctftp.ErrNotFound) {
			c.mu.Lock()
			if m := c.marks.get(k); m != nil {
				c.usedLocked(m)
			}
			c.mu.Unlock()
		}
		return nil, r.Err
	}
	res := r.Val.(*fillResult)
	if !led && res.e != nil {
		// A phone that joined a prefetch's flight uses it.
		c.mu.Lock()
		c.usedLocked(res.e)
		c.mu.Unlock()
	}
	switch {
	case res.tooBig && stream != nil:
		c.m.streamed.Inc()
		return stream, nil
	case res.tooBig:
		return c.bypass(ctx, req, k)
	case res.stale:
		c.m.staleServed.Inc()
	}
	origin := ctftp.OriginCache
	if led && res.fetched {
		// A fill is a backend transfer for the phone that caused it.
		origin = ctftp.OriginBackend
	}
	if res.stream != nil {
		return c.streamFile(res.stream, origin), nil
	}
	return res.e.file(origin), nil
}

// fill runs once per flight, in the goroutine singleflight starts for it,
// on behalf of the caller whose ctx and handoff it captured.
func (c *Cache) fill(callerCtx context.Context, req ctftp.Request, k key, h *handoff) (*fillResult, error) {
	h.lead()
	fl := new(flight)
	now := c.now()
	c.mu.Lock()
	// Look again: between this caller's miss and the start of its flight,
	// another flight for k may have finished and stored the answer.
	if sf := c.streamingLocked(k); sf != nil {
		c.mu.Unlock()
		return &fillResult{stream: sf}, nil
	}
	if e := c.lookupLocked(k, now); e != nil {
		if !req.Prefetch {
			// Most often a prefetch's flight that ended just before this
			// phone's began: the phone uses it as surely as a hit would.
			c.usedLocked(e)
		}
		c.mu.Unlock()
		if req.Prefetch {
			c.m.prefetchSkipped[skipCached].Inc()
		}
		switch e.kind {
		case kindNotFound:
			return nil, fmt.Errorf("cache: subcluster=%q file=%q: remembered: %w", req.Subcluster, req.Name, ctftp.ErrNotFound)
		case kindTooBig:
			return &fillResult{tooBig: true}, nil
		}
		return &fillResult{e: e}, nil
	}
	if c.closed {
		c.mu.Unlock()
		return c.fetchFailed(req, k, fl, ErrClosed)
	}
	c.flights[k] = fl
	c.running.Add(1)
	c.mu.Unlock()
	// streaming: the fill returned a stream whose end finishStream
	// awaits; the flight, its context and Close's hook are then its.
	streaming := false
	done := func() {
		c.mu.Lock()
		if c.flights[k] == fl {
			delete(c.flights, k)
		}
		c.mu.Unlock()
		c.running.Done()
	}
	defer func() {
		if !streaming {
			done()
		}
	}()

	// fetch_timeout is a timer rather than a context deadline because it
	// bounds only the fill: a too-big file's stream outlives the fill and
	// is then bounded by its caller's context instead.
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(callerCtx))
	stopClosing := context.AfterFunc(c.closing, func() { cancel(ErrClosed) })
	timer := time.AfterFunc(c.cfg.FetchTimeout, func() { cancel(ErrFetchTimeout) })
	handedOff := false
	defer func() {
		timer.Stop()
		if streaming {
			return
		}
		stopClosing()
		if !handedOff {
			cancel(context.Canceled)
		}
	}()
	failed := func(err error) (*fillResult, error) {
		if cause := context.Cause(ctx); ctx.Err() != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		return c.fetchFailed(req, k, fl, err)
	}

	f, err := c.next.Open(ctx, req)
	if req.Prefetch && !errors.Is(err, ctftp.ErrNoIdleSlot) {
		c.m.prefetchIssued.Inc()
		if err != nil && !errors.Is(err, ctftp.ErrNotFound) {
			c.m.prefetchWasted.Inc() // nothing to keep
		}
	}
	// lost counts a prefetch whose file turned out not to be kept.
	lost := func() {
		if req.Prefetch {
			c.m.prefetchWasted.Inc()
		}
	}
	if err != nil {
		return failed(err)
	}
	maxObject := int64(c.cfg.MaxObject)
	class := c.classify.of(req.Name)
	ttl := c.cfg.TTL.ttl(class)
	if sb, ok := f.Body.(ctftp.StreamingBody); ok && sb.Stream() != nil && f.Size >= 0 {
		// The backend passes the file on while it arrives: every caller
		// reads it now, and it is stored once whole, unless it is over
		// max_object (a 40 MB load that a hundred phones upgrading at
		// once share, and nobody keeps). fetch_timeout no longer
		// applies (a firmware load across a WAN may take minutes); the
		// backend's own retransmission timeouts bound a stall, and
		// Close still ends it.
		timer.Stop()
		sf := &streamFill{st: sb.Stream(), sub: cmp.Or(f.Subcluster, req.Subcluster), backend: f.Backend, tooBig: f.Size > maxObject}
		c.mu.Lock()
		fl.stream = sf
		c.mu.Unlock()
		streaming = true
		go c.finishStream(ctx, req, fl, f, sf, class, ttl, func() {
			stopClosing()
			cancel(context.Canceled)
			done()
		})
		return &fillResult{stream: sf, fetched: true}, nil
	}
	var head []byte
	if f.Size <= maxObject {
		head, err = readHead(f.Body, maxObject+1, f.Size)
		if err == nil && f.Size >= 0 && int64(len(head)) <= maxObject && int64(len(head)) != f.Size {
			err = fmt.Errorf("backend announced %d bytes and sent %d", f.Size, len(head))
		}
		if err != nil {
			f.Body.Close()
			lost()
			return failed(err)
		}
	}
	if f.Size > maxObject || int64(len(head)) > maxObject {
		timer.Stop()
		if ctx.Err() != nil {
			f.Body.Close()
			return failed(ctx.Err())
		}
		c.m.fills[fillTooBig].Inc()
		lost() // nothing is kept: the phone will stream it
		c.storeMarker(fl, k, kindTooBig, ttl, false)
		handedOff = c.handOver(callerCtx, ctx, cancel, f, head, h)
		return &fillResult{tooBig: true}, nil
	}
	if err := f.Body.Close(); err != nil {
		c.log.Debug("cache: closing a fully read backend body", "subcluster", req.Subcluster, "file", req.Name, "err", err)
	}
	now = c.now()
	e := &entry{
		key:        k,
		kind:       kindFile,
		class:      class,
		data:       head,
		sub:        f.Subcluster,
		backend:    f.Backend,
		fetched:    now,
		expires:    now.Add(ttl),
		prefetched: req.Prefetch,
	}
	if e.sub == "" {
		e.sub = req.Subcluster
	}
	c.m.fills[fillOK].Inc()
	c.storeFile(fl, e, ttl)
	return &fillResult{e: e, fetched: true}, nil
}

// finishStream waits for the end of a streamed fill and stores the file
// when it arrived whole; release ends the fill. A stream that broke off
// is not stored: the phones reading it got the error, and the next
// request fetches again.
func (c *Cache) finishStream(ctx context.Context, req ctftp.Request, fl *flight, f *ctftp.File, sf *streamFill, class Class, ttl time.Duration, release func()) {
	defer release()
	defer f.Body.Close()
	data, err := sf.st.Wait(ctx)
	if err != nil {
		c.m.fills[fillError].Inc()
		if req.Prefetch {
			c.m.prefetchWasted.Inc()
		}
		arrived, _ := sf.st.Progress()
		c.log.Warn("cache: a streamed fetch broke off; nothing stored", "subcluster", req.Subcluster, "file", req.Name,
			"backend", sf.backend, "arrived", arrived, "size", sf.st.Size(), "err", err)
		return
	}
	if sf.tooBig {
		c.m.fills[fillTooBig].Inc()
		c.log.Debug("cache: streamed file over max_object shared and not kept", "subcluster", req.Subcluster, "file", req.Name, "size", len(data))
		return
	}
	now := c.now()
	c.m.fills[fillOK].Inc()
	c.storeFile(fl, &entry{
		key:        key{req.Subcluster, req.Name},
		kind:       kindFile,
		class:      class,
		data:       data,
		sub:        sf.sub,
		backend:    sf.backend,
		fetched:    now,
		expires:    now.Add(ttl),
		prefetched: req.Prefetch,
	}, ttl)
}

// handOver gives the caller that started the fill a stream of an
// oversized file. From here on the stream is that caller's, as if it had
// opened the file itself: its context bounds it and closing the Body ends
// it; fetch_timeout and Close no longer apply. It reports whether the
// caller took it (false: the caller had left, and the stream is closed).
func (c *Cache) handOver(callerCtx, ctx context.Context, cancel context.CancelCauseFunc, f *ctftp.File, head []byte, h *handoff) bool {
	s := &streamBody{
		Reader: io.MultiReader(bytes.NewReader(head), f.Body),
		body:   f.Body,
		cancel: cancel,
	}
	s.stop = context.AfterFunc(callerCtx, func() { cancel(context.Cause(callerCtx)) })
	out := &ctftp.File{
		Body:       s,
		Size:       f.Size,
		Origin:     ctftp.OriginBackend,
		Subcluster: f.Subcluster,
		Backend:    f.Backend,
	}
	if h.offer(out) {
		return true
	}
	s.Close()
	return false
}

// fetchFailed records what a failed fetch means and decides what the
// waiting callers get.
func (c *Cache) fetchFailed(req ctftp.Request, k key, fl *flight, err error) (*fillResult, error) {
	wrapped := fmt.Errorf("cache: fill subcluster=%q file=%q: %w", req.Subcluster, req.Name, err)
	switch {
	case errors.Is(err, ctftp.ErrNoIdleSlot):
		// Only a prefetch gets it, and nothing was asked of a backend:
		// not a fill, not an outage, no stale copy.
		c.m.prefetchSkipped[skipBusy].Inc()
		return nil, wrapped
	case errors.Is(err, ctftp.ErrNotFound):
		c.m.fills[fillNotFound].Inc()
		c.storeMarker(fl, k, kindNotFound, c.cfg.negativeTTL(c.classify.of(req.Name)), req.Prefetch)
		return nil, wrapped
	case errors.Is(err, ctftp.ErrDenied):
		// A refusal is an answer, not an outage: no stale copy for it.
		c.m.fills[fillDenied].Inc()
		return nil, wrapped
	}
	c.m.fills[fillError].Inc()
	if c.cfg.StaleMaxAge <= 0 {
		return nil, wrapped
	}
	now := c.now()
	c.mu.Lock()
	e := c.files.get(k)
	if e != nil && !now.Before(e.expires.Add(c.cfg.StaleMaxAge)) {
		e = nil
	}
	c.mu.Unlock()
	if e == nil {
		return nil, wrapped
	}
	stale := !now.Before(e.expires)
	if stale {
		c.log.Warn("cache: backend failed, serving a stale copy",
			"subcluster", req.Subcluster, "file", req.Name,
			"expired_for", now.Sub(e.expires), "backend", e.backend, "err", err)
	}
	return &fillResult{e: e, stale: stale}, nil
}

// storeFile keeps e, unless its class is not cached, the positive cache is
// off, or a purge ran since its fill started; then evicts the least
// recently used files until the data fits in max_bytes.
func (c *Cache) storeFile(fl *flight, e *entry, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if fl.purged {
		c.wastedLocked(e)
		return
	}
	if old := c.files.get(e.key); old != nil && !bytes.Equal(old.data, e.data) {
		// The backend changed the file since the copy held (an admin's
		// edit, a regenerated ITL): the reason device files are kept
		// only for a burst window.
		c.m.changed[e.class].Inc()
		c.log.Debug("cache: file changed on the backend", "subcluster", e.key.sub, "file", e.key.name,
			"class", e.class.String(), "old_bytes", len(old.data), "new_bytes", len(e.data),
			"old_fetched", old.fetched, "backend", e.backend)
	}
	if m := c.marks.get(e.key); m != nil {
		c.marks.remove(m)
	}
	if ttl <= 0 || c.cfg.MaxBytes == 0 {
		if old := c.files.get(e.key); old != nil {
			c.files.remove(old)
		}
		c.wastedLocked(e)
		return
	}
	c.files.add(e)
	// e cannot evict itself: it is the newest and max_object <= max_bytes.
	for c.files.bytes > int64(c.cfg.MaxBytes) {
		c.files.remove(c.files.oldest())
		c.m.evictions.Inc()
	}
}

// storeMarker remembers that k is not found or too big for ttl, dropping
// any cached copy of k: the backend's newer answer replaces it. fl is nil
// when the answer came from outside a fill.
func (c *Cache) storeMarker(fl *flight, k key, kd kind, ttl time.Duration, prefetched bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	lost := &entry{prefetched: prefetched}
	if fl != nil && fl.purged {
		c.wastedLocked(lost)
		return
	}
	if old := c.files.get(k); old != nil {
		c.files.remove(old)
	}
	if ttl <= 0 {
		if old := c.marks.get(k); old != nil {
			c.marks.remove(old)
		}
		c.wastedLocked(lost)
		return
	}
	c.marks.add(&entry{key: k, kind: kd, fetched: now, expires: now.Add(ttl), prefetched: prefetched})
	for c.marks.len() > c.cfg.NegativeMax {
		c.marks.remove(c.marks.oldest())
		c.m.evictions.Inc()
	}
}

// Prefetch starts fetching req into the cache for a phone that is about to
// ask for it (routing calls it with the files a phone asks for after the
// one it just asked for) and returns at once. It does nothing when the
// answer is in memory and fresh or a fill for it is already running
// (counted as skipped, reason cached). Otherwise it starts a fill with
// req.Prefetch set, so that the backends serve it only from an idle slot
// (skipped, reason busy, when there is none: ctftp.ErrNoIdleSlot). A phone that
// asks while the prefetch runs joins its fill; one whose request finds
// the prefetch's copy within its class TTL (for device files, the burst
// window) is a hit. With the positive cache off (max_bytes 0) or a zero
// TTL for the file's class, Prefetch does nothing. Every prefetch sent to a backend is counted as issued
// and then, once, as used (a phone got its answer from it) or wasted (it
// expired, was dropped, or failed before any phone asked).
//
// The fill runs on ctx's values, not its cancellation, bounded by
// fetch_timeout and Close, like any fill. Prefetch is safe for concurrent
// use.
func (c *Cache) Prefetch(ctx context.Context, req ctftp.Request) {
	if c.cfg.MaxBytes == 0 || c.cfg.TTL.ttl(c.classify.of(req.Name)) <= 0 {
		// Nothing fetched could be kept for the phone: a prefetch would
		// only add a backend fetch.
		return
	}
	req.Prefetch = true
	k := key{req.Subcluster, req.Name}
	now := c.now()
	c.mu.Lock()
	e := c.lookupLocked(k, now)
	_, flying := c.flights[k]
	closed := c.closed
	c.mu.Unlock()
	switch {
	case closed:
		return
	case e != nil || flying:
		c.m.prefetchSkipped[skipCached].Inc()
		return
	}
	// Nobody takes the fill's answer: an oversized file's stream is
	// closed by the fill at once.
	h := &handoff{gone: true}
	c.group.DoChan(k.String(), func() (any, error) {
		r, err := c.fill(ctx, req, k, h)
		if err != nil {
			return nil, err
		}
		return r, nil
	})
}

// usedLocked counts e's first use by a phone when a prefetch stored it.
func (c *Cache) usedLocked(e *entry) {
	if e.prefetched {
		e.prefetched = false
		c.m.prefetchUsed.Inc()
	}
}

// wastedLocked counts e as a wasted prefetch when a prefetch stored it and
// no phone used it: it expired, left the cache, or was never kept.
func (c *Cache) wastedLocked(e *entry) {
	if e.prefetched {
		e.prefetched = false
		c.m.prefetchWasted.Inc()
	}
}

// Purge forgets every answer whose file name matches glob (path.Match
// syntax, in any sub-cluster), cached files and remembered "not found"
// alike, and returns how many it removed. "" and "*" match everything,
// including names with slashes. A malformed glob matches nothing; callers
// taking globs from users should check them with path.Match first.
// Fills in flight for a matching name finish for their callers but store
// nothing, and later requests start a new fill.
func (c *Cache) Purge(glob string) int {
	if glob == "" || glob == "*" {
		return c.purge(func(key) bool { return true })
	}
	return c.purge(func(k key) bool {
		ok, _ := path.Match(glob, k.name)
		return ok
	})
}

// PurgeSubcluster forgets every answer for sub-cluster name, e.g. when its
// ITL signer changed and every file it signed must be fetched again.
// It returns how many entries it removed.
func (c *Cache) PurgeSubcluster(name string) int {
	return c.purge(func(k key) bool { return k.sub == name })
}

func (c *Cache) purge(match func(key) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.files.removeIf(func(e *entry) bool { return match(e.key) })
	n += c.marks.removeIf(func(e *entry) bool { return match(e.key) })
	for k, fl := range c.flights {
		if match(k) {
			fl.purged = true
			delete(c.flights, k)
			c.group.Forget(k.String())
		}
	}
	return n
}

// Stats is a snapshot of the cache's size and counters.
type Stats struct {
	Entries       int   // cached files, fresh or kept for serve-stale
	Bytes         int64 // their data
	NegEntries    int   // remembered "not found" answers
	TooBigEntries int   // names remembered as larger than max_object

	Hits         uint64 // fresh files served from memory
	NegativeHits uint64 // "not found" served from memory
	Misses       uint64 // every other Open
	StaleServed  uint64 // expired copies served because the backend failed
	Evictions    uint64 // entries dropped to stay within max_bytes or negative_max
	Fills        uint64 // backend fetches the cache made, whatever their result
	FillShared   uint64 // callers that got another caller's fill
	Streamed     uint64 // callers handed an uncached stream of a too-big file
	Changed      uint64 // refills whose bytes differed from the copy held

	PrefetchIssued  uint64 // prefetches sent to a backend
	PrefetchUsed    uint64 // of those, answers a phone got
	PrefetchWasted  uint64 // of those, answers no phone got
	PrefetchSkipped uint64 // prefetches not sent: cached, in flight or no idle slot
}

// Stats returns the current numbers; Hits+NegativeHits+Misses counts
// every Open.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	s := Stats{
		Entries:       c.files.len(),
		Bytes:         c.files.bytes,
		NegEntries:    c.marks.kinds[kindNotFound],
		TooBigEntries: c.marks.kinds[kindTooBig],
	}
	c.mu.Unlock()
	s.Hits = c.m.hits.Get()
	s.NegativeHits = c.m.negHits.Get()
	s.Misses = c.m.misses.Get()
	s.StaleServed = c.m.staleServed.Get()
	s.Evictions = c.m.evictions.Get()
	s.Fills = c.m.fillsTotal()
	s.FillShared = c.m.fillShared.Get()
	s.Streamed = c.m.streamed.Get()
	s.Changed = c.m.changedTotal()
	s.PrefetchIssued = c.m.prefetchIssued.Get()
	s.PrefetchUsed = c.m.prefetchUsed.Get()
	s.PrefetchWasted = c.m.prefetchWasted.Get()
	for _, ctr := range c.m.prefetchSkipped {
		s.PrefetchSkipped += ctr.Get()
	}
	return s
}

// Close cancels the fills in flight (their callers get ErrClosed, or a
// stale copy) and waits for them to return. Afterwards Open still answers
// from memory, and a miss fails with ErrClosed. Streams already handed to
// a caller are that caller's to close. Close is idempotent and always
// returns nil.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stopClosing()
	c.running.Wait()
	return nil
}

// file returns a File reading e's bytes. Every caller gets its own reader
// over the one immutable slice, seekable so the front end can answer tsize.
func (e *entry) file(origin ctftp.Origin) *ctftp.File {
	// The File and its reader in one allocation: a hit allocates nothing
	// else.
	h := new(hitFile)
	h.body.Reset(e.data)
	h.file = ctftp.File{Body: &h.body, Size: int64(len(e.data)), Origin: origin, Subcluster: e.sub, Backend: e.backend}
	return &h.file
}

// hitFile is what a cache hit hands out.
type hitFile struct {
	file ctftp.File
	body memBody
}

// memBody is a ReadCloser and Seeker over cached bytes. Close is a no-op:
// the bytes belong to the cache.
type memBody struct{ bytes.Reader }

func (*memBody) Close() error { return nil }

// streamBody is an oversized file on its way from a backend: the head the
// fill read, then the rest. Closing it closes the backend body and cancels
// the context the backend was opened with.
type streamBody struct {
	io.Reader
	body   io.Closer
	cancel context.CancelCauseFunc
	stop   func() bool // unregisters the caller-context hook
	once   sync.Once
	err    error
}

// Stream is the backend's stream when the body wraps one (never shared:
// this caller's alone), so the front end knows its reads may wait.
func (s *streamBody) Stream() *ctftp.Stream {
	if sb, ok := s.body.(ctftp.StreamingBody); ok {
		return sb.Stream()
	}
	return nil
}

func (s *streamBody) Close() error {
	s.once.Do(func() {
		s.stop()
		s.err = s.body.Close()
		s.cancel(context.Canceled)
	})
	return s.err
}

// readHead reads r up to limit bytes. size, when known, sizes the buffer
// once; the result is trimmed so a cached slice does not pin spare capacity.
func readHead(r io.Reader, limit, size int64) ([]byte, error) {
	var buf bytes.Buffer
	if size >= 0 && size < limit {
		buf.Grow(int(size) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(r, limit)); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	if cap(b)-len(b) > len(b)/8+bytes.MinRead {
		b = bytes.Clone(b)
	}
	return b, nil
}

// handoff carries what a fill owes only the caller that started it: the
// knowledge that it led, and the stream of an oversized file. The mutex
// settles the race between the fill offering a stream and that caller
// giving up at the same moment: exactly one of them closes it.
type handoff struct {
	mu     sync.Mutex
	led    bool
	gone   bool // the caller took its result or stopped waiting
	stream *ctftp.File
}

func (h *handoff) lead() {
	h.mu.Lock()
	h.led = true
	h.mu.Unlock()
}

// offer hands f to the caller; false means it left and f is the fill's to close.
func (h *handoff) offer(f *ctftp.File) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone {
		return false
	}
	h.stream = f
	return true
}

// take returns whether the caller led the fill, and its stream if any.
func (h *handoff) take() (bool, *ctftp.File) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gone = true
	f := h.stream
	h.stream = nil
	return h.led, f
}

// abandon is called when the caller stops waiting; it closes a stream
// that was already offered.
func (h *handoff) abandon() {
	h.mu.Lock()
	h.gone = true
	f := h.stream
	h.stream = nil
	h.mu.Unlock()
	if f != nil {
		f.Body.Close()
	}
}
