package routing_test

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/routing"
)

// Route explains a decision without sending anything, as `ctftp route`
// does.
func ExampleRouter_Route() {
	cfg := routing.DefaultConfig()
	cfg.Rules = []routing.Rule{
		{Client: "10.1.0.0/16", Subcluster: "east"},
		{MAC: []string{"0011215A1AE3"}, Subcluster: "west"},
		{MACPrefix: "00AABB", Subcluster: "west"},
	}
	r, err := routing.New(cfg, []string{"east", "west"}, routing.Options{})
	if err != nil {
		panic(err)
	}
	for _, req := range []ctftp.Request{
		{Name: "SEP0011215A1AE3.cnf.xml.sgn", Client: netip.MustParseAddrPort("10.1.4.20:49152")},
		{Name: "ITLSEP00AABB123456.tlv", Client: netip.MustParseAddrPort("10.7.0.9:49152")},
		{Name: "SEP001122334455.cnf.xml.sgn"},
	} {
		fmt.Println(r.Route(req).Reason)
	}
	// Output:
	// rules[0] (client 10.1.4.20 in 10.1.0.0/16) -> east
	// rules[2] (mac 00AABB123456 has mac_prefix 00AABB) -> west
	// MAC 001122334455: no rule matched, no learned route: parallel fan-out over east, west
}

// A fan-out serves the sub-cluster that has the phone and learns the route.
func ExampleNewForwarder() {
	r, err := routing.New(routing.DefaultConfig(), []string{"east", "west"}, routing.Options{})
	if err != nil {
		panic(err)
	}
	// Stands for the cache in front of the backends: only west knows the phone.
	next := ctftp.SourceFunc(func(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
		if req.Subcluster != "west" {
			return nil, fmt.Errorf("%s: %w", req.Subcluster, ctftp.ErrNotFound)
		}
		return &ctftp.File{Body: io.NopCloser(strings.NewReader("<device/>")), Size: 9}, nil
	})
	src := routing.NewForwarder(r, next, routing.Options{})

	f, err := src.Open(context.Background(), ctftp.Request{Name: "SEP0011215A1AE3.cnf.xml"})
	if err != nil {
		panic(err)
	}
	f.Body.Close()
	fmt.Println("served by", f.Subcluster)
	fmt.Println(r.Route(ctftp.Request{Name: "ITLSEP0011215A1AE3.tlv"}).Kind)
	// Output:
	// served by west
	// learned
}
