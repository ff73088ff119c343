package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftpwire"
)

// A server that answers a request late (as a queueing server does) gets
// it twice, and serves both: the second transfer of the first file
// starts after the phone has moved on to its next file. A phone that
// keeps one socket for its boot would take that second transfer's DATA 1
// for the next file's answer; after a retransmission the phone takes a
// fresh socket, so every file arrives as it is.
func TestPhoneSocketAfterRetransmission(t *testing.T) {
	files := map[string][]byte{"first.cnf": []byte("first file"), "second.cnf": []byte("second file")}
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait() // deferred before srv.Close, so it runs after it
	defer srv.Close()
	// serve answers one request from a new socket (its TID) after
	// delay, with a one-block file, and waits for the ACK.
	serve := func(to netip.AddrPort, name string, delay time.Duration) {
		time.Sleep(delay)
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return
		}
		defer c.Close()
		c.WriteToUDPAddrPort(tftpwire.AppendData(nil, 1, files[name]), to)
		c.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 16)
		c.ReadFromUDPAddrPort(buf)
	}
	wg.Go(func() {
		buf := make([]byte, 600)
		firstSeen := 0
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			req, err := tftpwire.ParseRequest(buf[:n])
			if err != nil || binary.BigEndian.Uint16(buf) != uint16(tftpwire.OpRRQ) {
				continue
			}
			switch {
			case req.Filename == "first.cnf" && firstSeen == 0:
				firstSeen++
				// Slow: the phone retransmits before this answer.
				wg.Go(func() { serve(from, req.Filename, 300*time.Millisecond) })
			case req.Filename == "first.cnf":
				firstSeen++
				// The retransmitted copy, served once the phone has
				// moved on to its next file.
				wg.Go(func() { serve(from, req.Filename, 300*time.Millisecond) })
			default:
				wg.Go(func() { serve(from, req.Filename, 500*time.Millisecond) })
			}
		}
	})
	cfg := DefaultConfig()
	cfg.Phones, cfg.Concurrency = 1, 1
	cfg.Timeout = 200 * time.Millisecond
	seq := func(string) []Step {
		return []Step{{Name: "first.cnf", Required: true}, {Name: "second.cnf", Required: true}}
	}
	check := func(name string, body []byte) error {
		if !bytes.Equal(body, files[name]) {
			return fmt.Errorf("got %q", body)
		}
		return nil
	}
	rep, err := Run(context.Background(), cfg, srv.LocalAddr().(*net.UDPAddr).AddrPort(), Options{Sequence: seq, Check: check})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Booted != 1 || rep.Retransmits == 0 {
		t.Fatalf("booted %d, retransmits %d: %v", rep.Booted, rep.Retransmits, rep.Examples)
	}
}
