package loadgen

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Config{
		Phones:      0,
		Concurrency: -1,
		MACPrefix:   "00112233445566",
		BlockSize:   7,
		WindowSize:  70000,
		Timeout:     0,
		Retries:     -1,
		BootTimeout: -time.Second,
		MaxFileSize: 0,
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{"phones: ", "concurrency: ", "mac_prefix: ", "blksize: ", "windowsize: ", "timeout: ", "retries: ", "boot_timeout: ", "max_file_size: "}
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d = %q, want prefix %q", i, lines[i], w)
		}
	}
}

func TestValidateEdges(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		bad    string // expected key prefix; "" = valid
	}{
		{"blksize 0 asks for none", func(c *Config) { c.BlockSize = 0 }, ""},
		{"blksize 8", func(c *Config) { c.BlockSize = 8 }, ""},
		{"blksize 65464", func(c *Config) { c.BlockSize = 65464 }, ""},
		{"blksize 65465", func(c *Config) { c.BlockSize = 65465 }, "blksize: "},
		{"windowsize 0", func(c *Config) { c.WindowSize = 0 }, ""},
		{"retries 0", func(c *Config) { c.Retries = 0 }, ""},
		{"empty prefix", func(c *Config) { c.MACPrefix = "" }, ""},
		{"11-digit prefix", func(c *Config) { c.MACPrefix = "00112233445" }, ""},
		{"non-hex prefix", func(c *Config) { c.MACPrefix = "00GG" }, "mac_prefix: "},
		{"too many phones", func(c *Config) { c.Phones = MaxPhones + 1 }, "phones: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.bad == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.bad != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.bad)):
				t.Fatalf("error %v, want prefix %q", err, tc.bad)
			}
		})
	}
}
