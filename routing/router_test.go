package routing

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
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

// fakeClock is a settable clock for learned-route ages.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var testSubclusters = []string{"east", "west", "south"}

// testRules has one rule of every kind, in an order that makes the
// first-match-wins rule visible: 10.1.0.0/16 phones go east whatever
// their MAC.
func testRules() []Rule {
	return []Rule{
		{Client: "10.1.0.0/16", Subcluster: "east"},               // 0
		{MAC: []string{"00:11:21:5a:1a:e3"}, Subcluster: "west"},  // 1
		{MACPrefix: "00AABB", Subcluster: "west"},                 // 2
		{DeviceFile: "testdata/devices.txt", Subcluster: "south"}, // 3 (00AABBCCDD0x: shadowed by 2)
		{MACPrefix: "00-AA", Subcluster: "south"},                 // 4
		{Client: "2001:db8:5::/48", Subcluster: "south"},          // 5
		{DeviceFile: "testdata/devices.txt", Subcluster: "east"},  // 6 (never reached)
		{MAC: []string{"0011.215a.1ae4"}, Subcluster: "south"},    // 7
		{Client: "192.0.2.7", Subcluster: "west"},                 // 8
		{MACPrefix: "0", Subcluster: "east"},                      // 9: every MAC starting with 0
	}
}

func newTestRouter(t *testing.T, cfg Config, opts Options) *Router {
	t.Helper()
	r, err := New(cfg, testSubclusters, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func req(name, client string) ctftp.Request {
	r := ctftp.Request{Name: name, Mode: "octet"}
	if client != "" {
		r.Client = netip.MustParseAddrPort(client)
	}
	return r
}

func TestRouteRules(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rules = testRules()
	r := newTestRouter(t, cfg, Options{})

	tests := []struct {
		name     string
		req      ctftp.Request
		wantKind Kind
		wantRule int
		wantSC   []string
		wantMAC  string
		reason   string
	}{
		{"client rule wins over mac rule", req("SEP0011215A1AE3.cnf.xml.sgn", "10.1.2.3:50000"),
			RuleMatch, 0, []string{"east"}, "0011215A1AE3", "rules[0] (client 10.1.2.3 in 10.1.0.0/16) -> east"},
		{"client rule applies to files with no MAC", req("SIP88xx.12-8-1-0001-455.loads", "10.1.2.3:50000"),
			RuleMatch, 0, []string{"east"}, "", "rules[0] (client 10.1.2.3 in 10.1.0.0/16) -> east"},
		{"ipv4-mapped client", req("ITLFile.tlv", "[::ffff:10.1.200.1]:69"),
			RuleMatch, 0, []string{"east"}, "", "rules[0] (client 10.1.200.1 in 10.1.0.0/16) -> east"},
		{"mac list", req("SEP0011215A1AE3.cnf.xml.sgn", "10.2.0.5:1024"),
			RuleMatch, 1, []string{"west"}, "0011215A1AE3", "rules[1] (mac 0011215A1AE3) -> west"},
		{"mac list, unknown client", req("ITLSEP0011215A1AE3.tlv", ""),
			RuleMatch, 1, []string{"west"}, "0011215A1AE3", "rules[1] (mac 0011215A1AE3) -> west"},
		{"mac prefix", req("CTLSEP00AABB000001.tlv", ""),
			RuleMatch, 2, []string{"west"}, "00AABB000001", "rules[2] (mac 00AABB000001 has mac_prefix 00AABB) -> west"},
		{"earlier prefix shadows device file", req("SEP00AABBCCDD01.cnf.xml", ""),
			RuleMatch, 2, []string{"west"}, "00AABBCCDD01", "rules[2] (mac 00AABBCCDD01 has mac_prefix 00AABB) -> west"},
		{"shorter prefix", req("SEP00AA00000001.cnf.xml", ""),
			RuleMatch, 4, []string{"south"}, "00AA00000001", "rules[4] (mac 00AA00000001 has mac_prefix 00AA) -> south"},
		{"ipv6 client", req("SEP1234567890AB.cnf.xml", "[2001:db8:5::10]:40000"),
			RuleMatch, 5, []string{"south"}, "1234567890AB", "rules[5] (client 2001:db8:5::10 in 2001:db8:5::/48) -> south"},
		{"mac list after client rules", req("SEP0011215A1AE4.cnf.xml", "[2001:db8:6::10]:40000"),
			RuleMatch, 7, []string{"south"}, "0011215A1AE4", "rules[7] (mac 0011215A1AE4) -> south"},
		{"bare address rule", req("SEP1234567890AB.cnf.xml", "192.0.2.7:1000"),
			RuleMatch, 8, []string{"west"}, "1234567890AB", "rules[8] (client 192.0.2.7 in 192.0.2.7/32) -> west"},
		{"bare address is /32", req("SEP1234567890AB.cnf.xml", "192.0.2.8:1000"),
			FanOut, -1, testSubclusters, "1234567890AB", "MAC 1234567890AB: no rule matched, no learned route: parallel fan-out over east, west, south"},
		{"one-digit prefix", req("SEP0F0000000000.cnf.xml", ""),
			RuleMatch, 9, []string{"east"}, "0F0000000000", "rules[9] (mac 0F0000000000 has mac_prefix 0) -> east"},
		{"no mac, no client rule", req("ITLFile.tlv", "10.2.0.5:1024"),
			FanOut, -1, testSubclusters, "", "no MAC in the file name and no rule matched: parallel fan-out over east, west, south"},
		{"default config is not a mac", req("SEPDEFAULT.cnf.xml", ""),
			FanOut, -1, testSubclusters, "", "no MAC in the file name and no rule matched: parallel fan-out over east, west, south"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := r.Route(tt.req)
			if d.Kind != tt.wantKind || d.Rule != tt.wantRule || !slices.Equal(d.Subclusters, tt.wantSC) || d.MAC != tt.wantMAC {
				t.Errorf("Route = %+v; want kind %v rule %d subclusters %v mac %q", d, tt.wantKind, tt.wantRule, tt.wantSC, tt.wantMAC)
			}
			if d.Reason != tt.reason {
				t.Errorf("Reason = %q\n      want %q", d.Reason, tt.reason)
			}
			if d.Strategy != StrategyParallel {
				t.Errorf("Strategy = %q, want parallel", d.Strategy)
			}
		})
	}
}

func TestRouteDeviceFile(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rules = []Rule{{DeviceFile: "testdata/devices.txt", Subcluster: "south"}}
	r := newTestRouter(t, cfg, Options{})
	for _, mac := range []string{"00AABBCCDD01", "00AABBCCDD02", "00AABBCCDD03", "00AABBCCDD04"} {
		d := r.Route(req("SEP"+mac+".cnf.xml", ""))
		want := fmt.Sprintf("rules[0] (mac %s in device_file testdata/devices.txt) -> south", mac)
		if d.Kind != RuleMatch || d.Reason != want {
			t.Errorf("%s: Route = %v %q, want rule %q", mac, d.Kind, d.Reason, want)
		}
	}
	if d := r.Route(req("SEP00AABBCCDD05.cnf.xml", "")); d.Kind != FanOut {
		t.Errorf("MAC not in the file: Route = %v, want fanout", d.Kind)
	}
}

// TestRouteBATExport: a CUCM "Export Phones" CSV routes the phones it
// names by MAC, whatever file of theirs they ask for.
func TestRouteBATExport(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rules = []Rule{{DeviceFile: "testdata/bat-export-phones.csv", Subcluster: "west"}}
	r := newTestRouter(t, cfg, Options{})
	for _, name := range []string{"SEP00AABBCC0101.cnf.xml.sgn", "ITLSEP00AABBCC0102.tlv", "ATA00AABBCC0103.cnf.xml"} {
		if d := r.Route(req(name, "")); d.Kind != RuleMatch || !slices.Equal(d.Subclusters, []string{"west"}) {
			t.Errorf("%s: Route = %v %v, want rule -> west", name, d.Kind, d.Subclusters)
		}
	}
	// BAT00AABBCC0104 is a dummy-MAC placeholder, not a phone's MAC.
	if d := r.Route(req("SEP00AABBCC0104.cnf.xml", "")); d.Kind != FanOut {
		t.Errorf("placeholder: Route = %v, want fanout", d.Kind)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name        string
		rules       []Rule
		subclusters []string
		want        []string // substrings, one per expected line
		wantIs      error
	}{
		{"unknown subcluster", []Rule{{MACPrefix: "00", Subcluster: "north"}}, testSubclusters,
			[]string{`rules[0].subcluster: "north": unknown sub-cluster (configured: east, west, south)`}, ErrUnknownSubcluster},
		{"missing device file", []Rule{{DeviceFile: "testdata/nonexistent.txt", Subcluster: "east"}}, testSubclusters,
			[]string{"rules[0].device_file: open testdata/nonexistent.txt"}, fs.ErrNotExist},
		{"bad device file lines", []Rule{{DeviceFile: "testdata/bad-devices.txt", Subcluster: "east"}}, testSubclusters,
			[]string{"rules[0].device_file: testdata/bad-devices.txt:3: ", "rules[0].device_file: testdata/bad-devices.txt:4: "}, errMACDigit},
		{"bad export rows", []Rule{{DeviceFile: "testdata/bad-export.csv", Subcluster: "east"}}, testSubclusters,
			[]string{"rules[0].device_file: testdata/bad-export.csv:3: ", "rules[0].device_file: testdata/bad-export.csv:4: ",
				"rules[0].device_file: testdata/bad-export.csv:5: "}, nil},
		{"no subclusters", nil, nil, []string{"subclusters: no sub-clusters"}, ErrNoSubclusters},
		{"duplicate subcluster", nil, []string{"east", "east"}, []string{`subclusters: "east" listed twice`}, nil},
		{"empty subcluster", nil, []string{"east", ""}, []string{"subclusters: empty sub-cluster name"}, nil},
		{"validate and new problems together", []Rule{
			{MACPrefix: "zz", Subcluster: "east"},
			{Client: "10.0.0.0/8", Subcluster: "north"},
		}, testSubclusters, []string{"rules[0].mac_prefix: ", "rules[1].subcluster: "}, ErrUnknownSubcluster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Rules = tt.rules
			r, err := New(cfg, tt.subclusters, Options{})
			if err == nil || r != nil {
				t.Fatalf("New = %v, %v; want an error", r, err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("New reported %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
		})
	}
}

func TestLearnedRoutes(t *testing.T) {
	const (
		a = "0011215A1AE3"
		b = "0011215A1AE4"
		c = "0011215A1AE5"
	)
	type step struct {
		op      string // learn, forget, advance, expect
		mac, sc string
		d       time.Duration
	}
	learn := func(mac, sc string) step { return step{op: "learn", mac: mac, sc: sc} }
	forget := func(mac string) step { return step{op: "forget", mac: mac} }
	advance := func(d time.Duration) step { return step{op: "advance", d: d} }
	expect := func(mac, sc string) step { return step{op: "expect", mac: mac, sc: sc} } // sc "" = fan-out
	count := func(n int) step { return step{op: "count", d: time.Duration(n)} }

	tests := []struct {
		name  string
		ttl   time.Duration
		max   int
		steps []step
	}{
		{"learn then route", time.Hour, 10, []step{
			expect(a, ""), learn(a, "west"), expect(a, "west"), expect(b, ""), count(1),
		}},
		{"separators and case in Learn", time.Hour, 10, []step{
			learn("00:11:21:5a:1a:e3", "west"), expect(a, "west"),
		}},
		{"ttl expiry", time.Hour, 10, []step{
			learn(a, "west"), advance(time.Hour - time.Nanosecond), expect(a, "west"),
			advance(time.Nanosecond), expect(a, ""), count(0),
		}},
		{"confirming restarts the ttl", time.Hour, 10, []step{
			learn(a, "west"), advance(50 * time.Minute), learn(a, "west"),
			advance(50 * time.Minute), expect(a, "west"), advance(10 * time.Minute), expect(a, ""),
		}},
		{"device moved", time.Hour, 10, []step{
			learn(a, "west"), learn(a, "south"), expect(a, "south"), count(1),
		}},
		{"eviction of the oldest", time.Hour, 2, []step{
			learn(a, "east"), learn(b, "west"), learn(c, "south"),
			expect(a, ""), expect(b, "west"), expect(c, "south"), count(2),
		}},
		{"confirmed route survives eviction", time.Hour, 2, []step{
			learn(a, "east"), learn(b, "west"), learn(a, "east"), learn(c, "south"),
			expect(a, "east"), expect(b, ""), expect(c, "south"),
		}},
		{"expired routes make room first", time.Hour, 2, []step{
			learn(a, "east"), advance(30 * time.Minute), learn(b, "west"), advance(31 * time.Minute),
			learn(c, "south"), expect(a, ""), expect(b, "west"), expect(c, "south"), count(2),
		}},
		{"forget", time.Hour, 10, []step{
			learn(a, "east"), learn(b, "west"), forget(a), expect(a, ""), expect(b, "west"), count(1),
			forget(a), forget("not a mac"), count(1),
		}},
		{"unknown subcluster ignored", time.Hour, 10, []step{
			learn(a, "north"), expect(a, ""), count(0),
		}},
		{"bad mac ignored", time.Hour, 10, []step{
			learn("SEP0011215A1AE3", "east"), learn("", "east"), count(0),
		}},
		{"learning off by ttl", 0, 10, []step{
			learn(a, "east"), expect(a, ""), count(0),
		}},
		{"learning off by max", time.Hour, 0, []step{
			learn(a, "east"), expect(a, ""), count(0),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			set := metrics.NewSet()
			cfg := DefaultConfig()
			cfg.LearnTTL, cfg.LearnMax = tt.ttl, tt.max
			r := newTestRouter(t, cfg, Options{Now: clock.Now, Metrics: set})
			for i, s := range tt.steps {
				switch s.op {
				case "learn":
					r.Learn(s.mac, s.sc)
				case "forget":
					r.Forget(s.mac)
				case "advance":
					clock.Advance(s.d)
				case "expect":
					d := r.Route(req("SEP"+s.mac+".cnf.xml.sgn", ""))
					if s.sc == "" {
						if d.Kind != FanOut {
							t.Fatalf("step %d: Route(%s) = %v -> %v, want fanout", i, s.mac, d.Kind, d.Subclusters)
						}
						continue
					}
					if d.Kind != Learned || !slices.Equal(d.Subclusters, []string{s.sc}) || d.Rule != -1 {
						t.Fatalf("step %d: Route(%s) = %+v, want learned -> %s", i, s.mac, d, s.sc)
					}
				case "count":
					if got := r.Learned(); got != int(s.d) {
						t.Fatalf("step %d: Learned() = %d, want %d", i, got, s.d)
					}
					if got := set.GetOrCreateGauge(metricLearned, nil).Get(); got != float64(s.d) {
						t.Fatalf("step %d: %s = %v, want %d", i, metricLearned, got, s.d)
					}
					lr, sum := r.LearnedRoutes(0), 0
					for _, n := range lr.BySubcluster {
						sum += n
					}
					if lr.Total != int(s.d) || sum != lr.Total {
						t.Fatalf("step %d: LearnedRoutes total %d, per sub-cluster %v; want %d", i, lr.Total, lr.BySubcluster, s.d)
					}
				}
			}
		})
	}
}

func TestLearnedReason(t *testing.T) {
	clock := newFakeClock()
	r := newTestRouter(t, DefaultConfig(), Options{Now: clock.Now})
	r.Learn("0011215A1AE3", "west")
	clock.Advance(90 * time.Second)
	d := r.Route(req("ITLSEP0011215A1AE3.tlv", ""))
	want := "learned route 0011215A1AE3 -> west (confirmed 1m30s ago); if west no longer has the file: parallel fan-out over east, south"
	if d.Reason != want {
		t.Errorf("Reason = %q\n      want %q", d.Reason, want)
	}
}

func TestRulesBeatLearnedRoutes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rules = []Rule{{MAC: []string{"0011215A1AE3"}, Subcluster: "east"}}
	r := newTestRouter(t, cfg, Options{})
	r.Learn("0011215A1AE3", "west")
	if d := r.Route(req("SEP0011215A1AE3.cnf.xml", "")); d.Kind != RuleMatch || d.Subclusters[0] != "east" {
		t.Errorf("Route = %+v, want the rule", d)
	}
}

func TestDeviceMovedIsLogged(t *testing.T) {
	var buf bytes.Buffer
	r := newTestRouter(t, DefaultConfig(), Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	r.Learn("0011215A1AE3", "west")
	r.Learn("0011215A1AE3", "west")
	if buf.Len() != 0 {
		t.Fatalf("confirming a route logged %q", buf.String())
	}
	r.Learn("0011215A1AE3", "south")
	if got := buf.String(); !strings.Contains(got, "mac=0011215A1AE3 from=west to=south") {
		t.Errorf("log = %q, want the move", got)
	}
}

func TestRouteConcurrentWithLearn(t *testing.T) {
	r := newTestRouter(t, DefaultConfig(), Options{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				mac := fmt.Sprintf("0011215A%04X", i)
				switch w {
				case 0:
					r.Learn(mac, testSubclusters[i%3])
				case 1:
					r.Forget(mac)
				default:
					d := r.Route(req("SEP"+mac+".cnf.xml", ""))
					if len(d.Subclusters) == 0 {
						t.Errorf("Route(%s) gave no sub-clusters", mac)
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{RuleMatch: "rule", Learned: "learned", FanOut: "fanout", Kind(7): "Kind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
		if b, _ := k.MarshalText(); string(b) != want {
			t.Errorf("Kind(%d).MarshalText() = %q, want %q", int(k), b, want)
		}
	}
}

func BenchmarkRoute(b *testing.B) {
	cfg := DefaultConfig()
	// A realistic worst case: many site subnets before the MAC rules.
	for i := range 100 {
		cfg.Rules = append(cfg.Rules, Rule{Client: fmt.Sprintf("10.%d.0.0/16", i), Subcluster: testSubclusters[i%3]})
	}
	cfg.Rules = append(cfg.Rules, testRules()...)
	r, err := New(cfg, testSubclusters, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		r.Learn(fmt.Sprintf("B000%08X", i), testSubclusters[i%3])
	}
	cases := []struct {
		name string
		req  ctftp.Request
	}{
		{"first client rule", req("SEP00B000000001.cnf.xml.sgn", "10.0.1.1:5000")},
		{"mac rule after 100 client rules", req("SEP0011215A1AE3.cnf.xml.sgn", "172.16.0.1:5000")},
		{"learned", req("SEPB00000000001.cnf.xml.sgn", "172.16.0.1:5000")},
		{"fanout no mac", req("SIP88xx.12-8-1-0001-455.loads", "172.16.0.1:5000")},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = r.Route(c.req)
			}
		})
	}
}

// TestLearnedRoutesCarryOver: a Router built for a reload takes the
// learned routes of the one it replaces, with their ages, for the
// sub-clusters it still has, within its own learn_ttl and learn_max.
func TestLearnedRoutesCarryOver(t *testing.T) {
	const (
		a = "0011215A1AE3" // east, learned first
		b = "0011215A1AE4" // west, an hour later
		c = "0011215A1AE5" // south, which the new config drops
	)
	clock := newFakeClock()
	cfg := DefaultConfig()
	cfg.LearnTTL = 24 * time.Hour
	old := newTestRouter(t, cfg, Options{Now: clock.Now})
	old.Learn(a, "east")
	clock.Advance(time.Hour)
	old.Learn(b, "west")
	old.Learn(c, "south")
	clock.Advance(22 * time.Hour)

	where := func(r *Router, mac string) string {
		d := r.Route(req("ITLSEP"+mac+".tlv", ""))
		if d.Kind != Learned {
			return d.Kind.String()
		}
		return d.Subclusters[0]
	}
	for _, tc := range []struct {
		name    string
		ttl     time.Duration
		max     int
		advance time.Duration
		want    map[string]string
		count   int
	}{
		{"same ttl", 24 * time.Hour, 100, 0, map[string]string{a: "east", b: "west", c: "fanout"}, 2},
		// The routes keep their ages: a, learned 23 h ago, expires an
		// hour before b.
		{"ages kept", 24 * time.Hour, 100, time.Hour, map[string]string{a: "fanout", b: "west"}, 2},
		{"a shorter ttl", 22*time.Hour + 30*time.Minute, 100, 0, map[string]string{a: "fanout", b: "west"}, 1},
		{"a smaller table keeps the newest", 24 * time.Hour, 1, 0, map[string]string{a: "fanout", b: "west"}, 1},
		{"learning off", 0, 100, 0, map[string]string{a: "fanout", b: "fanout"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{now: clock.Now()}
			c := DefaultConfig()
			c.LearnTTL, c.LearnMax = tc.ttl, tc.max
			set := metrics.NewSet()
			r, err := New(c, []string{"east", "west"}, Options{Now: clock.Now, Previous: old, Metrics: set})
			if err != nil {
				t.Fatal(err)
			}
			var exp bytes.Buffer
			set.WritePrometheus(&exp)
			if want := fmt.Sprintf("ctftp_routing_learned_routes %d\n", tc.count); !strings.Contains(exp.String(), want) {
				t.Errorf("metrics lack %q:\n%s", want, exp.String())
			}
			clock.Advance(tc.advance)
			for mac, want := range tc.want {
				if got := where(r, mac); got != want {
					t.Errorf("%s: %s, want %s", mac, got, want)
				}
			}
		})
	}
	if n := old.Learned(); n != 3 {
		t.Errorf("the replaced router holds %d routes, want its 3 untouched", n)
	}
}
