package cluster

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftptest"
)

// tftpdRoot writes files world-readable into a fresh directory for
// in.tftpd.
func tftpdRoot(t *testing.T, files map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// A sub-cluster whose first backend misbehaves and whose second is a real
// in.tftpd: every fetch gets the right bytes, from the good backend, in
// well under a phone's patience (5 s); a file that is not whole is never
// returned; and no goroutine or socket outlives the case.
func TestFaultBackends(t *testing.T) {
	sf := newSignedFiles(t)
	const cnf = "SEP001122334455.cnf.xml.sgn"
	files := map[string][]byte{cnf: sf.cnf, "ITLFile.tlv": sf.itl}
	good := tftptest.StartTFTPD(t, tftpdRoot(t, files))

	tests := []struct {
		name   string
		fault  tftptest.Fault
		silent bool
		delay  time.Duration
		// blamed: the failure counts against the fault backend's health.
		// A hedge's loser is blamed when it had sent nothing by the time
		// its sibling sent the whole file, not when it was answering.
		blamed bool
		result string // a ctftp_backend_fetches_total result counted
	}{
		{name: "silent", fault: tftptest.FaultNone, silent: true, blamed: true, result: resultError},
		{name: "slow by 3 s", fault: tftptest.FaultNone, delay: 3 * time.Second, blamed: true, result: resultError},
		{name: "short last block", fault: tftptest.FaultShort, blamed: true, result: resultInvalid},
		{name: "garbage opcode", fault: tftptest.FaultGarbage, blamed: true, result: resultError},
		{name: "wrong port after the first block", fault: tftptest.FaultWrongPort, result: resultCancelled},
		{name: "stalls half-way", fault: tftptest.FaultStall, result: resultCancelled},
		{name: "answers from another address", fault: tftptest.FaultWrongAddr, blamed: true, result: resultError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			bad := tftptest.NewFaultServer(t, files, tc.fault)
			defer bad.Close()
			bad.SetSilent(tc.silent)
			bad.SetDelay(tc.delay)
			cfg := testConfig(bad.Addr(), good)
			cfg.Backend.Timeout = time.Second
			cfg.Backend.Retries = 2
			s, set := newTestSet(t, cfg, Options{})
			// The phone's patience: 1 s per packet, 4 retransmissions.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			got, err := s.Fetch(ctx, "east", cnf)
			took := time.Since(start)
			if err != nil || !bytes.Equal(got, sf.cnf) {
				t.Fatalf("%d bytes (want %d), %v", len(got), len(sf.cnf), err)
			}
			t.Logf("fetched in %s (loaded host; not asserted)", took.Round(time.Millisecond))
			if v := metricValue(t, set, `ctftp_backend_fetches_total{subcluster="east",result="`+tc.result+`"}`); v != "1" {
				t.Errorf("%s fetches = %q, want 1", tc.result, v)
			}
			st := backendStatus(t, s, bad.Addr())
			if blamed := st.Fails > 0; blamed != tc.blamed {
				t.Errorf("fault backend blamed %v, want %v: %+v", blamed, tc.blamed, st)
			}
		})
	}
}

// A backend that sends stray packets from another port mid-transfer: the
// transfer ID is fixed by the first answer, the strays are refused, and
// the bytes are right.
func TestFaultStrayPacketsIgnored(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sf := newSignedFiles(t)
	const cnf = "SEP001122334455.cnf.xml.sgn"
	stray := tftptest.NewFaultServer(t, map[string][]byte{cnf: sf.cnf}, tftptest.FaultStray)
	defer stray.Close()
	s, _ := newTestSet(t, testConfig(stray.Addr()), Options{})
	got, err := s.Fetch(context.Background(), "east", cnf)
	if err != nil || !bytes.Equal(got, sf.cnf) {
		t.Fatalf("%d bytes (want %d), %v", len(got), len(sf.cnf), err)
	}
}

// A short-block file from the only backend is never returned: the fetch
// fails as unavailable (never "not found"), says why, and counts it.
func TestShortBlockNeverServed(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sf := newSignedFiles(t)
	// Not .enc.sgn: a cut to whole AES blocks passes its lengths
	// (TestCheckIntegrityEveryCut).
	for _, tc := range []struct{ name string }{{"SEP001122334455.cnf.xml.sgn"}, {"ITLSEP001122334455.tlv"}} {
		content := map[string][]byte{"SEP001122334455.cnf.xml.sgn": sf.cnf, "ITLSEP001122334455.tlv": sf.itl}[tc.name]
		short := tftptest.NewFaultServer(t, map[string][]byte{tc.name: content}, tftptest.FaultShort)
		s, set := newTestSet(t, testConfig(short.Addr()), Options{})
		_, err := s.Fetch(context.Background(), "east", tc.name)
		if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ctftp.ErrUnavailable) || errors.Is(err, ctftp.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrCorrupt", tc.name, err)
		}
		if v := metricValue(t, set, `ctftp_backend_fetches_total{subcluster="east",result="invalid"}`); v != "1" {
			t.Errorf("%s: invalid = %q, want 1", tc.name, v)
		}
		short.Close()
	}
}

// A flapping backend: silent, then answering, then silent. Probes follow
// it (down at the first unanswered probe, up at the first answer), and
// while it is down a fetch goes to its sibling without asking it.
func TestFlappingBackend(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	flap := tftptest.NewFaultServer(t, map[string][]byte{"f": []byte("flap")}, tftptest.FaultNone)
	defer flap.Close()
	good := tftptest.NewServer(t, map[string][]byte{"f": []byte("good")})
	defer good.Close()
	cfg := testConfig(flap.Addr(), good.Addr())
	cfg.Backend.ProbeTimeout = 100 * time.Millisecond
	s, _ := newTestSet(t, cfg, Options{})
	for round := range 3 {
		flap.SetSilent(true)
		s.ProbeAll(context.Background())
		if st := backendStatus(t, s, flap.Addr()); st.Up || st.NextTrial.IsZero() {
			t.Fatalf("round %d: after an unanswered probe: %+v (want down, with its next trial)", round, st)
		}
		before := flap.Requests()
		if _, got, err := open(t, s, "f"); err != nil || string(got) != "good" {
			t.Fatalf("round %d: %q, %v", round, got, err)
		}
		if n := flap.Requests() - before; n != 0 {
			t.Errorf("round %d: the down backend was asked %d times", round, n)
		}
		flap.SetSilent(false)
		s.ProbeAll(context.Background())
		if !backendStatus(t, s, flap.Addr()).Up {
			t.Fatalf("round %d: down after an answered probe", round)
		}
		if _, got, err := open(t, s, "f"); err != nil || string(got) != "flap" {
			t.Fatalf("round %d, back: %q, %v", round, got, err)
		}
		if d := s.Status()[0].HedgeDelay; d < cfg.Backend.HedgeMin || d > cfg.Backend.HedgeMax {
			t.Errorf("round %d: hedge delay %s outside [%s, %s]", round, d, cfg.Backend.HedgeMin, cfg.Backend.HedgeMax)
		}
	}
}

// Hedging with real sockets: a backend slow by more than the hedge delay
// loses to its sibling, the loser is cancelled (its transfer ends), and
// the hedge delay learnt from answers stays within its bounds.
func TestHedgeDelayFollowsAnswers(t *testing.T) {
	h := &hedgeTimer{min: 50 * time.Millisecond, max: time.Second}
	if d := h.delay(); d != time.Second {
		t.Errorf("no answers yet: %s, want hedge_max", d)
	}
	for range 20 {
		h.observe(2 * time.Millisecond)
	}
	if d := h.delay(); d != 50*time.Millisecond {
		t.Errorf("LAN answers: %s, want hedge_min", d)
	}
	for range 50 {
		h.observe(200 * time.Millisecond)
	}
	if d := h.delay(); d < 200*time.Millisecond || d > 400*time.Millisecond {
		t.Errorf("WAN answers of 200 ms: %s", d)
	}
	for range 50 {
		h.observe(5 * time.Second)
	}
	if d := h.delay(); d != time.Second {
		t.Errorf("slow answers: %s, want hedge_max", d)
	}
	if d := (&hedgeTimer{}).delay(); d != 0 {
		t.Errorf("hedge_max 0: %s, want no hedging", d)
	}
	if !strings.Contains(tftptest.FaultShort.String(), "short") {
		t.Error(tftptest.FaultShort.String())
	}
}
