package proxy

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

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want []string // key prefixes of the expected problems, in order
	}{
		{"defaults", func(*Config) {}, nil},
		{"v4 and v6 wildcards", func(c *Config) { c.Listen = []string{"0.0.0.0:69", "[::]:69"} }, nil},
		{"no listen", func(c *Config) { c.Listen = nil }, []string{"listen:"}},
		{"hostname", func(c *Config) { c.Listen = []string{"localhost:69"} }, []string{"listen[0]:"}},
		{"no port", func(c *Config) { c.Listen = []string{"0.0.0.0:69", "10.0.0.1"} }, []string{"listen[1]:"}},
		{"twice", func(c *Config) { c.Listen = []string{"127.0.0.1:69", "127.0.0.1:69"} }, []string{"listen[1]:"}},
		{"port 0 twice is fine", func(c *Config) { c.Listen = []string{"127.0.0.1:0", "127.0.0.1:0"} }, nil},
		{"blksize 7", func(c *Config) { c.MaxBlockSize = 7 }, []string{"max_blksize:"}},
		{"blksize 65465", func(c *Config) { c.MaxBlockSize = 65465 }, []string{"max_blksize:"}},
		{"window 0", func(c *Config) { c.MaxWindowSize = 0 }, []string{"max_windowsize:"}},
		{"window 1 disables", func(c *Config) { c.MaxWindowSize = 1 }, nil},
		{"timeout 0", func(c *Config) { c.Timeout = 0 }, []string{"timeout:"}},
		{"timeout huge", func(c *Config) { c.Timeout = time.Hour }, []string{"timeout:"}},
		{"retries -1", func(c *Config) { c.Retries = -1 }, []string{"retries:"}},
		{"retries 0", func(c *Config) { c.Retries = 0 }, nil},
		{"transfer_timeout 0", func(c *Config) { c.TransferTimeout = 0 }, []string{"transfer_timeout:"}},
		{"max_transfers 0", func(c *Config) { c.MaxTransfers = 0 }, []string{"max_transfers:"}},
		{"shutdown_grace negative", func(c *Config) { c.ShutdownGrace = -time.Second }, []string{"shutdown_grace:"}},
		{"shutdown_grace 0", func(c *Config) { c.ShutdownGrace = 0 }, nil},
		{"allow and deny, v4 and v6, bare addresses", func(c *Config) {
			c.Allow = []string{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7"}
			c.Deny = []string{"10.9.0.0/16", "::ffff:10.8.0.0/112"}
		}, nil},
		{"allow not a CIDR", func(c *Config) { c.Allow = []string{"10.0.0.0/8", "10.0.0.0/33"} }, []string{"allow[1]:"}},
		{"deny a host name", func(c *Config) { c.Deny = []string{"phones.example.com"} }, []string{"deny[0]:"}},
		{"client_rate negative", func(c *Config) { c.ClientRate = -1 }, []string{"client_rate:"}},
		{"client_rate 0 turns it off", func(c *Config) { c.ClientRate, c.ClientBurst = 0, 0 }, nil},
		{"client_burst 0 with a rate", func(c *Config) { c.ClientBurst = 0 }, []string{"client_burst:"}},
		{"max_transfers_per_client negative", func(c *Config) { c.MaxTransfersPerClient = -1 }, []string{"max_transfers_per_client:"}},
		{"max_transfers_per_client 0 turns it off", func(c *Config) { c.MaxTransfersPerClient = 0 }, nil},
		{"max_clients 0", func(c *Config) { c.MaxClients = 0 }, []string{"max_clients:"}},
		{
			"all at once",
			func(c *Config) { *c = Config{} },
			[]string{"listen:", "max_blksize:", "max_windowsize:", "timeout:", "transfer_timeout:", "max_transfers:", "max_clients:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, p := range tt.want {
				if !strings.HasPrefix(lines[i], p) {
					t.Errorf("problem %d = %q, want prefix %q", i, lines[i], p)
				}
			}
		})
	}
}
