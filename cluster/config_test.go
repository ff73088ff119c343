package cluster

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Subclusters = []SubclusterConfig{
		{Name: "east", Version: "12.5", Backends: []string{"10.1.0.10:69", "tftp.east.example.com", "_tftp._udp.east.example.com"}},
		{Name: "west", Version: "auto", Backends: []string{"[2001:db8::10]:1069"}, Timeout: 5 * time.Second, Retries: 1, MaxInFlight: 3},
	}
	c.DNS.Servers = []string{"10.0.0.53:53", "10.0.0.54", "[2001:db8::53]:5353"}
	return c
}

func TestDefaultAndValidConfig(t *testing.T) {
	for name, c := range map[string]Config{"default": DefaultConfig(), "full": validConfig()} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := validConfig().Names(); strings.Join(got, ",") != "east,west" {
		t.Errorf("Names = %v", got)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string // each a prefix-and-substring of one problem line
	}{
		{
			name: "sub-cluster problems",
			change: func(c *Config) {
				c.Subclusters = []SubclusterConfig{
					{Name: "", Version: "12.5", Backends: []string{"10.0.0.1"}},
					{Name: "east", Version: "twelve", Backends: nil},
					{Name: "east", Version: "8.6", Backends: []string{"10.0.0.1", "10.0.0.1:69", "bad host", "_ldap._tcp.x.com", "_tftp._udp.x.com:69", "10.1.0.300"}},
					{Name: "we st", Version: "auto", Backends: []string{"x.com"}, Timeout: -1, Retries: 11, MaxInFlight: -2},
				}
			},
			want: []string{
				"subclusters[0].name: missing",
				"subclusters[1].version: \"twelve\"",
				"subclusters[1].backends: at least one",
				"subclusters[2].name: \"east\" is already the name of subclusters[1]",
				"subclusters[2].backends[1]: \"10.0.0.1:69\" is the same backend as backends[0]",
				"subclusters[2].backends[2]: \"bad host\"",
				"subclusters[2].backends[3]: \"_ldap._tcp.x.com\"",
				"subclusters[2].backends[4]: \"_tftp._udp.x.com:69\": an SRV name takes its ports from DNS",
				"subclusters[2].backends[5]: \"10.1.0.300\"",
				"subclusters[3].name: \"we st\"",
				"subclusters[3].timeout: must not be negative",
				"subclusters[3].retries: must be between 0 and 10",
				"subclusters[3].max_in_flight: must not be negative",
			},
		},
		{
			name: "dns problems",
			change: func(c *Config) {
				c.DNS = DNSConfig{Servers: []string{"dns.example.com:53", "10.0.0.1:0"}, Timeout: 0, MinTTL: 0, MaxTTL: -time.Second}
			},
			want: []string{
				"dns.servers[0]: \"dns.example.com:53\"",
				"dns.servers[1]: \"10.0.0.1:0\": port 0",
				"dns.timeout: must be positive",
				"dns.min_ttl: must be positive",
				"dns.max_ttl: must be at least dns.min_ttl",
			},
		},
		{
			name: "backend problems",
			change: func(c *Config) {
				c.Backend = BackendConfig{Timeout: 0, Retries: -1, MaxInFlight: 0, BlockSize: 100, MaxFileSize: 0,
					ProbeFile: "", ProbeInterval: -time.Second, MaxFails: 0, AllDown: "maybe"}
			},
			want: []string{
				"backend.timeout: must be positive",
				"backend.retries: must be between 0 and 10",
				"backend.max_in_flight: must be at least 1",
				"backend.block_size: must be between 512 and 65464",
				"backend.max_file_size: must be positive",
				"backend.probe_file: missing",
				"backend.probe_interval: must not be negative",
				"backend.probe_timeout: must be positive",
				"backend.slot_wait: must be positive",
				"backend.window_size: must be between 1 and 64",
				"backend.max_fails: must be at least 1",
				"backend.all_down: \"maybe\"",
			},
		},
		{
			name:   "probe file with NUL",
			change: func(c *Config) { c.Backend.ProbeFile = "a\x00b" },
			want:   []string{"backend.probe_file: contains a NUL byte"},
		},
		{
			name:   "max_ttl below min_ttl",
			change: func(c *Config) { c.DNS.MinTTL, c.DNS.MaxTTL = time.Minute, time.Second },
			want:   []string{"dns.max_ttl: must be at least dns.min_ttl (1m0s), got 1s"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.change(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%s", len(lines), len(tc.want), err)
			}
			for _, w := range tc.want {
				key, rest, _ := strings.Cut(w, ": ")
				found := false
				for _, l := range lines {
					if strings.HasPrefix(l, key+": ") && strings.Contains(l, rest) {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("no problem %q in:\n%s", w, err)
				}
			}
		})
	}
}

func TestParseBackend(t *testing.T) {
	tests := []struct {
		in      string
		want    BackendSpec
		canon   string
		wantErr string
	}{
		{in: "10.1.0.10:69", want: BackendSpec{Kind: BackendAddr, Addr: netip.MustParseAddrPort("10.1.0.10:69")}, canon: "10.1.0.10:69"},
		{in: "10.1.0.10", want: BackendSpec{Kind: BackendAddr, Addr: netip.MustParseAddrPort("10.1.0.10:69")}, canon: "10.1.0.10:69"},
		{in: "10.1.0.10:1069", want: BackendSpec{Kind: BackendAddr, Addr: netip.MustParseAddrPort("10.1.0.10:1069")}, canon: "10.1.0.10:1069"},
		{in: "[2001:db8::10]:69", want: BackendSpec{Kind: BackendAddr, Addr: netip.MustParseAddrPort("[2001:db8::10]:69")}, canon: "[2001:db8::10]:69"},
		{in: "2001:db8::10", want: BackendSpec{Kind: BackendAddr, Addr: netip.MustParseAddrPort("[2001:db8::10]:69")}, canon: "[2001:db8::10]:69"},
		{in: "[2001:db8::10]", want: BackendSpec{Kind: BackendAddr, Addr: netip.MustParseAddrPort("[2001:db8::10]:69")}, canon: "[2001:db8::10]:69"},
		{in: "[::ffff:10.0.0.1]:69", want: BackendSpec{Kind: BackendAddr, Addr: netip.MustParseAddrPort("10.0.0.1:69")}, canon: "10.0.0.1:69"},
		{in: "tftp.east.example.com", want: BackendSpec{Kind: BackendHost, Host: "tftp.east.example.com", Port: 69}, canon: "tftp.east.example.com:69"},
		{in: "TFTP.East.Example.com.:1069", want: BackendSpec{Kind: BackendHost, Host: "tftp.east.example.com", Port: 1069}, canon: "tftp.east.example.com:1069"},
		{in: "cucm1", want: BackendSpec{Kind: BackendHost, Host: "cucm1", Port: 69}, canon: "cucm1:69"},
		{in: "_tftp._udp.east.example.com", want: BackendSpec{Kind: BackendSRV, Host: "_tftp._udp.east.example.com"}, canon: "_tftp._udp.east.example.com"},
		{in: "_TFTP._UDP.east.example.com.", want: BackendSpec{Kind: BackendSRV, Host: "_tftp._udp.east.example.com"}, canon: "_tftp._udp.east.example.com"},
		{in: "", wantErr: "empty backend"},
		{in: "0.0.0.0:69", wantErr: "unspecified address"},
		{in: "[::]:69", wantErr: "unspecified address"},
		{in: "224.0.0.1", wantErr: "multicast"},
		{in: "255.255.255.255", wantErr: "broadcast"},
		{in: "10.0.0.1:0", wantErr: "port 0"},
		{in: "10.0.0.1:70000", wantErr: "want 1 to 65535"},
		{in: "host:0", wantErr: "want 1 to 65535"},
		{in: "host:http", wantErr: "want 1 to 65535"},
		{in: "host:", wantErr: "want 1 to 65535"},
		{in: "10.1.0.300", wantErr: "numeric label"},
		{in: "tftp .example.com", wantErr: "space"},
		{in: "tftp..example.com", wantErr: "empty label"},
		{in: "-tftp.example.com", wantErr: "starts or ends with '-'"},
		{in: "tftp!.example.com", wantErr: "not allowed"},
		{in: "_tftp._udp.", wantErr: "SRV name without a domain"},
		{in: "_tftp._udp", wantErr: "SRV name without a domain"},
		{in: "_tftp._udp.x.com:69", wantErr: "remove the port"},
		{in: "_sip._udp.x.com", wantErr: "only SRV names supported"},
		{in: "[::1]x", wantErr: "not an address"},
		{in: "a:b:c", wantErr: "not an address"},
		{in: "tftp.example.com\n", wantErr: "control"},
		{in: "ünicode.example.com", wantErr: "non-ASCII"},
		{in: strings.Repeat("a", 64) + ".com", wantErr: "longer than 63"},
		{in: strings.Repeat("abcdefg.", 40) + "com", wantErr: "at most 253"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseBackend(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if got.String() != tc.canon {
				t.Errorf("String() = %q, want %q", got.String(), tc.canon)
			}
		})
	}
}

// FuzzParseBackend: never panics; an accepted string has a canonical form
// that parses back to the same spec, and the spec is sane.
func FuzzParseBackend(f *testing.F) {
	for _, s := range []string{"10.1.0.10:69", "10.1.0.10", "[2001:db8::10]:69", "2001:db8::10", "tftp.east.example.com",
		"tftp.example.com:1069", "_tftp._udp.east.example.com", "[fe80::1%eth0]:69", "0.0.0.0", "x:", "[::1]", ":69"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseBackend(s)
		if err != nil {
			return
		}
		again, err := ParseBackend(spec.String())
		if err != nil {
			t.Fatalf("%q parsed to %+v, whose String %q does not parse: %v", s, spec, spec.String(), err)
		}
		if again != spec {
			t.Fatalf("%q: %+v, then %+v from %q", s, spec, again, spec.String())
		}
		switch spec.Kind {
		case BackendAddr:
			if spec.Addr.Port() == 0 || spec.Addr.Addr().IsUnspecified() || spec.Addr.Addr().Is4In6() {
				t.Fatalf("%q: bad address %v", s, spec.Addr)
			}
		case BackendHost:
			if spec.Port == 0 || spec.Host == "" || strings.HasPrefix(spec.Host, "_") {
				t.Fatalf("%q: bad host %+v", s, spec)
			}
		case BackendSRV:
			if !strings.HasPrefix(spec.Host, srvPrefix) {
				t.Fatalf("%q: bad SRV %+v", s, spec)
			}
		default:
			t.Fatalf("%q: kind %v", s, spec.Kind)
		}
	})
}

func TestParseDNSServer(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.53": "10.0.0.53:53", "10.0.0.53:5353": "10.0.0.53:5353",
		"::1": "[::1]:53", "[::1]": "[::1]:53", "[::1]:5353": "[::1]:5353"} {
		got, err := parseDNSServer(in)
		if err != nil || got != want {
			t.Errorf("parseDNSServer(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := parseDNSServer("resolver.example.com"); err == nil {
		t.Error("a resolver name was accepted")
	}
}

func TestValidateErrorsAreJoined(t *testing.T) {
	c := validConfig()
	c.Backend.MaxFails = 0
	c.DNS.Timeout = 0
	err := c.Validate()
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 2 {
		t.Fatalf("want 2 joined problems, got %v", err)
	}
}
