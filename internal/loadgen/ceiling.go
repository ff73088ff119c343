package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ctftp/ctftp/internal/tftpclient"
	"github.com/ctftp/ctftp/internal/tftpwire"
)

// Ceiling stands in for a TFTP server and client in Run (as Options.Get)
// and moves exactly the datagrams of each lock-step transfer, and nothing
// else: a request of 4 bytes, then per DATA block one block-sized datagram
// back and one 4-byte ACK forward, between two loopback sockets of its
// own. A file not known to size costs one round trip (the request and a
// short ERROR), as a miss does. So a boot storm run through it makes the
// same number of round trips per phone as against a real server, with no
// file lookup, no socket per transfer and no protocol work: its phones/s
// is the loopback lock-step ceiling a server on this machine can
// approach.
//
// Each socket pair has a responder goroutine playing the server's side,
// so every round trip wakes a goroutine on each end as it does with a
// real server. Pairs are reused by later transfers (at most one per
// concurrent Get); Close stops their goroutines and waits. Ceiling is
// safe for concurrent use.
type Ceiling struct {
	size func(name string) (int, bool)

	mu     sync.Mutex
	free   []*pingPair
	all    []*pingPair
	closed bool
	wg     sync.WaitGroup

	roundTrips atomic.Int64
}

type pingPair struct {
	client, server *net.UDPConn
	buf            [tftpwire.HeaderSize + 65464]byte
}

// NewCeiling returns a Ceiling answering for the files size knows (their
// length in bytes), with "not found" for the others.
func NewCeiling(size func(name string) (int, bool)) *Ceiling {
	return &Ceiling{size: size}
}

// RoundTrips counts the round trips made so far.
func (c *Ceiling) RoundTrips() int64 { return c.roundTrips.Load() }

// Close stops every responder and waits for them.
func (c *Ceiling) Close() error {
	c.mu.Lock()
	c.closed = true
	all := c.all
	c.all, c.free = nil, nil
	c.mu.Unlock()
	var errs []error
	for _, p := range all {
		errs = append(errs, p.client.Close(), p.server.Close())
	}
	c.wg.Wait()
	return errors.Join(errs...)
}

func (c *Ceiling) acquire() (*pingPair, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("loadgen: ceiling closed")
	}
	if n := len(c.free); n > 0 {
		p := c.free[n-1]
		c.free = c.free[:n-1]
		return p, nil
	}
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	srv, err := net.ListenUDP("udp4", lo)
	if err != nil {
		return nil, fmt.Errorf("loadgen: ceiling socket: %w", err)
	}
	cl, err := net.DialUDP("udp4", lo, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("loadgen: ceiling socket: %w", err)
	}
	p := &pingPair{client: cl, server: srv}
	c.all = append(c.all, p)
	c.wg.Go(func() { ServerLabels(context.Background(), func(context.Context) { p.respond() }) })
	return p, nil
}

func (c *Ceiling) release(p *pingPair) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.free = append(c.free, p)
	}
}

// respond plays the server: each 4-byte datagram carries, in its last
// two bytes, the length of the answer to send back (0: none, as for the
// final ACK).
func (p *pingPair) respond() {
	var in [4]byte
	out := make([]byte, tftpwire.HeaderSize+65464)
	for {
		n, from, err := p.server.ReadFromUDPAddrPort(in[:])
		if err != nil {
			return
		}
		if n < 4 {
			continue
		}
		if want := binary.BigEndian.Uint16(in[2:4]); want > 0 {
			p.server.WriteToUDPAddrPort(out[:want], from)
		}
	}
}

// Get has the signature of tftpclient.Get (Options.Get). It ignores
// server; o.BlockSize (0: 512) sets the DATA size, and asking for any
// option adds the OACK's round trip.
func (c *Ceiling) Get(ctx context.Context, _ netip.AddrPort, name string, w io.Writer, o tftpclient.Options) (tftpclient.Result, error) {
	res := tftpclient.Result{TransferSize: -1, BlockSize: tftpwire.DefaultBlockSize, WindowSize: 1}
	if o.BlockSize > 0 {
		res.BlockSize = o.BlockSize
	}
	p, err := c.acquire()
	if err != nil {
		return res, err
	}
	defer c.release(p)
	// One deadline per transfer, not per packet: a lost datagram (none
	// are on loopback below the socket buffers) fails the phone at its
	// boot timeout instead of hanging the run.
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	if err := p.client.SetReadDeadline(deadline); err != nil {
		return res, err
	}
	size, found := c.size(name)
	if !found {
		if err := p.roundTrip(ctx, 4+len("File not found")+1); err != nil {
			return res, err
		}
		c.roundTrips.Add(1)
		return res, &tftpclient.ServerError{Code: tftpwire.CodeFileNotFound, Message: "File not found"}
	}
	if o.BlockSize > 0 || o.WindowSize > 0 {
		if err := p.roundTrip(ctx, 2+len("blksize")+1+5+1); err != nil {
			return res, err
		}
		c.roundTrips.Add(1)
	}
	for left := size; ; left -= res.BlockSize {
		n := min(left, res.BlockSize)
		if err := p.roundTrip(ctx, tftpwire.HeaderSize+n); err != nil {
			return res, err
		}
		c.roundTrips.Add(1)
		w.Write(p.buf[tftpwire.HeaderSize : tftpwire.HeaderSize+n])
		res.Bytes += int64(n)
		if n < res.BlockSize {
			break
		}
	}
	// The final ACK, one way.
	binary.BigEndian.PutUint16(p.buf[2:4], 0)
	_, err = p.client.Write(p.buf[:4])
	return res, err
}

// roundTrip sends a 4-byte datagram asking for want bytes back and reads
// them.
func (p *pingPair) roundTrip(ctx context.Context, want int) error {
	binary.BigEndian.PutUint16(p.buf[0:2], uint16(tftpwire.OpACK))
	binary.BigEndian.PutUint16(p.buf[2:4], uint16(want))
	if _, err := p.client.Write(p.buf[:4]); err != nil {
		return fmt.Errorf("loadgen: ceiling: %w", err)
	}
	if _, err := p.client.Read(p.buf[:]); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("loadgen: ceiling: %w", err)
	}
	return nil
}
