package cluster

import (
	"net"
	"net/netip"
)

// selfSet recognises the gateway's own listen addresses, so a backend
// that is the gateway itself (a typo, or a DNS name that points back at
// it) is never asked: the gateway would forward each miss to itself
// until every phone timed out. CUCM's proxy TFTP documentation warns of
// the same loop between peers. It is immutable after newSelfSet.
type selfSet struct {
	exact    map[netip.AddrPort]bool
	anyPort  map[uint16]bool // ports listened on an unspecified address
	localIPs map[netip.Addr]bool
}

// newSelfSet builds the set from the listen addresses. An unspecified
// listen address (0.0.0.0, ::) means every local address, so loopback
// addresses and the addresses of every interface (from ifaceAddrs) count
// as self on that port, in either family: an IPv6 wildcard socket usually
// accepts IPv4 too, and a v4-only listener next to it is the common setup.
func newSelfSet(listen []netip.AddrPort, ifaceAddrs func() ([]netip.Addr, error)) (selfSet, error) {
	s := selfSet{exact: map[netip.AddrPort]bool{}, anyPort: map[uint16]bool{}, localIPs: map[netip.Addr]bool{}}
	wildcard := false
	for _, ap := range listen {
		a := ap.Addr().Unmap().WithZone("")
		if a.IsUnspecified() {
			s.anyPort[ap.Port()] = true
			wildcard = true
			continue
		}
		s.exact[netip.AddrPortFrom(a, ap.Port())] = true
	}
	if !wildcard {
		return s, nil
	}
	addrs, err := ifaceAddrs()
	for _, a := range addrs {
		s.localIPs[a.Unmap().WithZone("")] = true
	}
	return s, err
}

// contains reports whether ap is one of the gateway's own addresses.
func (s selfSet) contains(ap netip.AddrPort) bool {
	a := ap.Addr().Unmap().WithZone("")
	if s.exact[netip.AddrPortFrom(a, ap.Port())] {
		return true
	}
	return s.anyPort[ap.Port()] && (a.IsLoopback() || s.localIPs[a])
}

// split separates the addresses that are the gateway's own.
func (s selfSet) split(addrs []netip.AddrPort) (usable, loops []netip.AddrPort) {
	for _, a := range addrs {
		if s.contains(a) {
			loops = append(loops, a)
		} else {
			usable = append(usable, a)
		}
	}
	return usable, loops
}

// interfaceAddrs lists the machine's interface addresses.
func interfaceAddrs() ([]netip.Addr, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}
