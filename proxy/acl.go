package proxy

import (
	"fmt"
	"net/netip"

	"github.com/ctftp/ctftp/routing"
)

// ACL decides which clients may ask at all, from Config.Allow and
// Config.Deny: an empty allow list allows everyone, and deny wins. The
// TFTP and HTTP front ends share one. Safe for concurrent use (it is
// immutable).
type ACL struct {
	allow, deny []netip.Prefix
}

// NewACL parses allow and deny (CIDRs or bare addresses, as routing rules
// write clients).
func NewACL(allow, deny []string) (*ACL, error) {
	parse := func(key string, list []string) ([]netip.Prefix, error) {
		out := make([]netip.Prefix, 0, len(list))
		for i, s := range list {
			p, err := routing.ParseClient(s)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", key, i, err)
			}
			out = append(out, p)
		}
		return out, nil
	}
	a, err := parse("allow", allow)
	if err != nil {
		return nil, err
	}
	d, err := parse("deny", deny)
	if err != nil {
		return nil, err
	}
	return &ACL{allow: a, deny: d}, nil
}

// Permits reports whether addr may be served. IPv4-mapped IPv6 addresses
// are judged as the IPv4 address they carry, and zones are ignored.
func (a *ACL) Permits(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	for _, p := range a.deny {
		if p.Contains(addr) {
			return false
		}
	}
	if len(a.allow) == 0 {
		return true
	}
	for _, p := range a.allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
