package tftpclient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftpclient"
)

// closedPort returns a loopback address whose UDP port nothing listens
// on: the kernel answers a datagram to it with ICMP port unreachable,
// as the host of a killed TFTP daemon does.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	c := loopbackUDP(t)
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	return ap
}

// With FailRefused, a request to a closed port ends with ErrRefused, not
// after its retransmissions (5 s each here: the context would end first).
// Without it, the port looks silent.
func TestFailRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	_, err := tftpclient.Get(ctx, closedPort(t), "SEP001122334455.cnf.xml", io.Discard, tftpclient.Options{Timeout: 5 * time.Second, Retries: 3, FailRefused: true})
	if !errors.Is(err, tftpclient.ErrRefused) {
		t.Fatalf("closed port with FailRefused: %v, want ErrRefused", err)
	}
	_, err = tftpclient.Get(context.Background(), closedPort(t), "f", io.Discard, tftpclient.Options{Timeout: 100 * time.Millisecond, Retries: 1})
	if !errors.Is(err, tftpclient.ErrTimeout) {
		t.Fatalf("closed port without FailRefused: %v, want ErrTimeout", err)
	}
}
