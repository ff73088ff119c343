package dnstest

import (
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ask(t *testing.T, s *Server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Timeout: 2 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	m, _, err := c.Exchange(q, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAnswers(t *testing.T) {
	s := NewServer(t)
	s.SetA("tftp.east.test", 1, "127.0.0.1", "127.0.0.2")
	s.SetAAAA("tftp.east.test", 2, "::1")
	s.SetSRV("_tftp._udp.east.test", 3, SRV{Target: "tftp.east.test", Port: 1069, Priority: 10, Weight: 5})

	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		rcode     int
		answers   int
		ttl       uint32
		negative  bool
		checkData func(t *testing.T, rrs []dns.RR)
	}{
		{name: "A", qname: "tftp.east.test", qtype: dns.TypeA, answers: 2, ttl: 1,
			checkData: func(t *testing.T, rrs []dns.RR) {
				if a := rrs[0].(*dns.A).A.String(); a != "127.0.0.1" {
					t.Errorf("first A = %s", a)
				}
			}},
		{name: "AAAA", qname: "TFTP.east.test.", qtype: dns.TypeAAAA, answers: 1, ttl: 2},
		{name: "SRV", qname: "_tftp._udp.east.test", qtype: dns.TypeSRV, answers: 1, ttl: 3,
			checkData: func(t *testing.T, rrs []dns.RR) {
				srv := rrs[0].(*dns.SRV)
				if srv.Target != "tftp.east.test." || srv.Port != 1069 || srv.Priority != 10 || srv.Weight != 5 {
					t.Errorf("SRV = %v", srv)
				}
			}},
		{name: "no data for an existing name", qname: "tftp.east.test", qtype: dns.TypeMX, negative: true},
		{name: "unknown name", qname: "nope.test", qtype: dns.TypeA, rcode: dns.RcodeNameError, negative: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := ask(t, s, tc.qname, tc.qtype)
			if m.Rcode != tc.rcode {
				t.Fatalf("rcode = %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
			if len(m.Answer) != tc.answers {
				t.Fatalf("%d answers, want %d: %v", len(m.Answer), tc.answers, m.Answer)
			}
			for _, rr := range m.Answer {
				if rr.Header().Ttl != tc.ttl {
					t.Errorf("TTL %d, want %d", rr.Header().Ttl, tc.ttl)
				}
			}
			if tc.negative {
				if len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA {
					t.Errorf("negative answer without SOA: %v", m.Ns)
				}
			}
			if tc.checkData != nil {
				tc.checkData(t, m.Answer)
			}
		})
	}
	if n := s.Queries("tftp.east.test", dns.TypeA); n != 1 {
		t.Errorf("Queries(A) = %d, want 1", n)
	}
	if n := s.TotalQueries(); n != len(tests) {
		t.Errorf("TotalQueries = %d, want %d", n, len(tests))
	}
}

func TestChangesAndServfail(t *testing.T) {
	s := NewServer(t)
	s.SetA("b.test", 1, "127.0.0.1")
	if m := ask(t, s, "b.test", dns.TypeA); len(m.Answer) != 1 {
		t.Fatalf("answers %v", m.Answer)
	}
	s.SetA("b.test", 1, "127.0.0.2")
	if m := ask(t, s, "b.test", dns.TypeA); len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "127.0.0.2" {
		t.Fatalf("after change: %v", m.Answer)
	}
	s.SetServfail(true)
	if m := ask(t, s, "b.test", dns.TypeA); m.Rcode != dns.RcodeServerFailure || len(m.Answer) != 0 {
		t.Fatalf("servfail: %v", m)
	}
	s.SetServfail(false)
	s.SetA("b.test", 1)
	if m := ask(t, s, "b.test", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Fatalf("after removal: rcode %s", dns.RcodeToString[m.Rcode])
	}
}

func TestCloseTwice(t *testing.T) {
	s := NewServer(t)
	s.Close()
	s.Close()
}
