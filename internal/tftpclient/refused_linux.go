package tftpclient

import (
	"net"
	"syscall"
)

// ReportRefused makes conn report an ICMP port unreachable for a datagram
// it sent (IP_RECVERR, IPV6_RECVERR) as syscall.ECONNREFUSED on its next
// read, although it is not connected: a server whose host is up and whose
// TFTP port is closed (the daemon killed) is then known at once instead
// of after every retransmission. Any such error on conn is then about
// some datagram it sent: a socket that talks to one peer only can read it
// as that peer's.
func ReportRefused(conn *net.UDPConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		// Both levels on a dual-stack socket; a v4 socket refuses the
		// v6 option, a v6 one may take both.
		e4 := syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_RECVERR, 1)
		e6 := syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_RECVERR, 1)
		if e4 != nil && e6 != nil {
			serr = e4
		}
	})
	if err != nil {
		return err
	}
	return serr
}
