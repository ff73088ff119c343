package cache

import (
	"context"
	"errors"
	"testing"

	"github.com/ctftp/ctftp"
)

// TestHitAllocs: a cache hit allocates its answer (the File and its
// reader, in one object) and nothing else: the lookup, the LRU touch and
// the counters allocate nothing.
func TestHitAllocs(t *testing.T) {
	b := newFake()
	b.put("east", "SEP001122334455.cnf.xml.sgn", "signed config")
	c := newTestCache(t, b, testConfig())
	mustRead(t, c, "east", "SEP001122334455.cnf.xml.sgn")
	req := ctftp.Request{Name: "SEP001122334455.cnf.xml.sgn", Subcluster: "east", Mode: "octet"}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		f, err := c.Open(ctx, req)
		if err != nil || f.Origin != ctftp.OriginCache {
			t.Fatalf("%v %v", f, err)
		}
		f.Body.Close()
	})
	if allocs > 1 {
		t.Errorf("a cache hit allocates %.1f objects, want 1", allocs)
	}
	if b.count("east", "SEP001122334455.cnf.xml.sgn") != 1 {
		t.Errorf("the hits went to the backend")
	}
}

// TestPeek: Peek answers from memory only: a miss asks no backend and
// counts nothing; a fresh file and a remembered "not found" are counted
// as Open counts them.
func TestPeek(t *testing.T) {
	b := newFake()
	b.put("east", "a.tlv", "A")
	c := newTestCache(t, b, testConfig())
	a := ctftp.Request{Name: "a.tlv", Subcluster: "east", Mode: "octet"}
	gone := ctftp.Request{Name: "gone.tlv", Subcluster: "east", Mode: "octet"}
	for _, r := range []ctftp.Request{a, gone} {
		if f, ok, err := c.Peek(r); ok || f != nil || err != nil {
			t.Fatalf("Peek(%s) before any fill = %v, %v, %v", r.Name, f, ok, err)
		}
	}
	if b.total() != 0 || c.Stats().Misses != 0 {
		t.Fatalf("Peek asked the backend (%d) or counted a miss (%d)", b.total(), c.Stats().Misses)
	}
	mustRead(t, c, "east", "a.tlv")
	if _, _, err := read(t, c, t.Context(), "east", "gone.tlv"); !errors.Is(err, ctftp.ErrNotFound) {
		t.Fatal(err)
	}
	f, ok, err := c.Peek(a)
	if !ok || err != nil || f.Origin != ctftp.OriginCache || f.Size != 1 {
		t.Fatalf("Peek(a.tlv) = %v, %v, %v", f, ok, err)
	}
	f.Body.Close()
	if _, ok, err := c.Peek(gone); !ok || !errors.Is(err, ctftp.ErrNotFound) {
		t.Fatalf("Peek(gone.tlv) = %v, %v", ok, err)
	}
	if st := c.Stats(); st.Hits != 1 || st.NegativeHits != 1 || b.total() != 2 {
		t.Errorf("stats %+v, backend asked %d times", st, b.total())
	}
}
