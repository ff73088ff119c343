package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftptest"
	"github.com/ctftp/ctftp/internal/tftpwire"
)

// BenchmarkServeSmallFile measures whole transfers of phone-sized files
// (1-8 KB, 512-byte lock-step as phones do) through the real server over
// loopback, with 8 raw clients per CPU asking concurrently. The client
// shares the CPUs, so transfers/s is a floor of the server's capacity.
func BenchmarkServeSmallFile(b *testing.B) {
	dir := b.TempDir()
	files := map[string][]byte{}
	for _, n := range []int{1024, 4096, 7000, 8192} {
		name := fmt.Sprintf("SEP%012d.cnf.xml.sgn", n)
		files[name] = pattern(n)
		if err := os.WriteFile(filepath.Join(dir, name), files[name], 0o644); err != nil {
			b.Fatal(err)
		}
	}
	local, err := NewLocal(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer local.Close()
	for _, src := range []struct {
		name string
		src  ctftp.Source
	}{{"memory", memSource(files, bodyReaderAt)}, {"local", local}} {
		// Info, as in production: one JSON line per transfer.
		// One client address asks thousands of times a second: no
		// per-client limits, this measures the data path.
		cfg := testConfig()
		cfg.ClientRate, cfg.MaxTransfersPerClient = 0, 0
		ts := startServerLogging(b, src.src, cfg, io.Discard, slog.LevelInfo)
		for _, n := range []int{1024, 4096, 7000, 8192} {
			name := fmt.Sprintf("SEP%012d.cnf.xml.sgn", n)
			b.Run(fmt.Sprintf("%s/%dB", src.name, n), func(b *testing.B) {
				resends := ts.counter("ctftp_transfer_retransmits_total")
				runSmallFile(b, ts.addr, name, n)
				b.ReportMetric(float64(ts.counter("ctftp_transfer_retransmits_total")-resends), "resends")
			})
		}
	}
}

// BenchmarkServeSmallFilePin is BenchmarkServeSmallFile/memory with a
// plain pin/tftp server instead of ctftp's engine: the same client, the
// same files, so cpu-µs/transfer compares the two servers (the client's
// share is in both).
func BenchmarkServeSmallFilePin(b *testing.B) {
	files := map[string][]byte{}
	for _, n := range []int{1024, 4096, 7000, 8192} {
		files[fmt.Sprintf("SEP%012d.cnf.xml.sgn", n)] = pattern(n)
	}
	srv := tftptest.NewServer(b, files)
	for _, n := range []int{1024, 4096, 7000, 8192} {
		name := fmt.Sprintf("SEP%012d.cnf.xml.sgn", n)
		b.Run(fmt.Sprintf("pin/%dB", n), func(b *testing.B) { runSmallFile(b, srv.AddrPort(), name, n) })
	}
}

// runSmallFile fetches name (n bytes) from server b.N times, 8 clients
// per CPU at once, and reports transfers/s and CPU per transfer.
func runSmallFile(b *testing.B, server netip.AddrPort, name string, n int) {
	b.ReportAllocs()
	b.SetParallelism(8)
	start, cpu0 := time.Now(), processCPU()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		req := tftpwire.AppendRequest(nil, tftpwire.OpRRQ, name, "octet", nil)
		buf := make([]byte, 1024)
		ack := make([]byte, 0, 4)
		for pb.Next() {
			got, err := benchFetch(conn, server, req, buf, ack)
			if err != nil {
				b.Error(err)
				return
			}
			if got != n {
				b.Errorf("got %d bytes, want %d", got, n)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "transfers/s")
	// CPU per transfer (server and clients: one process) moves far less
	// than wall time on a shared machine.
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/transfer")
}

// benchFetch is a minimal lock-step client for the benchmark's hot loop.
// Like any client it sticks to the TID of the DATA 1 it gets and ignores
// strays (a late retransmission of the previous transfer's last block)
// and repeats.
func benchFetch(conn *net.UDPConn, server netip.AddrPort, req, buf, ack []byte) (int, error) {
	if _, err := conn.WriteToUDPAddrPort(req, server); err != nil {
		return 0, err
	}
	total := 0
	expect := uint16(1)
	var tid netip.AddrPort
	for {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return total, err
		}
		block, payload, err := tftpwire.ParseData(buf[:n])
		if err != nil {
			return total, fmt.Errorf("want DATA %d: %w", expect, err)
		}
		if !tid.IsValid() && block == 1 {
			tid = from
		}
		if from != tid {
			continue
		}
		if block != expect {
			if block == expect-1 {
				continue // a retransmission
			}
			return total, errors.New("out of order")
		}
		total += len(payload)
		if _, err := conn.WriteToUDPAddrPort(tftpwire.AppendACK(ack[:0], block), from); err != nil {
			return total, err
		}
		if len(payload) < 512 {
			return total, nil
		}
		expect++
	}
}

// processCPU is the user and system time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTransferStart splits a transfer's latency under a storm: 25
// raw clients per CPU (50 on two cores, the side-by-side's concurrency),
// each transfer from a new socket as a phone's, fetch a 7000-byte file
// (14 blocks) in lock-step. It reports the wait from the RRQ to DATA 1
// (the listener, a transfer socket, the Source's Open, the first block)
// beside the wait from an ACK to the next DATA (one round trip), p50 and
// mean: their difference is what starting a transfer adds.
func BenchmarkTransferStart(b *testing.B) {
	const name, size = "SEP000000007000.cnf.xml.sgn", 7000
	cfg := testConfig()
	cfg.ClientRate, cfg.MaxTransfersPerClient = 0, 0
	ts := startServerLogging(b, memSource(map[string][]byte{name: pattern(size)}, bodyReaderAt), cfg, io.Discard, slog.LevelInfo)
	var mu sync.Mutex
	var first, next []time.Duration
	b.SetParallelism(25)
	b.RunParallel(func(pb *testing.PB) {
		req := tftpwire.AppendRequest(nil, tftpwire.OpRRQ, name, "octet", nil)
		buf := make([]byte, 1024)
		ack := make([]byte, 0, 4)
		var f, n []time.Duration
		defer func() {
			mu.Lock()
			first, next = append(first, f...), append(next, n...)
			mu.Unlock()
		}()
		for pb.Next() {
			conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Error(err)
				return
			}
			got, err := timedFetch(conn, ts.addr, req, buf, ack, &f, &n)
			conn.Close()
			if err != nil || got != size {
				b.Errorf("got %d bytes, want %d: %v", got, size, err)
				return
			}
		}
	})
	stat := func(d []time.Duration, what string) {
		if len(d) == 0 {
			return
		}
		slices.Sort(d)
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		b.ReportMetric(float64(d[len(d)/2].Microseconds()), what+"-p50-µs")
		b.ReportMetric(float64(sum.Microseconds())/float64(len(d)), what+"-mean-µs")
	}
	stat(first, "rrq-data1")
	stat(next, "ack-data")
}

// timedFetch is benchFetch from a socket of the transfer's own, timing
// the wait for DATA 1 into first and for each later DATA into next.
func timedFetch(conn *net.UDPConn, server netip.AddrPort, req, buf, ack []byte, first, next *[]time.Duration) (int, error) {
	sent := time.Now()
	if _, err := conn.WriteToUDPAddrPort(req, server); err != nil {
		return 0, err
	}
	total := 0
	for expect := uint16(1); ; expect++ {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return total, err
		}
		wait := time.Since(sent)
		block, payload, err := tftpwire.ParseData(buf[:n])
		if err != nil {
			return total, fmt.Errorf("want DATA %d: %w", expect, err)
		}
		if block != expect {
			return total, fmt.Errorf("got DATA %d, want %d", block, expect)
		}
		if block == 1 {
			*first = append(*first, wait)
		} else {
			*next = append(*next, wait)
		}
		total += len(payload)
		sent = time.Now()
		if _, err := conn.WriteToUDPAddrPort(tftpwire.AppendACK(ack[:0], block), from); err != nil {
			return total, err
		}
		if len(payload) < tftpwire.DefaultBlockSize {
			return total, nil
		}
	}
}
