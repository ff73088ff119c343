package cache

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/ctftp/ctftp"
)

// benchCache returns a cache holding n configs of about the size a phone
// fetches (7.6 KB signed config), and their requests.
func benchCache(b *testing.B, n int) (*Cache, []ctftp.Request) {
	b.Helper()
	fake := newFake()
	reqs := make([]ctftp.Request, n)
	body := strings.Repeat("x", 7600)
	for i := range reqs {
		reqs[i] = ctftp.Request{Name: fmt.Sprintf("SEP%012X.cnf.xml.sgn", i), Subcluster: "east", Mode: "octet"}
		fake.put("east", reqs[i].Name, body)
	}
	cfg := DefaultConfig()
	c, err := New(fake, cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	for _, r := range reqs {
		f, err := c.Open(b.Context(), r)
		if err != nil {
			b.Fatal(err)
		}
		f.Body.Close()
	}
	return c, reqs
}

func BenchmarkHit(b *testing.B) {
	c, reqs := benchCache(b, 1000)
	ctx := b.Context()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f, err := c.Open(ctx, reqs[i%len(reqs)])
		if err != nil {
			b.Fatal(err)
		}
		f.Body.Close()
		i++
	}
	if s := c.Stats(); s.Fills != uint64(len(reqs)) {
		b.Fatalf("benchmark caused fills: %+v", s)
	}
}

// BenchmarkHitParallel is a boot storm on a warm cache: every core opens
// (and reads) cached configs at once, all through the one mutex.
func BenchmarkHitParallel(b *testing.B) {
	c, reqs := benchCache(b, 1000)
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			f, err := c.Open(ctx, reqs[i%len(reqs)])
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, f.Body)
			f.Body.Close()
			i++
		}
	})
}
