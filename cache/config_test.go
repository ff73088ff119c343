package cache

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // each must start a line of the error
	}{
		{"defaults", func(*Config) {}, nil},
		{"positive cache off", func(c *Config) { c.MaxBytes = 0 }, nil},
		{"everything off", func(c *Config) {
			c.MaxBytes, c.NegativeTTL, c.StaleMaxAge = 0, 0, 0
			c.TTL = TTLConfig{}
		}, nil},
		{"negative max_bytes", func(c *Config) { c.MaxBytes = -1 }, []string{"max_bytes: "}},
		{"zero max_object", func(c *Config) { c.MaxObject = 0 }, []string{"max_object: must be positive"}},
		{"max_object over max_bytes", func(c *Config) { c.MaxBytes, c.MaxObject = 1<<20, 2<<20 },
			[]string{"max_object: must be at most max_bytes (1MiB), got 2MiB"}},
		{"negative ttl", func(c *Config) { c.TTL.Firmware = -time.Second }, []string{"ttl.firmware: "}},
		{"zero fetch_timeout", func(c *Config) { c.FetchTimeout = 0 }, []string{"fetch_timeout: "}},
		{"zero negative_max", func(c *Config) { c.NegativeMax = 0 }, []string{"negative_max: "}},
		{"class rules", func(c *Config) {
			c.Classes = []ClassRule{{Glob: "XMLDefault.cnf.xml", Class: "device"}, {Glob: "Desktops/*", Class: "firmware"}}
		}, nil},
		{"bad class rules", func(c *Config) {
			c.Classes = []ClassRule{{Glob: "[", Class: "device"}, {Glob: "", Class: "configs"}}
		}, []string{"classes[0].glob: \"[\": syntax error", "classes[1].glob: missing", `classes[1].class: "configs": want device`}},
		{"all problems together", func(c *Config) {
			c.MaxObject = -1
			c.TTL = TTLConfig{Device: -1, Trust: -1, Config: -1, Firmware: -1, Other: -1}
			c.NegativeTTL, c.StaleMaxAge, c.FetchTimeout, c.NegativeMax = -1, -1, -1, -1
		}, []string{
			"max_object: ", "ttl.device: ", "ttl.trust: ", "ttl.config: ", "ttl.firmware: ", "ttl.other: ",
			"negative_ttl: ", "stale_max_age: ", "negative_max: ", "fetch_timeout: ",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.modify(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("Validate() reported %d problems, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d = %q, want it to start with %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.MaxBytes.String() != "256MiB" || c.MaxObject.String() != "16MiB" {
		t.Errorf("sizes = %s, %s; want 256MiB, 16MiB", c.MaxBytes, c.MaxObject)
	}
	want := TTLConfig{Device: 5 * time.Second, Trust: 5 * time.Minute, Config: 5 * time.Minute, Firmware: 24 * time.Hour, Other: time.Hour}
	if c.TTL != want || len(c.Classes) != 0 || c.NegativeTTL != 30*time.Second || c.NegativeMax != 100000 ||
		c.StaleMaxAge != time.Hour || c.FetchTimeout != 30*time.Second {
		t.Errorf("DefaultConfig() = %+v", c)
	}
}
