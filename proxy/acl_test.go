package proxy

import (
	"net/netip"
	"testing"

	"github.com/ctftp/ctftp/routing"
)

func TestACLPermits(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		yes, no     []string
	}{
		{"empty allows all", nil, nil, []string{"10.1.2.3", "::1", "fe80::1%lo"}, nil},
		{"allow list", []string{"10.0.0.0/8", "2001:db8::/32"}, nil,
			[]string{"10.255.0.1", "2001:db8::5", "::ffff:10.1.1.1"}, []string{"11.0.0.1", "2001:db9::1", "::1"}},
		{"deny wins", []string{"10.0.0.0/8"}, []string{"10.9.0.0/16", "10.1.1.1"},
			[]string{"10.8.0.1", "10.1.1.2"}, []string{"10.9.3.4", "10.1.1.1", "::ffff:10.9.0.1"}},
		{"deny only", nil, []string{"::1", "127.0.0.0/8"}, []string{"10.0.0.1", "::2"}, []string{"::1", "127.3.3.3"}},
		{"mapped prefix means IPv4", []string{"::ffff:192.0.2.0/120"}, nil, []string{"192.0.2.9"}, []string{"192.0.3.1"}},
		{"zones are ignored", []string{"fe80::/10"}, nil, []string{"fe80::1%eth0"}, []string{"fec0::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewACL(tt.allow, tt.deny)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.yes {
				if !a.Permits(netip.MustParseAddr(s)) {
					t.Errorf("%s refused", s)
				}
			}
			for _, s := range tt.no {
				if a.Permits(netip.MustParseAddr(s)) {
					t.Errorf("%s permitted", s)
				}
			}
		})
	}
	if _, err := NewACL([]string{"10.0.0.0/8", "nope"}, nil); err == nil || err.Error()[:8] != "allow[1]" {
		t.Errorf("bad entry: %v, want an error naming allow[1]", err)
	}
}

// FuzzACL: any lists either parse or fail, never panic; and a parsed ACL
// never permits an address a deny entry covers, nor one outside a
// non-empty allow list.
func FuzzACL(f *testing.F) {
	f.Add("10.0.0.0/8", "10.9.0.0/16", "10.9.1.1")
	f.Add("", "::1", "::1")
	f.Add("::ffff:1.2.3.0/120", "", "1.2.3.4")
	f.Add("fe80::/10", "fe80::1", "fe80::1%eth0")
	f.Fuzz(func(t *testing.T, allow, deny, addr string) {
		list := func(s string) []string {
			if s == "" {
				return nil
			}
			return []string{s}
		}
		a, err := NewACL(list(allow), list(deny))
		if err != nil {
			return
		}
		ip, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		ok := a.Permits(ip)
		plain := ip.Unmap().WithZone("")
		if deny != "" {
			if p, _ := routing.ParseClient(deny); p.Contains(plain) && ok {
				t.Fatalf("deny %q covers %v, which is permitted", deny, ip)
			}
		}
		if allow != "" {
			if p, _ := routing.ParseClient(allow); !p.Contains(plain) && ok {
				t.Fatalf("allow %q does not cover %v, which is permitted", allow, ip)
			}
		}
		if allow == "" && deny == "" && !ok {
			t.Fatalf("empty lists refuse %v", ip)
		}
	})
}
