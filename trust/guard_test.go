package trust

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want []string // one substring per expected problem
	}{
		{name: "defaults", mod: func(*Config) {}},
		{name: "probe only at start and reload", mod: func(c *Config) { c.ProbeInterval = 0 }},
		{name: "refuse everything", mod: func(c *Config) { c.OnChange, c.ForwardedPolicy = PolicyRefuse, ForwardRefuse }},
		{name: "negative interval", mod: func(c *Config) { c.ProbeInterval = -time.Second }, want: []string{"probe_interval: must not be negative"}},
		{name: "continuous probing", mod: func(c *Config) { c.ProbeInterval = 50 * time.Millisecond }, want: []string{"probe_interval: 50ms would probe"}},
		{name: "every problem at once", mod: func(c *Config) {
			c.ProbeTimeout, c.OnChange, c.ForwardedPolicy = 0, "block", "drop"
		}, want: []string{"probe_timeout: must be positive", `on_change: "block"`, `forwarded_policy: "drop"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Errorf("problems %q, want %d", lines, len(tc.want))
			}
			for i, w := range tc.want {
				if i < len(lines) && !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d = %q, want it to start with %q", i, lines[i], w)
				}
			}
		})
	}
}

// fakeTrust is a watcher stand-in: a fixed SubTrust per sub-cluster.
type fakeTrust map[string]SubTrust

func (f fakeTrust) Sub(name string) SubTrust { return f[name] }

// onceBody is a Body that can be read once and cannot seek, like a
// stream.
type onceBody struct{ io.Reader }

func (onceBody) Close() error { return nil }

func TestTrustGuard(t *testing.T) {
	east, stranger := newPKI(t, "east"), newPKI(t, "stranger")
	const (
		good     = "SEP001122334455.cnf.xml.sgn"
		bad      = "SEP00AABB000001.cnf.xml.sgn"
		itlOwn   = "ITLSEP001122334455.tlv"
		itlOther = "ITLSEP00AABB000001.tlv"
		junk     = "SEP0000DEADBEEF.cnf.xml.sgn"
		plain    = "SEP001122334455.cnf.xml"
	)
	files := map[string][]byte{
		good:     east.sign(t, good, []byte("<device>east</device>")),
		bad:      stranger.sign(t, bad, []byte("<device>stranger</device>")),
		itlOwn:   east.itlOf(t, false),
		itlOther: stranger.itlOf(t, false),
		junk:     []byte("<html>proxy error</html>"),
		plain:    []byte("<device/>"),
	}
	state := fakeTrust{
		"east":     {Known: true, Class: ClassSBD, ITL: east.parsedITL(t, false)},
		"pre8":     {Known: true, Class: ClassPre80},
		"rollback": {Known: true, Class: ClassRollback, ITL: east.parsedITL(t, true)},
		"new":      {},
		"alarmed":  {Known: true, Class: ClassSBD, ITL: east.parsedITL(t, false), Alarm: "ITL signer changed"},
	}
	tests := []struct {
		name       string
		sub, file  string
		mod        func(*Config)
		seekable   bool
		wantErr    []error
		checked    string // counter values after the call
		rejected   string
		refused    string
		nextCalled bool
	}{
		{name: "config signed by the cluster's CallManager", sub: "east", file: good, seekable: true, checked: "1", rejected: "0", nextCalled: true},
		{name: "config signed by a stranger: served, counted", sub: "east", file: bad, seekable: true, checked: "1", rejected: "1", nextCalled: true},
		{name: "config signed by a stranger, streamed body: served whole", sub: "east", file: bad, checked: "1", rejected: "1", nextCalled: true},
		{name: "config signed by a stranger, refuse policy", sub: "east", file: bad, seekable: true,
			mod: func(c *Config) { c.ForwardedPolicy = ForwardRefuse }, wantErr: []error{ErrUntrusted, ctftp.ErrDenied}, checked: "1", rejected: "1", nextCalled: true},
		{name: "the cluster's own ITL", sub: "east", file: itlOwn, seekable: true, checked: "1", rejected: "0", nextCalled: true},
		{name: "an ITL from another SAST", sub: "east", file: itlOther, seekable: true, checked: "1", rejected: "1", nextCalled: true},
		{name: "a .sgn that does not parse", sub: "east", file: junk, seekable: true, checked: "1", rejected: "1", nextCalled: true},
		{name: "a plain config is not checked", sub: "east", file: plain, seekable: true, checked: "0", rejected: "0", nextCalled: true},
		{name: "pre-8.0 phones take any config", sub: "pre8", file: bad, seekable: true, checked: "1", rejected: "0", nextCalled: true},
		{name: "rollback ITL: any config", sub: "rollback", file: bad, seekable: true, checked: "1", rejected: "0", nextCalled: true},
		{name: "not classified yet: not checked", sub: "new", file: bad, seekable: true, checked: "0", rejected: "0", nextCalled: true},
		{name: "check_forwarded off", sub: "east", file: bad, seekable: true, mod: func(c *Config) { c.CheckForwarded = false },
			checked: "0", rejected: "0", nextCalled: true},
		{name: "alarmed sub-cluster, warn: forwarded", sub: "alarmed", file: good, seekable: true, checked: "1", rejected: "0", refused: "0", nextCalled: true},
		{name: "alarmed sub-cluster, refuse: not forwarded", sub: "alarmed", file: good, seekable: true,
			mod: func(c *Config) { c.OnChange = PolicyRefuse }, wantErr: []error{ErrAlarmed, ctftp.ErrUnavailable}, checked: "0", rejected: "0", refused: "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			var called atomic.Bool
			next := ctftp.SourceFunc(func(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
				called.Store(true)
				b := files[req.Name]
				body := io.ReadCloser(onceBody{bytes.NewReader(b)})
				if tc.seekable {
					body = memBody{bytes.NewReader(b)}
				}
				return &ctftp.File{Body: body, Size: int64(len(b)), Origin: ctftp.OriginBackend, Subcluster: req.Subcluster}, nil
			})
			set := metrics.NewSet()
			g := NewGuard(next, cfg, state, []string{tc.sub}, slog.New(slog.DiscardHandler), set)
			f, err := g.Open(context.Background(), ctftp.Request{Name: tc.file, Subcluster: tc.sub, Mode: "octet"})
			if called.Load() != tc.nextCalled {
				t.Errorf("next called: %v, want %v", called.Load(), tc.nextCalled)
			}
			if len(tc.wantErr) > 0 {
				for _, w := range tc.wantErr {
					if !errors.Is(err, w) {
						t.Errorf("err = %v, want errors.Is %v", err, w)
					}
				}
				if f != nil {
					t.Error("a file came back with the error")
				}
			} else {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				got, _ := io.ReadAll(f.Body)
				if !bytes.Equal(got, files[tc.file]) || f.Size != int64(len(got)) {
					t.Errorf("body after the check: %d bytes (Size %d), want the whole %d", len(got), f.Size, len(files[tc.file]))
				}
			}
			for series, want := range map[string]string{
				`ctftp_trust_forwarded_checked_total{subcluster="` + tc.sub + `"}`:  tc.checked,
				`ctftp_trust_forwarded_rejected_total{subcluster="` + tc.sub + `"}`: tc.rejected,
				`ctftp_trust_refused_total{subcluster="` + tc.sub + `"}`:            tc.refused,
			} {
				if want == "" {
					continue
				}
				if got := set.GetOrCreateCounter(series).Get(); want != strconv.FormatUint(got, 10) {
					t.Errorf("%s = %d, want %s", series, got, want)
				}
			}
		})
	}
}

func TestTrustGuardLogsTheReason(t *testing.T) {
	east, stranger := newPKI(t, "east"), newPKI(t, "stranger")
	name := "SEP00AABB000001.cnf.xml.sgn"
	data := stranger.sign(t, name, []byte("<device/>"))
	next := ctftp.SourceFunc(func(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
		return &ctftp.File{Body: memBody{bytes.NewReader(data)}, Size: int64(len(data)), Backend: "127.0.0.1:69"}, nil
	})
	sink := &logSink{}
	g := NewGuard(next, DefaultConfig(), fakeTrust{"east": {Known: true, Class: ClassSBD, ITL: east.parsedITL(t, false)}},
		[]string{"east"}, slog.New(slog.NewJSONHandler(sink, nil)), metrics.NewSet())
	if _, err := g.Open(context.Background(), ctftp.Request{Name: name, Subcluster: "east"}); err != nil {
		t.Fatal(err)
	}
	recs := sink.records(t, "trust: forwarded file a phone would reject (Trust List Verification Failed)")
	if len(recs) != 1 {
		t.Fatalf("log records: %v", recs)
	}
	r := recs[0]
	if r["subcluster"] != "east" || r["file"] != name || r["policy"] != ForwardServe ||
		!strings.Contains(r["reason"].(string), "ITLRecovery_stranger") && !strings.Contains(r["reason"].(string), "cucm-stranger") {
		t.Errorf("log record: %v", r)
	}
}

func TestSignedName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"ITLSEP0011215A1AE3.tlv", true},
		{"CTLSEP0011215A1AE3.tlv", true},
		{"ITLFile.tlv", true},
		{"itlfile.TLV", true},
		{"SEP0011215A1AE3.cnf.xml.sgn", true},
		{"SEP0011215A1AE3.cnf.xml.enc.sgn", true},
		{"New_Zealand/g3-tones.xml.sgn", true},
		{"SIP88xx.14-1-1.loads.sha512", true},
		{"SEP0011215A1AE3.cnf.xml", false},
		{"foo.tlv", false},
		{"sgn", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := signedName(tc.name); got != tc.want {
			t.Errorf("signedName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// logSink collects JSON log records.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// records returns the records whose msg is msg.
func (s *logSink) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for line := range bytes.Lines(s.buf.Bytes()) {
		var r map[string]any
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}
