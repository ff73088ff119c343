package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ctftp/ctftp/internal/tftpclient"
	"github.com/ctftp/ctftp/internal/tftptest"
)

var fakeServer = netip.MustParseAddrPort("127.0.0.1:6969")

// fake is an in-memory TFTP server for Run: files, per-name failures, a
// record of requests and of how many ran at once.
type fake struct {
	files map[string][]byte
	fail  map[string]error
	// hold, when set, blocks every Get until it is closed, so a test can
	// see how many run at once.
	hold <-chan struct{}

	mu       sync.Mutex
	asked    map[string]int
	from     map[string]netip.Addr // name -> local address asked from
	cur, max int
	calls    atomic.Int64
}

func newFake(files map[string][]byte) *fake {
	return &fake{files: files, fail: map[string]error{}, asked: map[string]int{}, from: map[string]netip.Addr{}}
}

func (f *fake) get(ctx context.Context, server netip.AddrPort, name string, w io.Writer, o tftpclient.Options) (tftpclient.Result, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.asked[name]++
	f.from[name] = o.LocalAddr
	f.cur++
	f.max = max(f.max, f.cur)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.cur--
		f.mu.Unlock()
	}()
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return tftpclient.Result{}, fmt.Errorf("tftp: %w", ctx.Err())
		}
	}
	if err := f.fail[name]; err != nil {
		return tftpclient.Result{Retransmits: 1}, err
	}
	b, ok := f.files[name]
	if !ok {
		return tftpclient.Result{}, &tftpclient.ServerError{Code: 1, Message: "File not found"}
	}
	n, err := w.Write(b)
	return tftpclient.Result{Bytes: int64(n)}, err
}

// fleet returns the files a server has for phones: CTLFile.tlv (no
// CTLSEP files), an ITLSEP and a config per phone.
func fleet(macs []string) map[string][]byte {
	files := map[string][]byte{"CTLFile.tlv": bytes.Repeat([]byte("C"), 4700)}
	for _, m := range macs {
		files["ITLSEP"+m+".tlv"] = bytes.Repeat([]byte("I"), 5400)
		files["SEP"+m+".cnf.xml.sgn"] = []byte(strings.Repeat("<cfg/>", 1000) + m)
	}
	return files
}

// steppingClock advances 1ms per reading, so latencies are exact.
func steppingClock() func() time.Time {
	var mu sync.Mutex
	t := time.Unix(0, 0)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

func TestRunBootsEveryPhone(t *testing.T) {
	macs, _ := MACs("00AB", 0, 50)
	f := newFake(fleet(macs))
	cfg := DefaultConfig()
	cfg.Concurrency = 7
	rep, err := Run(context.Background(), cfg, fakeServer, Options{MACs: macs, Get: f.get, Label: "fake"})
	if err != nil {
		t.Fatal(err)
	}
	// Per phone: CTLSEP (miss), CTLFile, ITLSEP, config.
	want := Report{Phones: 50, Booted: 50, Transfers: 200, Files: 150, Misses: 50}
	if rep.Phones != want.Phones || rep.Booted != want.Booted || rep.Failed != 0 || rep.Transfers != want.Transfers ||
		rep.Files != want.Files || rep.Misses != want.Misses || len(rep.Errors) != 0 {
		t.Fatalf("report %+v", rep)
	}
	wantBytes := int64(0)
	for _, m := range macs {
		wantBytes += int64(4700 + 5400 + len(f.files["SEP"+m+".cnf.xml.sgn"]))
	}
	if rep.Bytes != wantBytes {
		t.Errorf("bytes %d, want %d", rep.Bytes, wantBytes)
	}
	for _, m := range macs {
		for _, name := range []string{"CTLSEP" + m + ".tlv", "ITLSEP" + m + ".tlv", "SEP" + m + ".cnf.xml.sgn"} {
			if f.asked[name] != 1 {
				t.Errorf("%s asked %d times", name, f.asked[name])
			}
		}
		if f.asked["ITLFile.tlv"] != 0 {
			t.Errorf("ITLFile.tlv asked although every ITLSEP exists")
		}
	}
	if rep.PhonesPerSecond <= 0 || math.Abs(rep.TransfersPerSecond-4*rep.PhonesPerSecond) > 1e-9*rep.TransfersPerSecond {
		t.Errorf("rates %f phones/s, %f transfers/s", rep.PhonesPerSecond, rep.TransfersPerSecond)
	}
}

// TestRunLatency uses one worker and a clock that advances 1ms per
// reading: a Get spans two readings (1ms), a boot one reading before and
// one after its four Gets (9ms), the run one more on each side.
func TestRunLatency(t *testing.T) {
	macs, _ := MACs("00AB", 0, 5)
	cfg := DefaultConfig()
	cfg.Concurrency = 1
	rep, err := Run(context.Background(), cfg, fakeServer, Options{MACs: macs, Get: newFake(fleet(macs)).get, Now: steppingClock()})
	if err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	if want := (Latency{Count: 20, Mean: ms, P50: ms, P90: ms, P99: ms, Max: ms}); rep.Transfer != want {
		t.Errorf("transfer latency %+v", rep.Transfer)
	}
	if want := (Latency{Count: 5, Mean: 9 * ms, P50: 9 * ms, P90: 9 * ms, P99: 9 * ms, Max: 9 * ms}); rep.Boot != want {
		t.Errorf("boot latency %+v", rep.Boot)
	}
	if rep.Elapsed != 51*ms || rep.PhonesPerSecond != 5/0.051 {
		t.Errorf("elapsed %s, %f phones/s", rep.Elapsed, rep.PhonesPerSecond)
	}
}

func TestRunFailures(t *testing.T) {
	macs, _ := MACs("00AB", 0, 4)
	tests := []struct {
		name       string
		setup      func(f *fake)
		wantErrors map[Kind]int
		wantMisses int
		wantBooted int
	}{
		{"missing config", func(f *fake) { delete(f.files, "SEP00AB00000001.cnf.xml.sgn") },
			map[Kind]int{KindNotFound: 1}, 4, 3},
		{"missing ITLSEP falls back to ITLFile.tlv", func(f *fake) {
			delete(f.files, "ITLSEP00AB00000002.tlv")
			f.files["ITLFile.tlv"] = []byte("itl")
		}, nil, 5, 4},
		{"no CTL at all is still a boot", func(f *fake) { delete(f.files, "CTLFile.tlv") }, nil, 8, 4},
		{"timeout", func(f *fake) { f.fail["ITLSEP00AB00000000.tlv"] = tftpclient.ErrTimeout },
			map[Kind]int{KindTimeout: 1}, 4, 3},
		{"busy", func(f *fake) {
			f.fail["SEP00AB00000003.cnf.xml.sgn"] = &tftpclient.ServerError{Code: 0, Message: "Server busy"}
		}, map[Kind]int{KindServerError: 1}, 4, 3},
		{"denied", func(f *fake) { f.fail["CTLFile.tlv"] = &tftpclient.ServerError{Code: 2} },
			map[Kind]int{KindDenied: 4}, 4, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(fleet(macs))
			tc.setup(f)
			rep, err := Run(context.Background(), DefaultConfig(), fakeServer, Options{MACs: macs, Get: f.get})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(rep.Errors) != fmt.Sprint(orEmpty(tc.wantErrors)) || rep.Misses != tc.wantMisses || rep.Booted != tc.wantBooted {
				t.Fatalf("errors %v misses %d booted %d; want %v %d %d", rep.Errors, rep.Misses, rep.Booted, tc.wantErrors, tc.wantMisses, tc.wantBooted)
			}
			if rep.Failed != rep.ErrorCount() || rep.Booted+rep.Failed != rep.Phones {
				t.Fatalf("inconsistent counts %+v", rep)
			}
			if rep.Failed > 0 && len(rep.Examples) == 0 {
				t.Fatal("no example of the failure")
			}
		})
	}
}

func orEmpty(m map[Kind]int) map[Kind]int {
	if m == nil {
		return map[Kind]int{}
	}
	return m
}

func TestRunCheck(t *testing.T) {
	macs, _ := MACs("00AB", 0, 3)
	f := newFake(fleet(macs))
	check := func(name string, body []byte) error {
		if name == "SEP00AB00000001.cnf.xml.sgn" {
			return errors.New("differs from what was published")
		}
		if !bytes.Equal(body, f.files[name]) {
			return errors.New("wrong bytes")
		}
		return nil
	}
	rep, err := Run(context.Background(), DefaultConfig(), fakeServer, Options{MACs: macs, Get: f.get, Check: check})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors[KindMismatch] != 1 || rep.Booted != 2 {
		t.Fatalf("errors %v, booted %d", rep.Errors, rep.Booted)
	}
	if !strings.Contains(rep.Examples[0], "differs from what was published") {
		t.Fatalf("example %q", rep.Examples[0])
	}
}

func TestRunConcurrencyIsTheCap(t *testing.T) {
	macs, _ := MACs("00AB", 0, 40)
	f := newFake(fleet(macs))
	release := make(chan struct{})
	f.hold = release
	cfg := DefaultConfig()
	cfg.Concurrency = 9
	done := make(chan *Report)
	go func() {
		rep, _ := Run(context.Background(), cfg, fakeServer, Options{MACs: macs, Get: f.get})
		done <- rep
	}()
	// Wait until every worker is blocked in a Get, then let them go.
	for deadline := time.Now().Add(10 * time.Second); ; {
		f.mu.Lock()
		cur := f.cur
		f.mu.Unlock()
		if cur == cfg.Concurrency {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d Gets running, want %d", cur, cfg.Concurrency)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	rep := <-done
	if f.max != cfg.Concurrency || rep.Booted != 40 {
		t.Fatalf("max concurrent %d, booted %d", f.max, rep.Booted)
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	macs, _ := MACs("00AB", 0, 100)
	f := newFake(fleet(macs))
	release := make(chan struct{})
	f.hold = release
	ctx, cancel := context.WithCancel(context.Background())
	cfg := DefaultConfig()
	cfg.Concurrency = 4
	done := make(chan struct{})
	var rep *Report
	var err error
	go func() {
		defer close(done)
		rep, err = Run(ctx, cfg, fakeServer, Options{MACs: macs, Get: f.get})
	}()
	for f.calls.Load() < 4 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if rep == nil || rep.Phones != 4 || rep.Errors[KindCanceled] != 4 {
		t.Fatalf("report %+v", rep)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Concurrency = 0
	if _, err := Run(context.Background(), cfg, fakeServer, Options{Get: newFake(nil).get}); err == nil || !strings.Contains(err.Error(), "concurrency: ") {
		t.Fatalf("err %v", err)
	}
}

func TestRunGeneratesMACs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Phones, cfg.MACPrefix = 3, "00112233"
	macs, _ := MACs(cfg.MACPrefix, 0, 3)
	f := newFake(fleet(macs))
	rep, err := Run(context.Background(), cfg, fakeServer, Options{Get: f.get})
	if err != nil || rep.Booted != 3 {
		t.Fatalf("%v %+v", err, rep)
	}
	if f.asked["SEP001122330002.cnf.xml.sgn"] != 1 {
		t.Fatalf("asked %v", f.asked)
	}
}

func TestProgress(t *testing.T) {
	macs, _ := MACs("00AB", 0, 10)
	for _, terminal := range []bool{false, true} {
		t.Run(fmt.Sprint("terminal=", terminal), func(t *testing.T) {
			f := newFake(fleet(macs))
			var out bytes.Buffer
			rep, err := Run(context.Background(), DefaultConfig(), fakeServer, Options{
				MACs: macs, Get: f.get, Label: "warm", Progress: &out, Terminal: terminal, ProgressInterval: time.Hour,
			})
			if err != nil || rep.Booted != 10 {
				t.Fatal(err, rep)
			}
			// The interval never passed: only the final report was written.
			got := out.String()
			if terminal {
				if !strings.HasPrefix(got, "\r\033[Kwarm [##############################] 10/10 phones  0 failed") || !strings.HasSuffix(got, "\n") {
					t.Fatalf("bar %q", got)
				}
			} else if !strings.HasPrefix(got, "warm: 10/10 phones, 0 failed, 40 transfers,") || strings.Count(got, "\n") != 1 {
				t.Fatalf("line %q", got)
			}
		})
	}
}

func TestBar(t *testing.T) {
	tests := []struct {
		done, total int
		want        string
	}{
		{0, 10, "[..............................]"},
		{5, 10, "[###############...............]"},
		{10, 10, "[##############################]"},
		{11, 10, "[##############################]"},
		{0, 0, "[..............................]"},
	}
	for _, tc := range tests {
		if got := bar(tc.done, tc.total); got != tc.want {
			t.Errorf("bar(%d, %d) = %s", tc.done, tc.total, got)
		}
	}
}

// TestRunAgainstARealServer is the real thing on loopback: tftpclient
// against pin/tftp's server, every file checked byte for byte, at the
// phones' 512-byte lock-step and with a large blksize.
func TestRunAgainstARealServer(t *testing.T) {
	macs, _ := MACs("00AB", 0, 30)
	files := fleet(macs)
	srv := tftptest.NewServer(t, files)
	for _, blksize := range []int{0, 1428} {
		t.Run(fmt.Sprint("blksize=", blksize), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Concurrency, cfg.BlockSize = 8, blksize
			check := func(name string, body []byte) error {
				if !bytes.Equal(body, files[name]) {
					return fmt.Errorf("got %d bytes, want %d", len(body), len(files[name]))
				}
				return nil
			}
			rep, err := Run(context.Background(), cfg, srv.AddrPort(), Options{MACs: macs, Check: check})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Booted != 30 || rep.Failed != 0 || rep.Files != 90 || rep.Misses != 30 {
				var b strings.Builder
				rep.WriteText(&b)
				t.Fatalf("%s", b.String())
			}
		})
	}
	if n := srv.Requests("CTLSEP00AB00000007.tlv"); n != 2 {
		t.Fatalf("CTLSEP asked %d times over two runs", n)
	}
}

func TestPhoneAddresses(t *testing.T) {
	macs, _ := MACs("00AB", 0, 300)
	tests := []struct {
		name   string
		server netip.AddrPort
		addr   func(i int) netip.Addr // nil: Options.PhoneAddr unset
		want   func(i int) netip.Addr
	}{
		{"loopback server: a 127/8 address per phone", fakeServer, nil, func(i int) netip.Addr {
			return netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)})
		}},
		{"other server: the OS picks", netip.MustParseAddrPort("192.0.2.1:69"), nil, func(int) netip.Addr { return netip.Addr{} }},
		{"IPv6 loopback: the OS picks", netip.MustParseAddrPort("[::1]:69"), nil, func(int) netip.Addr { return netip.Addr{} }},
		{"chosen by the caller", fakeServer, func(i int) netip.Addr { return netip.MustParseAddr("10.9.9.9") },
			func(int) netip.Addr { return netip.MustParseAddr("10.9.9.9") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(fleet(macs))
			cfg := DefaultConfig()
			cfg.Concurrency = 13
			rep, err := Run(context.Background(), cfg, tc.server, Options{MACs: macs, Get: f.get, PhoneAddr: tc.addr})
			if err != nil || rep.Booted != len(macs) {
				t.Fatal(err, rep)
			}
			for i, m := range macs {
				if got := f.from["SEP"+m+".cnf.xml.sgn"]; got != tc.want(i) {
					t.Fatalf("phone %d asked from %v, want %v", i, got, tc.want(i))
				}
			}
		})
	}
	if got := loopbackPhone(MaxPhones - 1); !got.IsLoopback() {
		t.Fatalf("the last phone's address %v is not loopback", got)
	}
}
