package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftpclient"
	"github.com/ctftp/ctftp/internal/tftptest"
)

// TestDelayLink fetches through the link and counts what crossed it: a
// lock-step transfer costs one round trip per block, a large blksize
// fewer. The elapsed time is only checked from below, which the link's
// own delay guarantees however slow the machine is.
func TestDelayLink(t *testing.T) {
	file := bytes.Repeat([]byte("0123456789"), 200) // 2000 bytes
	srv := tftptest.NewServer(t, map[string][]byte{"SEP0011215A1AE3.cnf.xml.sgn": file})
	const delay = 10 * time.Millisecond
	tests := []struct {
		name               string
		opts               tftpclient.Options
		toServer, toClient int64 // datagrams each way
	}{
		// RRQ + 4 ACKs up; DATA 1..4 down (512, 512, 512, 464 bytes).
		{"lock-step 512", tftpclient.Options{}, 5, 4},
		// RRQ, ACK 0, ACK 1, ACK 2 up; OACK, DATA 1 (1428), DATA 2 (572) down.
		{"blksize 1428 and tsize", tftpclient.Options{BlockSize: 1428, TransferSize: true}, 4, 3},
		// RRQ, ACK 0, ACK 1 up; OACK, DATA 1 down.
		{"blksize 65464", tftpclient.Options{BlockSize: 65464}, 3, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			link, err := StartDelayLink(srv.AddrPort(), delay, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer link.Close()
			var got bytes.Buffer
			start := time.Now()
			if _, err := tftpclient.Get(context.Background(), link.Addr(), "SEP0011215A1AE3.cnf.xml.sgn", &got, tc.opts); err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			if !bytes.Equal(got.Bytes(), file) {
				t.Fatalf("got %d bytes, want %d", got.Len(), len(file))
			}
			// The client is done when the last DATA arrives: every
			// datagram down was preceded by one up, so it took at least
			// toClient round trips.
			if min := time.Duration(tc.toClient) * 2 * delay; elapsed < min {
				t.Fatalf("took %s, less than %d round trips of %s", elapsed, tc.toClient, 2*delay)
			}
			// The last ACK is still on the link when Get returns.
			deadline := time.Now().Add(5 * time.Second)
			for {
				up, down, dropped := link.Datagrams()
				if up == tc.toServer && down == tc.toClient && dropped == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("datagrams up %d down %d dropped %d; want %d %d 0", up, down, dropped, tc.toServer, tc.toClient)
				}
				time.Sleep(5 * time.Millisecond)
			}
			ss := link.Sessions()
			if len(ss) != 1 || ss[0].File != "SEP0011215A1AE3.cnf.xml.sgn" || int64(ss[0].ToServer) != tc.toServer ||
				int64(ss[0].ToClient) != tc.toClient || ss[0].Last.Sub(ss[0].First) < time.Duration(tc.toClient)*2*delay {
				t.Fatalf("sessions %+v", ss)
			}
		})
	}
}

// TestDelayLinkSessions runs several clients through one link at once:
// each gets its own session and its own bytes.
func TestDelayLinkSessions(t *testing.T) {
	files := map[string][]byte{}
	for i := range 8 {
		files[fmt.Sprintf("f%d", i)] = bytes.Repeat([]byte{byte(i)}, 1500+i)
	}
	srv := tftptest.NewServer(t, files)
	link, err := StartDelayLink(srv.AddrPort(), time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	errc := make(chan error, len(files))
	for name, want := range files {
		go func() {
			var got bytes.Buffer
			_, err := tftpclient.Get(context.Background(), link.Addr(), name, &got, tftpclient.Options{})
			if err == nil && !bytes.Equal(got.Bytes(), want) {
				err = fmt.Errorf("%s: wrong bytes", name)
			}
			errc <- err
		}()
	}
	for range files {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	// Let the last ACKs cross before the link closes, or the server
	// waits out its retransmissions at cleanup. Each file is 3 blocks:
	// an RRQ and 3 ACKs up.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if up, _, _ := link.Datagrams(); up == int64(4*len(files)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the last ACKs never crossed the link")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDelayLinkRejectsNegativeDelay(t *testing.T) {
	if _, err := StartDelayLink(fakeServer, -time.Second, 0); err == nil {
		t.Fatal("no error")
	}
}
