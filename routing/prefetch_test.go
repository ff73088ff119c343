package routing

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
)

func TestPrefetchConfig(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		want     []string // each must start a line of the error
	}{
		{"default", DefaultConfig().Prefetch, nil},
		{"off", nil, nil},
		{"every device family", []string{"CTLSEP{MAC}.tlv", "ITLSEP{MAC}.tlv", "SEP{MAC}.cnf.xml", "SEP{MAC}.cnf.xml.enc.sgn", "SIP{MAC}.cnf", "ATA{MAC}.cnf.xml"}, nil},
		{"no placeholder", []string{"XMLDefault.cnf.xml"}, []string{`prefetch[0]: "XMLDefault.cnf.xml": must contain {MAC} exactly once`}},
		{"two placeholders", []string{"SEP{MAC}{MAC}.cnf.xml"}, []string{`prefetch[0]: "SEP{MAC}{MAC}.cnf.xml": must contain {MAC} exactly once`}},
		{"not a device file", []string{"Desktop{MAC}.png", "SEP{MAC}.cnf.xml.bak", "SEP{MAC}0.cnf.xml"},
			[]string{`prefetch[0]: "Desktop{MAC}.png": not a per-device file name`, `prefetch[1]: "SEP{MAC}.cnf.xml.bak": not a per-device`, `prefetch[2]: "SEP{MAC}0.cnf.xml": not a per-device`}},
		{"directory", []string{"x/SEP{MAC}.cnf.xml"}, []string{`prefetch[0]: "x/SEP{MAC}.cnf.xml": not a per-device`}},
		{"twice", []string{"SEP{MAC}.cnf.xml", "sep{MAC}.CNF.xml"}, []string{`prefetch[1]: "sep{MAC}.CNF.xml": listed twice`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Prefetch = tc.patterns
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d = %q, want it to start with %q", i, lines[i], w)
				}
			}
		})
	}
}

// Route names the files that follow a request in the boot set, and none
// for a name that is not in it: shared files never start a prefetch.
func TestDecisionPrefetch(t *testing.T) {
	r := newTestRouter(t, DefaultConfig(), Options{})
	const mac = "0011215A1AE3"
	tests := []struct {
		name string
		want []string
	}{
		{"CTLSEP" + mac + ".tlv", []string{"ITLSEP" + mac + ".tlv", "SEP" + mac + ".cnf.xml.sgn"}},
		{"ctlsep0011215a1ae3.tlv", []string{"ITLSEP" + mac + ".tlv", "SEP" + mac + ".cnf.xml.sgn"}},
		{"ITLSEP" + mac + ".tlv", []string{"SEP" + mac + ".cnf.xml.sgn"}},
		{"SEP" + mac + ".cnf.xml.sgn", nil},
		{"SEP" + mac + ".cnf.xml", nil},
		{"CTLFile.tlv", nil},
		{"ITLFile.tlv", nil},
		{"XMLDefault.cnf.xml", nil},
		{"CTLSEPDEFAULT.tlv", nil},
		{"dir/CTLSEP" + mac + ".tlv", nil},
	}
	for _, tc := range tests {
		if got := r.Route(ctftp.Request{Name: tc.name}).Prefetch; !slices.Equal(got, tc.want) {
			t.Errorf("Route(%q).Prefetch = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// prefetchingNext is fakeNext with the Prefetcher capability: it records
// what it was asked to prefetch.
type prefetchingNext struct {
	*fakeNext
	mu   sync.Mutex
	asks []string // "sub-cluster name"
}

func (p *prefetchingNext) Prefetch(ctx context.Context, req ctftp.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ctx.Done() != nil {
		p.asks = append(p.asks, "cancellable context")
	}
	p.asks = append(p.asks, req.Subcluster+" "+req.Name)
}

func (p *prefetchingNext) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.asks
	p.asks = nil
	return a
}

func TestForwarderPrefetches(t *testing.T) {
	const mac = "0011215A1AE3"
	ctl, itl, cnf := "CTLSEP"+mac+".tlv", "ITLSEP"+mac+".tlv", "SEP"+mac+".cnf.xml.sgn"
	ms := time.Millisecond
	tests := []struct {
		name  string
		rules []Rule
		waves []Wave
		specs map[string]answerSpec
		open  []string
		want  []string
	}{
		{
			name:  "a migration wave: at once, into the side it serves from",
			rules: []Rule{{MAC: []string{mac}, Subcluster: "east"}},
			waves: []Wave{{Name: "w1", From: "east", To: "west", Devices: []string{mac}, State: WaveCutover}},
			specs: map[string]answerSpec{"east": found(0), "west": notFound(0)},
			open:  []string{ctl},
			want:  []string{"west " + itl, "west " + cnf},
		},
		{
			name:  "a rule: at once, even when the first file is in no sub-cluster",
			rules: []Rule{{MAC: []string{mac}, Subcluster: "west"}},
			specs: map[string]answerSpec{"east": found(0), "west": notFound(0)},
			open:  []string{ctl},
			want:  []string{"west " + itl, "west " + cnf},
		},
		{
			name:  "a fan-out: into the sub-cluster that answered",
			specs: map[string]answerSpec{"east": notFound(0), "west": found(ms), "east " + ctl: notFound(0), "west " + ctl: found(0)},
			open:  []string{ctl},
			want:  []string{"west " + itl, "west " + cnf},
		},
		{
			name:  "a fan-out nobody answers: nothing",
			specs: map[string]answerSpec{"east": notFound(0), "west": notFound(0)},
			open:  []string{ctl},
			want:  nil,
		},
		{
			name:  "a learned route: at once",
			specs: map[string]answerSpec{"east": notFound(0), "west": found(0)},
			open:  []string{itl, cnf, ctl},
			// itl fans out and is found in west (prefetch cnf there);
			// cnf is the last of the set; ctl goes to the learned west.
			want: []string{"west " + cnf, "west " + itl, "west " + cnf},
		},
		{
			name:  "shared files: nothing",
			rules: []Rule{{Client: "127.0.0.0/8", Subcluster: "west"}},
			specs: map[string]answerSpec{"east": found(0), "west": found(0)},
			open:  []string{"XMLDefault.cnf.xml", "ITLFile.tlv", "CTLFile.tlv", "SEP" + mac + ".cnf.xml"},
			want:  nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Rules = tc.rules
			next := &prefetchingNext{fakeNext: newFakeNext(tc.specs)}
			opts := Options{Logger: slog.New(slog.DiscardHandler), Metrics: metrics.NewSet()}
			if tc.waves != nil {
				m, err := NewMigrations(tc.waves, testSubclusters, opts)
				if err != nil {
					t.Fatal(err)
				}
				opts.Migrations = m
			}
			src := NewForwarder(newTestRouter(t, cfg, opts), next, opts)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			for _, name := range tc.open {
				f, err := src.Open(ctx, ctftp.Request{Name: name, Mode: "octet", Client: netip.MustParseAddrPort("127.0.0.1:50000")})
				if err == nil {
					f.Body.Close()
				}
			}
			if got := next.take(); !slices.Equal(got, tc.want) {
				t.Errorf("prefetched %q, want %q", got, tc.want)
			}
		})
	}
}

// A forwarder whose next cannot prefetch works as before, and says at
// once that prefetching is off.
func TestForwarderWithoutPrefetcher(t *testing.T) {
	h := newHarness(t, DefaultConfig(), map[string]answerSpec{"east": found(0), "west": notFound(0), "south": notFound(0)})
	if !strings.Contains(h.log.String(), "no prefetch will be made") {
		t.Errorf("no warning that prefetch is off: %s", h.log.String())
	}
	f, err, _ := h.open(t, "CTLSEP0011215A1AE3.tlv")
	if err != nil {
		t.Fatal(err)
	}
	f.Body.Close()

	cfg := DefaultConfig()
	cfg.Prefetch = nil
	if h := newHarness(t, cfg, map[string]answerSpec{}); strings.Contains(h.log.String(), "prefetch") {
		t.Errorf("a warning with prefetch off: %s", h.log.String())
	}
}

// FuzzPrefetchPattern: any routing.prefetch entry is accepted or refused
// without a panic, and an accepted one names a per-device file of the
// MAC it is expanded with, which Route then recognises as in the set.
func FuzzPrefetchPattern(f *testing.F) {
	for _, s := range []string{"CTLSEP{MAC}.tlv", "SEP{MAC}.cnf.xml.sgn", "{MAC}", "SEP{MAC}{MAC}", "x/SEP{MAC}.cnf", "ATA{MAC}", "sep{MAC}.CNF.XML", "\x00{MAC}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		bps, errs := compilePrefetch([]string{p, "ITLSEP{MAC}.tlv"})
		if len(errs) > 0 {
			return
		}
		if len(bps) != 2 {
			t.Fatalf("%q: %d patterns compiled without an error", p, len(bps))
		}
		const mac = "00AABBCCDDEE"
		name := bps[0].expand(mac)
		if got, ok := ctftp.DeviceMAC(name); !ok || got != mac {
			t.Fatalf("%q expands to %q, not a device file of %s", p, name, mac)
		}
		r := &Router{prefetch: bps}
		if next := r.prefetchAfter(name, mac); !slices.Equal(next, []string{"ITLSEP" + mac + ".tlv"}) && !strings.EqualFold(name, "ITLSEP"+mac+".tlv") {
			t.Fatalf("prefetchAfter(%q) = %q", name, next)
		}
	})
}
