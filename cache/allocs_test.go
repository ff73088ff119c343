package cache

import (
	"context"
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
