package cache

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/ctftp/ctftp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeBackend is a counting, optionally blocking ctftp.Source. Create it
// inside the synctest bubble that uses it, so its gate belongs to the
// bubble.
type fakeBackend struct {
	mu    sync.Mutex
	files map[key]string // contents by sub-cluster and name
	errs  map[key]error  // answers that fail instead
	err   error          // when set, every Open fails with it (an outage)
	calls map[key]int
	gate  chan struct{} // when non-nil, Open waits for it to close or for ctx
	// ctxErrs records ctx.Err() as each Open saw it after the gate.
	ctxErrs []error
	// announce, when set, is the File.Size reported instead of the real
	// length (e.g. -1 for unknown, or a lie).
	announce map[key]int64

	opened atomic.Int64 // bodies handed out
	closed atomic.Int64 // bodies closed
}

func newFake() *fakeBackend {
	return &fakeBackend{
		files:    make(map[key]string),
		errs:     make(map[key]error),
		calls:    make(map[key]int),
		announce: make(map[key]int64),
	}
}

func (b *fakeBackend) put(sub, name, data string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.files[key{sub, name}] = data
}

func (b *fakeBackend) remove(sub, name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.files, key{sub, name})
}

func (b *fakeBackend) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err = err
}

// block makes the next Opens wait until the returned func is called.
func (b *fakeBackend) block() (release func()) {
	g := make(chan struct{})
	b.mu.Lock()
	b.gate = g
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			if b.gate == g {
				b.gate = nil
			}
			b.mu.Unlock()
			close(g)
		})
	}
}

func (b *fakeBackend) count(sub, name string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[key{sub, name}]
}

func (b *fakeBackend) total() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.calls {
		n += c
	}
	return n
}

func (b *fakeBackend) Open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	k := key{req.Subcluster, req.Name}
	b.mu.Lock()
	b.calls[k]++
	gate := b.gate
	b.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, fmt.Errorf("fake backend: %w", ctx.Err())
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ctxErrs = append(b.ctxErrs, ctx.Err())
	if b.err != nil {
		return nil, fmt.Errorf("fake backend: %w", b.err)
	}
	if err := b.errs[k]; err != nil {
		return nil, fmt.Errorf("fake backend: %w", err)
	}
	data, ok := b.files[k]
	if !ok {
		return nil, fmt.Errorf("fake backend: %q: %w", req.Name, ctftp.ErrNotFound)
	}
	size := int64(len(data))
	if n, ok := b.announce[k]; ok {
		size = n
	}
	b.opened.Add(1)
	return &ctftp.File{
		Body:       &countingBody{Reader: strings.NewReader(data), closed: &b.closed},
		Size:       size,
		Origin:     ctftp.OriginBackend,
		Subcluster: req.Subcluster,
		Backend:    "backend-" + req.Subcluster,
	}, nil
}

// countingBody is deliberately not a Seeker: the cache must not need one.
type countingBody struct {
	io.Reader
	closed *atomic.Int64
	once   sync.Once
}

func (c *countingBody) Close() error {
	c.once.Do(func() { c.closed.Add(1) })
	return nil
}

// testConfig is DefaultConfig with sizes small enough to reason about.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.MaxBytes = 1 << 10
	cfg.MaxObject = 100
	return cfg
}

func newTestCache(t *testing.T, next ctftp.Source, cfg Config) *Cache {
	t.Helper()
	c, err := New(next, cfg, Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// read opens req and returns the body's bytes and the File.
func read(t *testing.T, c *Cache, ctx context.Context, sub, name string) (string, *ctftp.File, error) {
	t.Helper()
	f, err := c.Open(ctx, ctftp.Request{Name: name, Subcluster: sub, Mode: "octet"})
	if err != nil {
		return "", nil, err
	}
	defer f.Body.Close()
	b, err := io.ReadAll(f.Body)
	if err != nil {
		t.Fatalf("reading %s/%s: %v", sub, name, err)
	}
	return string(b), f, nil
}

func mustRead(t *testing.T, c *Cache, sub, name string) (string, *ctftp.File) {
	t.Helper()
	s, f, err := read(t, c, t.Context(), sub, name)
	if err != nil {
		t.Fatalf("Open %s/%s: %v", sub, name, err)
	}
	return s, f
}
