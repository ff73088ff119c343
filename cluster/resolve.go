package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Resolver looks up backend names. A lookup that answers "no such name"
// or "no records" returns an empty list and a nil error: that is an
// answer, and the backends behind the name go away. An error means the
// question could not be answered (resolver unreachable, SERVFAIL); the
// Set then keeps the addresses it had. Implementations must be safe for
// concurrent use.
type Resolver interface {
	// LookupHost returns the IPv4 and IPv6 addresses of host (a name
	// without trailing dot) and how long they may be used.
	LookupHost(ctx context.Context, host string) ([]netip.Addr, time.Duration, error)
	// LookupSRV returns the SRV records of name and how long they may be
	// used.
	LookupSRV(ctx context.Context, name string) ([]SRV, time.Duration, error)
}

// SRV is one SRV record, a value.
type SRV struct {
	Target   string // host name, no trailing dot
	Port     uint16
	Priority uint16
	Weight   uint16
}

// sortSRV orders records the way backends are tried: lowest priority
// first, then highest weight, then by name. RFC 2782 asks for a weighted
// random pick within a priority; a fixed order is used instead so that
// "config order = priority" also holds for SRV backends and traffic does
// not move between equal targets on every lookup.
func sortSRV(rs []SRV) {
	slices.SortStableFunc(rs, func(a, b SRV) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(b.Weight, a.Weight),
			cmp.Compare(a.Target, b.Target), cmp.Compare(a.Port, b.Port))
	})
}

// dnsResolver asks DNS servers directly with miekg/dns, so that TTLs are
// known (the standard library's resolver hides them). It is safe for
// concurrent use.
type dnsResolver struct {
	servers []string // "ip:port", asked in order
	udp     *dns.Client
	tcp     *dns.Client
}

var _ Resolver = (*dnsResolver)(nil)

// newDNSResolver builds a resolver for cfg; with no servers configured it
// reads /etc/resolv.conf.
func newDNSResolver(cfg DNSConfig) (*dnsResolver, error) {
	return newDNSResolverFrom(cfg, "/etc/resolv.conf")
}

func newDNSResolverFrom(cfg DNSConfig, resolvConf string) (*dnsResolver, error) {
	r := &dnsResolver{
		udp: &dns.Client{Net: "udp", Timeout: cfg.Timeout},
		tcp: &dns.Client{Net: "tcp", Timeout: cfg.Timeout},
	}
	for i, s := range cfg.Servers {
		hp, err := parseDNSServer(s)
		if err != nil {
			return nil, fmt.Errorf("dns.servers[%d]: %w", i, err)
		}
		r.servers = append(r.servers, hp)
	}
	if len(r.servers) == 0 {
		cc, err := dns.ClientConfigFromFile(resolvConf)
		if err != nil {
			return nil, fmt.Errorf("dns: no dns.servers configured and %s unreadable: %w", resolvConf, err)
		}
		for _, s := range cc.Servers {
			r.servers = append(r.servers, net.JoinHostPort(s, cc.Port))
		}
		if len(r.servers) == 0 {
			return nil, fmt.Errorf("dns: no dns.servers configured and no nameserver in %s", resolvConf)
		}
	}
	return r, nil
}

// LookupHost asks for A and AAAA at the same time. One family failing
// while the other answers is not an error: a backend reachable over IPv4
// is usable while the AAAA query times out. Addresses are sorted so the
// order, which is the order they are tried in, does not rotate with a
// round-robin DNS server.
func (r *dnsResolver) LookupHost(ctx context.Context, host string) ([]netip.Addr, time.Duration, error) {
	type result struct {
		addrs []netip.Addr
		ttl   time.Duration
		err   error
	}
	var res [2]result
	var wg sync.WaitGroup
	for i, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		wg.Go(func() {
			m, err := r.exchange(ctx, host, qt)
			if err != nil {
				res[i].err = err
				return
			}
			res[i].ttl = answerTTL(m)
			for _, rr := range m.Answer {
				switch rr := rr.(type) {
				case *dns.A:
					if a, ok := netip.AddrFromSlice(rr.A); ok {
						res[i].addrs = append(res[i].addrs, a.Unmap())
					}
				case *dns.AAAA:
					if a, ok := netip.AddrFromSlice(rr.AAAA); ok {
						res[i].addrs = append(res[i].addrs, a)
					}
				}
			}
		})
	}
	wg.Wait()
	var addrs []netip.Addr
	var ttl time.Duration
	var errs []error
	answered := false
	for _, x := range res {
		if x.err != nil {
			errs = append(errs, x.err)
			continue
		}
		if !answered || x.ttl < ttl {
			ttl = x.ttl
		}
		answered = true
		addrs = append(addrs, x.addrs...)
	}
	if len(addrs) == 0 && len(errs) > 0 {
		return nil, 0, errors.Join(errs...)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return slices.Compact(addrs), ttl, nil
}

// LookupSRV asks for name's SRV records. A target of "." means the
// service is decidedly not offered there (RFC 2782) and is left out.
func (r *dnsResolver) LookupSRV(ctx context.Context, name string) ([]SRV, time.Duration, error) {
	m, err := r.exchange(ctx, name, dns.TypeSRV)
	if err != nil {
		return nil, 0, err
	}
	var out []SRV
	for _, rr := range m.Answer {
		s, ok := rr.(*dns.SRV)
		if !ok || s.Target == "." || s.Target == "" {
			continue
		}
		out = append(out, SRV{Target: trimDot(s.Target), Port: s.Port, Priority: s.Priority, Weight: s.Weight})
	}
	sortSRV(out)
	return out, answerTTL(m), nil
}

// exchange asks each server in turn until one answers with NOERROR or
// NXDOMAIN. A truncated UDP answer is asked again over TCP.
func (r *dnsResolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	var errs []error
	for _, srv := range r.servers {
		m, _, err := r.udp.ExchangeContext(ctx, q, srv)
		if err == nil && m.Truncated {
			m, _, err = r.tcp.ExchangeContext(ctx, q, srv)
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", srv, err))
		case m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError:
			return m, nil
		default:
			errs = append(errs, fmt.Errorf("%s: %s", srv, rcodeName(m.Rcode)))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("dns: %s %s: %w", name, dns.TypeToString[qtype], errors.Join(errs...))
}

// answerTTL is how long m may be used: the smallest TTL in its answer
// section, or for a negative answer the SOA's negative TTL (RFC 2308),
// or 0 (the caller applies dns.min_ttl).
func answerTTL(m *dns.Msg) time.Duration {
	var ttl uint32
	found := false
	for _, rr := range m.Answer {
		if t := rr.Header().Ttl; !found || t < ttl {
			ttl, found = t, true
		}
	}
	if !found {
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl, found = min(soa.Hdr.Ttl, soa.Minttl), true
			}
		}
	}
	return time.Duration(ttl) * time.Second
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "rcode " + strconv.Itoa(rc)
}

func trimDot(s string) string {
	if len(s) > 1 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}
