package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/ctftp/ctftp/internal/tftpwire"
)

// HoldOptions tune StartHold. The zero value is usable. Plain data.
type HoldOptions struct {
	// Timeout is how long to wait for a transfer's first answer before
	// sending its request again (default 2s).
	Timeout time.Duration
	// Retries is how many times a request is sent again (default 3).
	Retries int
	// Window is how many requests may await their first answer at once
	// (default 64). A burst of thousands would overflow the server's
	// socket buffer and only measure retransmissions.
	Window int
}

// Hold is a set of transfers a server keeps open: each was asked for with
// the RFC 2349 option timeout=255, got its first answer (an OACK, or DATA
// 1 from a server that ignores options), and is then left unacknowledged.
// The server holds a socket, a goroutine (or process) and its buffers for
// each until Release sends every one an ERROR. It is how "10,000
// transfers in flight" is measured without 10,000 phones.
//
// Hold's methods are safe for concurrent use. It starts no goroutines of
// its own after StartHold returns.
type Hold struct {
	mu    sync.Mutex
	conns []*net.UDPConn
	tids  []netip.AddrPort
}

// StartHold opens n transfers of the file name on server, one client
// socket each, as n phones would. It returns once every transfer got its
// first answer; if any did not (or a socket could not be opened: mind
// RLIMIT_NOFILE), it releases those that did and returns an error saying
// how far it got.
func StartHold(ctx context.Context, server netip.AddrPort, name string, n int, o HoldOptions) (*Hold, error) {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Retries <= 0 {
		o.Retries = 3
	}
	if o.Window <= 0 {
		o.Window = 64
	}
	server = netip.AddrPortFrom(server.Addr().Unmap(), server.Port())
	rrq := tftpwire.AppendRequest(nil, tftpwire.OpRRQ, name, tftpwire.ModeOctet,
		[]tftpwire.Option{{Name: tftpwire.OptTimeout, Value: strconv.Itoa(tftpwire.MaxTimeout)}})
	h := &Hold{conns: make([]*net.UDPConn, n), tids: make([]netip.AddrPort, n)}
	for i := range n {
		// Each held transfer stands for a phone, from an address of
		// its own: a gateway limits transfers per client address.
		c, err := listenFor(server, loopbackPhone(i))
		if err != nil {
			h.Release()
			return nil, fmt.Errorf("loadgen: hold: socket %d of %d: %w", i+1, n, err)
		}
		h.conns[i] = c
	}

	work := make(chan int)
	errc := make(chan error, o.Window)
	var wg sync.WaitGroup
	for range min(o.Window, n) {
		wg.Go(func() {
			for i := range work {
				tid, err := firstAnswer(ctx, h.conns[i], server, rrq, o)
				if err != nil {
					select {
					case errc <- fmt.Errorf("transfer %d: %w", i+1, err):
					default:
					}
					continue
				}
				h.mu.Lock()
				h.tids[i] = tid
				h.mu.Unlock()
			}
		})
	}
feed:
	for i := range n {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		got := h.Len()
		h.Release()
		return nil, fmt.Errorf("loadgen: hold: %d of %d transfers opened: %w", got, n, errors.Join(errs...))
	}
	return h, nil
}

// listenFor opens a client socket for server, from local if it is valid
// and a loopback address of server's family, else from server's own
// address when server is on loopback (so no test socket listens beyond
// it), else on any address of server's family.
func listenFor(server netip.AddrPort, local netip.Addr) (*net.UDPConn, error) {
	network, laddr := "udp4", &net.UDPAddr{}
	if server.Addr().Is6() {
		network = "udp6"
	}
	if server.Addr().IsLoopback() {
		laddr.IP = server.Addr().AsSlice()
		if local.IsLoopback() && local.Is4() == server.Addr().Is4() {
			laddr.IP = local.AsSlice()
		}
	}
	return net.ListenUDP(network, laddr)
}

// firstAnswer sends rrq until the server answers with OACK or DATA and
// returns the address it answered from (the transfer's TID).
func firstAnswer(ctx context.Context, c *net.UDPConn, server netip.AddrPort, rrq []byte, o HoldOptions) (netip.AddrPort, error) {
	buf := make([]byte, 1024)
	for try := 0; try <= o.Retries; try++ {
		if err := ctx.Err(); err != nil {
			return netip.AddrPort{}, err
		}
		if _, err := c.WriteToUDPAddrPort(rrq, server); err != nil {
			return netip.AddrPort{}, err
		}
		c.SetReadDeadline(time.Now().Add(o.Timeout))
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return netip.AddrPort{}, err
			}
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			if from.Addr() != server.Addr() {
				continue
			}
			op, err := tftpwire.PacketOpcode(buf[:n])
			if err != nil {
				continue
			}
			switch op {
			case tftpwire.OpOACK, tftpwire.OpDATA:
				return from, nil
			case tftpwire.OpERROR:
				code, msg, _ := tftpwire.ParseError(buf[:n])
				return netip.AddrPort{}, fmt.Errorf("server error %d: %s", code, msg)
			}
		}
	}
	return netip.AddrPort{}, fmt.Errorf("no answer to %d requests", o.Retries+1)
}

// Len is the number of transfers held open.
func (h *Hold) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, t := range h.tids {
		if t.IsValid() {
			n++
		}
	}
	return n
}

// Release ends every held transfer with an ERROR (code 0), as a phone
// that gives up would, and closes the sockets. It returns the first
// error sending one, after trying them all. Calling it again does nothing.
func (h *Hold) Release() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	bye := tftpwire.AppendError(nil, tftpwire.CodeNotDefined, "load generator released the transfer")
	var first error
	for i, c := range h.conns {
		if c == nil {
			continue
		}
		if h.tids[i].IsValid() {
			if _, err := c.WriteToUDPAddrPort(bye, h.tids[i]); err != nil && first == nil {
				first = fmt.Errorf("loadgen: release: %w", err)
			}
		}
		c.Close()
		h.conns[i], h.tids[i] = nil, netip.AddrPort{}
	}
	return first
}
