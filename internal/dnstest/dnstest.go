package dnstest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// SRV is one SRV record's data.
type SRV struct {
	Target   string
	Port     uint16
	Priority uint16
	Weight   uint16
}

// negativeTTL is the SOA minimum sent with NXDOMAIN and empty answers.
const negativeTTL = 1

// Server is a loopback DNS server answering from records tests set. Its
// methods are safe for concurrent use.
type Server struct {
	t    testing.TB
	pc   net.PacketConn
	srv  *dns.Server
	done chan struct{}
	once sync.Once

	mu       sync.Mutex
	records  map[rrKey][]dns.RR
	servfail bool
	queries  map[rrKey]int
	total    int
}

type rrKey struct {
	name  string // lower-case FQDN
	qtype uint16
}

func key(name string, qtype uint16) rrKey {
	return rrKey{strings.ToLower(dns.Fqdn(name)), qtype}
}

// NewServer starts a server with no records on 127.0.0.1 and a free UDP
// port and registers Close with t.Cleanup.
func NewServer(t testing.TB) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	s := &Server{
		t:       t,
		pc:      pc,
		done:    make(chan struct{}),
		records: map[rrKey][]dns.RR{},
		queries: map[rrKey]int{},
	}
	started := make(chan struct{})
	s.srv = &dns.Server{
		PacketConn:        pc,
		Handler:           dns.HandlerFunc(s.serve),
		NotifyStartedFunc: func() { close(started) },
	}
	go func() {
		defer close(s.done)
		s.srv.ActivateAndServe()
	}()
	select {
	case <-started:
	case <-s.done:
		t.Fatal("dnstest: server did not start")
	}
	t.Cleanup(s.Close)
	return s
}

// Addr is the server's address as "127.0.0.1:port".
func (s *Server) Addr() string { return s.pc.LocalAddr().String() }

// Close stops the server. It is idempotent.
func (s *Server) Close() {
	s.once.Do(func() {
		s.srv.Shutdown()
		<-s.done
	})
}

// SetA replaces name's A records; no addresses removes them.
func (s *Server) SetA(name string, ttl uint32, ips ...string) {
	s.t.Helper()
	var rrs []dns.RR
	for _, ip := range ips {
		a := s.parse(ip)
		if !a.Is4() {
			s.t.Fatalf("dnstest: SetA(%q): %s is not IPv4", name, ip)
		}
		rrs = append(rrs, &dns.A{Hdr: hdr(name, dns.TypeA, ttl), A: a.AsSlice()})
	}
	s.set(key(name, dns.TypeA), rrs)
}

// SetAAAA replaces name's AAAA records; no addresses removes them.
func (s *Server) SetAAAA(name string, ttl uint32, ips ...string) {
	s.t.Helper()
	var rrs []dns.RR
	for _, ip := range ips {
		a := s.parse(ip)
		if !a.Is6() {
			s.t.Fatalf("dnstest: SetAAAA(%q): %s is not IPv6", name, ip)
		}
		rrs = append(rrs, &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA, ttl), AAAA: a.AsSlice()})
	}
	s.set(key(name, dns.TypeAAAA), rrs)
}

// SetSRV replaces name's SRV records; no targets removes them.
func (s *Server) SetSRV(name string, ttl uint32, targets ...SRV) {
	var rrs []dns.RR
	for _, tg := range targets {
		rrs = append(rrs, &dns.SRV{Hdr: hdr(name, dns.TypeSRV, ttl), Target: dns.Fqdn(tg.Target),
			Port: tg.Port, Priority: tg.Priority, Weight: tg.Weight})
	}
	s.set(key(name, dns.TypeSRV), rrs)
}

// SetServfail makes every answer SERVFAIL while on is true, like a
// resolver that cannot reach the authority.
func (s *Server) SetServfail(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail = on
}

// Queries counts the questions received for name and qtype (dns.TypeA,
// dns.TypeAAAA, dns.TypeSRV, ...).
func (s *Server) Queries(name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[key(name, qtype)]
}

// TotalQueries counts every question received.
func (s *Server) TotalQueries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

func (s *Server) parse(ip string) netip.Addr {
	s.t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil {
		s.t.Fatalf("dnstest: %v", err)
	}
	return a.Unmap()
}

func hdr(name string, qtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: qtype, Class: dns.ClassINET, Ttl: ttl}
}

func (s *Server) set(k rrKey, rrs []dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(rrs) == 0 {
		delete(s.records, k)
		return
	}
	s.records[k] = rrs
}

// serve answers from the records: the records of the asked type, or an
// empty NOERROR when the name has records of other types only, or
// NXDOMAIN; negative answers carry an SOA so resolvers know how long to
// remember them.
func (s *Server) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	k := key(q.Name, q.Qtype)
	s.mu.Lock()
	s.queries[k]++
	s.total++
	servfail := s.servfail
	rrs := s.records[k]
	exists := false
	for other := range s.records {
		if other.name == k.name {
			exists = true
			break
		}
	}
	for _, rr := range rrs {
		m.Answer = append(m.Answer, dns.Copy(rr))
	}
	s.mu.Unlock()
	switch {
	case servfail:
		m.Answer = nil
		m.Rcode = dns.RcodeServerFailure
	case len(m.Answer) == 0:
		if !exists {
			m.Rcode = dns.RcodeNameError
		}
		m.Ns = []dns.RR{&dns.SOA{Hdr: hdr(q.Name, dns.TypeSOA, negativeTTL), Ns: "ns.test.", Mbox: "admin.test.",
			Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: negativeTTL}}
	}
	w.WriteMsg(m)
}
