package routing

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // one prefix per expected line, in order
	}{
		{"defaults", func(*Config) {}, nil},
		{"empty strategy means parallel", func(c *Config) { c.Strategy = "" }, nil},
		{"sequential", func(c *Config) { c.Strategy = StrategySequential }, nil},
		{"zero grace", func(c *Config) { c.Grace = 0 }, nil},
		{"learning off", func(c *Config) { c.LearnTTL, c.LearnMax = 0, 0 }, nil},
		{"every matcher", func(c *Config) {
			c.Rules = []Rule{
				{Client: "10.1.0.0/16", Subcluster: "east"},
				{Client: "10.9.8.7", Subcluster: "east"},
				{Client: "2001:db8::/32", Subcluster: "east"},
				{MAC: []string{"0011215A1AE3", "00:11:21:5a:1a:e4"}, Subcluster: "west"},
				{MACPrefix: "00AABB", Subcluster: "west"},
				{DeviceFile: "testdata/devices.txt", Subcluster: "west"},
			}
		}, nil},
		{"bad strategy", func(c *Config) { c.Strategy = "random" }, []string{"strategy: "}},
		{"negative grace", func(c *Config) { c.Grace = -time.Millisecond }, []string{"grace: must not be negative"}},
		{"huge grace", func(c *Config) { c.Grace = 2 * time.Second }, []string{"grace: must be at most 1s"}},
		{"negative ttl", func(c *Config) { c.LearnTTL = -time.Hour }, []string{"learn_ttl: "}},
		{"negative max", func(c *Config) { c.LearnMax = -1 }, []string{"learn_max: "}},
		{"no matcher", func(c *Config) { c.Rules = []Rule{{Subcluster: "east"}} },
			[]string{"rules[0]: needs exactly one of client, mac, mac_prefix or device_file; none is set"}},
		{"two matchers", func(c *Config) { c.Rules = []Rule{{Client: "10.0.0.0/8", MACPrefix: "00", Subcluster: "east"}} },
			[]string{"rules[0]: needs exactly one of client, mac, mac_prefix or device_file; client and mac_prefix are set"}},
		{"no subcluster", func(c *Config) { c.Rules = []Rule{{MACPrefix: "00"}} }, []string{"rules[0].subcluster: missing"}},
		{"device names pasted from CUCM", func(c *Config) {
			c.Rules = []Rule{{MAC: []string{"SEP0011215A1AE3"}, Subcluster: "east"}, {MACPrefix: "sep00aabb", Subcluster: "west"}}
		}, []string{
			`rules[0].mac[0]: "SEP0011215A1AE3": 'S': not a hex digit (a device name: write it without SEP, 0011215A1AE3)`,
			`rules[1].mac_prefix: "sep00aabb": 's': not a hex digit (a device name: write it without sep, 00AABB)`,
		}},
		{"bad cidr", func(c *Config) { c.Rules = []Rule{{Client: "10.0.0.0/33", Subcluster: "east"}} }, []string{"rules[0].client: "}},
		{"bad address", func(c *Config) { c.Rules = []Rule{{Client: "east.example.com", Subcluster: "east"}} }, []string{"rules[0].client: "}},
		{"zone", func(c *Config) { c.Rules = []Rule{{Client: "fe80::1%eth0", Subcluster: "east"}} }, []string{"rules[0].client: "}},
		{"empty mac list", func(c *Config) { c.Rules = []Rule{{MAC: []string{}, Subcluster: "east"}} }, []string{"rules[0].mac: empty list"}},
		{"bad macs", func(c *Config) {
			c.Rules = []Rule{{MAC: []string{"0011215A1AE3", "0011215A1AE", "xyz"}, Subcluster: "east"}}
		}, []string{"rules[0].mac[1]: ", "rules[0].mac[2]: "}},
		{"long prefix", func(c *Config) { c.Rules = []Rule{{MACPrefix: "0011215A1AE30", Subcluster: "east"}} }, []string{"rules[0].mac_prefix: "}},
		{"every problem at once", func(c *Config) {
			c.Strategy = "x"
			c.Grace = -1
			c.LearnMax = -1
			c.Rules = []Rule{
				{Client: "10.0.0.0/8", Subcluster: "east"},
				{MACPrefix: "zz"},
				{},
			}
		}, []string{
			"strategy: ",
			"grace: ",
			"learn_max: ",
			"rules[1].mac_prefix: ",
			"rules[1].subcluster: missing",
			"rules[2]: needs exactly one",
			"rules[2].subcluster: missing",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.modify(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("Validate() reported %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d = %q, want prefix %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestParseClient(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"ipv4 cidr", "10.1.0.0/16", "10.1.0.0/16", false},
		{"host bits masked", "10.1.2.3/16", "10.1.0.0/16", false},
		{"bare ipv4", "10.1.2.3", "10.1.2.3/32", false},
		{"ipv6 cidr", "2001:db8::/32", "2001:db8::/32", false},
		{"bare ipv6", "2001:db8::1", "2001:db8::1/128", false},
		{"mapped bare", "::ffff:10.1.2.3", "10.1.2.3/32", false},
		{"mapped cidr", "::ffff:10.1.0.0/112", "10.1.0.0/16", false},
		{"everything v4", "0.0.0.0/0", "0.0.0.0/0", false},
		{"too long", "10.0.0.0/33", "", true},
		{"name", "tftp.example.com", "", true},
		{"zone", "fe80::1%eth0", "", true},
		{"zone cidr", "fe80::%eth0/64", "", true},
		{"empty mask", "10.0.0.0/", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseClient(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseClient(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err == nil && p.String() != tt.want {
				t.Errorf("ParseClient(%q) = %s, want %s", tt.in, p, tt.want)
			}
		})
	}
}

// FuzzRule feeds arbitrary matcher text to rule compilation: it must never
// panic, and whatever it accepts must be in the form Route relies on.
func FuzzRule(f *testing.F) {
	f.Add("10.1.0.0/16", "0011215A1AE3", "00AABB")
	f.Add("2001:db8::1", "00:11:21:5a:1a:e3", "00-aa")
	f.Add("::ffff:10.0.0.0/104", "0011.215a.1ae3", "0")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, client, mac, prefix string) {
		for _, r := range []Rule{
			{Client: client, Subcluster: "east"},
			{MAC: []string{mac}, Subcluster: "east"},
			{MACPrefix: prefix, Subcluster: "east"},
			{Client: client, MAC: []string{mac}, MACPrefix: prefix, Subcluster: "east"},
		} {
			c, err := r.compile("rules[0]")
			if err == nil && c.kind == "" {
				t.Fatalf("compile(%+v) accepted a rule with no matcher", r)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "rules[0]") {
				t.Fatalf("compile(%+v) = %v: does not name the rule", r, err)
			}
		}
		if p, err := ParseClient(client); err == nil {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() && p.Bits() >= 96 {
				t.Fatalf("ParseClient(%q) = %v: not a masked, unmapped prefix", client, p)
			}
			if again, err := ParseClient(p.String()); err != nil || again != p {
				t.Fatalf("ParseClient(%q) = %v, but ParseClient(%q) = %v, %v", client, p, p.String(), again, err)
			}
			// Route unmaps clients: an unmapped address inside p matches.
			if !p.Contains(p.Addr()) {
				t.Fatalf("ParseClient(%q) = %v does not contain its own address", client, p)
			}
		}
		if m, err := parseMAC(mac); err == nil {
			if len(m) != macLen || !isHex(m) || strings.ToUpper(m) != m {
				t.Fatalf("parseMAC(%q) = %q", mac, m)
			}
			if again, err := parseMAC(m); err != nil || again != m {
				t.Fatalf("parseMAC(%q) = %q, %v; not idempotent", m, again, err)
			}
		}
		if p, err := parseMACPrefix(prefix); err == nil {
			if len(p) < 1 || len(p) > macLen || !isHex(p) || strings.ToUpper(p) != p {
				t.Fatalf("parseMACPrefix(%q) = %q", prefix, p)
			}
		}
	})
}
