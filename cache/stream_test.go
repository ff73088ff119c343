package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/ctftp/ctftp"
)

// streamingBackend answers every Open with a ctftp.Stream the test
// writes, as the cluster Set does for a file over stream_over: the stream
// ends with the Open's context, and closing the body ends it too.
type streamingBackend struct {
	size int64
	mu   sync.Mutex
	open []*ctftp.Stream
}

func (b *streamingBackend) Open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	st := ctftp.NewStream(b.size)
	context.AfterFunc(ctx, func() { st.Finish(context.Cause(ctx)) })
	b.mu.Lock()
	b.open = append(b.open, st)
	b.mu.Unlock()
	return &ctftp.File{
		Body:       st.NewReader(func() { st.Finish(errors.New("reader closed")) }),
		Size:       b.size,
		Origin:     ctftp.OriginBackend,
		Subcluster: req.Subcluster,
		Backend:    "backend-east",
	}, nil
}

func (b *streamingBackend) streams() []*ctftp.Stream {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*ctftp.Stream(nil), b.open...)
}

// streamCache is a cache in front of a streamingBackend of files of size
// bytes.
func streamCache(t *testing.T, size int64) (*streamingBackend, *Cache) {
	b := &streamingBackend{size: size}
	cfg := DefaultConfig()
	cfg.FetchTimeout = 50 * time.Millisecond // shorter than the streams take
	return b, newTestCache(t, b, cfg)
}

var loadReq = ctftp.Request{Name: "kern88xx.sbn", Subcluster: "east", Mode: "octet"}

// openLoad opens loadReq on c.
func openLoad(t *testing.T, c *Cache) *ctftp.File {
	t.Helper()
	f, err := c.Open(t.Context(), loadReq)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitFlightsEnded waits until no fill is in flight: a stream's flight
// stays (and is joined) until its end is recorded.
func waitFlightsEnded(t *testing.T, c *Cache) {
	t.Helper()
	waitUntil(t, "the fills to end", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.flights) == 0
	})
}

// Every phone asking for a file while it streams in reads the one fetch,
// whatever part has arrived, longer than fetch_timeout; once whole it is
// stored, and the next phone gets it from memory.
func TestStreamedFillIsShared(t *testing.T) {
	load := bytes.Repeat([]byte("kern88xx.sbn "), 20_000)
	b, c := streamCache(t, int64(len(load)))
	first := openLoad(t, c)
	defer first.Body.Close()
	if first.Origin != ctftp.OriginBackend || first.Size != int64(len(load)) {
		t.Errorf("leader: origin %s size %d", first.Origin, first.Size)
	}
	st := b.streams()[0]
	st.Write(load[:100_000])
	time.Sleep(100 * time.Millisecond) // past fetch_timeout: a stream is not bound by it
	second := openLoad(t, c)
	defer second.Body.Close()
	if second.Origin != ctftp.OriginCache {
		t.Errorf("joiner: origin %s", second.Origin)
	}
	head := make([]byte, 100_000)
	if _, err := second.Body.(io.ReaderAt).ReadAt(head, 0); err != nil || !bytes.Equal(head, load[:100_000]) {
		t.Fatalf("joiner reading what arrived: %v", err)
	}
	if n := len(b.streams()); n != 1 {
		t.Fatalf("%d backend fetches for two phones", n)
	}
	var wg sync.WaitGroup
	for _, f := range []*ctftp.File{first, second} {
		wg.Go(func() {
			got, err := io.ReadAll(f.Body)
			if err != nil || !bytes.Equal(got, load) {
				t.Errorf("read %d of %d bytes: %v", len(got), len(load), err)
			}
		})
	}
	st.Write(load[100_000:])
	st.Finish(nil)
	wg.Wait()

	waitUntil(t, "the file to be stored", func() bool { return c.Stats().Entries == 1 })
	got, f := mustRead(t, c, "east", "kern88xx.sbn")
	if got != string(load) || f.Origin != ctftp.OriginCache {
		t.Errorf("after the stream: %d bytes, origin %s", len(got), f.Origin)
	}
	if _, ok := f.Body.(*ctftp.StreamReader); ok {
		t.Error("a stored file is still read from the stream")
	}
	if n := len(b.streams()); n != 1 {
		t.Errorf("%d backend fetches in all, want 1", n)
	}
	if s := c.Stats(); s.Fills != 1 || s.FillShared != 1 || s.Bytes != int64(len(load)) {
		t.Errorf("Stats %+v", s)
	}
}

// A stream that breaks off fails every reader and leaves nothing stored:
// the next phone fetches again.
func TestBrokenStreamIsNotStored(t *testing.T) {
	b, c := streamCache(t, 1000)
	f := openLoad(t, c)
	defer f.Body.Close()
	cut := errors.New("backend stopped answering")
	b.streams()[0].Write(make([]byte, 300))
	b.streams()[0].Finish(cut)
	if _, err := io.ReadAll(f.Body); !errors.Is(err, cut) {
		t.Errorf("reader: %v, want the backend's error", err)
	}
	waitFlightsEnded(t, c)
	if s := c.Stats(); s.Entries != 0 {
		t.Errorf("a broken stream was stored: %+v", s)
	}
	openLoad(t, c).Body.Close()
	if n := len(b.streams()); n != 2 {
		t.Errorf("backend fetches: %d, want a new one after the break", n)
	}
}

// Close ends a stream in flight (its readers get an error) and waits for
// it; a purge during a stream keeps what arrives from being stored.
func TestStreamCloseAndPurge(t *testing.T) {
	b, c := streamCache(t, 1000)
	f := openLoad(t, c)
	if n := c.Purge("*.sbn"); n != 0 {
		t.Errorf("purge removed %d stored entries", n)
	}
	b.streams()[0].Write(make([]byte, 1000))
	b.streams()[0].Finish(nil)
	io.ReadAll(f.Body)
	f.Body.Close()
	waitUntil(t, "the fill to end", func() bool { return c.m.fills[fillOK].Get() == 1 })
	if s := c.Stats(); s.Entries != 0 {
		t.Errorf("stored after a purge: %+v", s)
	}

	f = openLoad(t, c)
	defer f.Body.Close()
	c.Close()
	if got, err := io.ReadAll(f.Body); err == nil {
		t.Errorf("reader after Close: %d bytes and no error", len(got))
	}
}

// A stream over max_object is shared by the phones asking while it
// arrives (a load a hundred phones upgrading at once would otherwise
// each fetch) and not kept: the next phone after it fetches again.
func TestStreamOverMaxObjectIsSharedNotKept(t *testing.T) {
	b := &streamingBackend{size: 1000}
	cfg := DefaultConfig()
	cfg.MaxObject = 100
	c := newTestCache(t, b, cfg)
	first, second := openLoad(t, c), openLoad(t, c)
	defer first.Body.Close()
	defer second.Body.Close()
	if n := len(b.streams()); n != 1 {
		t.Fatalf("%d backend fetches for two phones at once, want 1", n)
	}
	b.streams()[0].Write(make([]byte, 1000))
	b.streams()[0].Finish(nil)
	for _, f := range []*ctftp.File{first, second} {
		if got, err := io.ReadAll(f.Body); err != nil || len(got) != 1000 {
			t.Errorf("read %d bytes, %v", len(got), err)
		}
	}
	waitFlightsEnded(t, c)
	if n := c.m.fills[fillTooBig].Get(); n != 1 {
		t.Errorf("too-big fills: %d, want 1", n)
	}
	if s := c.Stats(); s.Entries != 0 || s.Streamed != 2 {
		t.Errorf("Stats %+v: want nothing kept, 2 callers streamed", s)
	}
	openLoad(t, c).Body.Close()
	if n := len(b.streams()); n != 2 {
		t.Errorf("%d backend fetches, want a new one after the shared stream ended", n)
	}
}
