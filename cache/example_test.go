package cache_test

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/cache"
)

func ExampleNew() {
	// A backend that counts its fetches.
	fetches := 0
	backend := ctftp.SourceFunc(func(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
		fetches++
		if req.Name != "ITLFile.tlv" {
			return nil, fmt.Errorf("%q: %w", req.Name, ctftp.ErrNotFound)
		}
		return &ctftp.File{Body: io.NopCloser(strings.NewReader("itl")), Size: 3, Origin: ctftp.OriginBackend, Subcluster: req.Subcluster}, nil
	})

	c, err := cache.New(backend, cache.DefaultConfig(), cache.Options{Metrics: metrics.NewSet()})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	ctx := context.Background()
	for range 3 {
		f, err := c.Open(ctx, ctftp.Request{Name: "ITLFile.tlv", Subcluster: "east"})
		if err != nil {
			panic(err)
		}
		f.Body.Close()
		fmt.Println(f.Origin)
	}
	for range 2 {
		_, err := c.Open(ctx, ctftp.Request{Name: "CTLSEP0011215A1AE3.tlv", Subcluster: "east"})
		fmt.Println(err)
	}
	fmt.Println("backend fetches:", fetches)
	// Output:
	// backend
	// cache
	// cache
	// cache: fill subcluster="east" file="CTLSEP0011215A1AE3.tlv": "CTLSEP0011215A1AE3.tlv": file not found
	// cache: subcluster="east" file="CTLSEP0011215A1AE3.tlv": remembered: file not found
	// backend fetches: 2
}
