//go:build !linux

package tftpclient

import "net"

// ReportRefused does nothing here: without IP_RECVERR an unconnected
// socket does not see ICMP errors, and a closed port looks silent.
func ReportRefused(conn *net.UDPConn) error { return nil }
