package proxy

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftpwire"
	"github.com/ctftp/ctftp/routing"
)

// Config tunes the TFTP front end. The CLI decodes it from the `tftp`
// section of config.yaml (and Listen from the top-level `listen` key).
// A zero field is not "default": start from DefaultConfig.
type Config struct {
	// Listen are the UDP addresses to serve, as literal "ip:port"
	// ("0.0.0.0:69", "[::]:69"). IPv4 addresses get udp4 sockets and IPv6
	// ones udp6 (IPv6-only), so a wildcard of each family can coexist.
	// Port 0 picks a free port (tests); Server.Addrs reports it.
	Listen []string `mapstructure:"listen"`
	// MaxBlockSize caps the RFC 2348 blksize a client may negotiate
	// (8..65464). Lower it (e.g. 1468) where IP fragments get lost.
	MaxBlockSize int `mapstructure:"max_blksize"`
	// MaxWindowSize caps the RFC 7440 windowsize (1..65535); 1 turns
	// windowed transfers off. A windowed transfer of a file with no
	// io.ReaderAt body buffers MaxWindowSize blocks.
	MaxWindowSize int `mapstructure:"max_windowsize"`
	// Timeout is the first retransmission timeout; it doubles, up to four
	// times this, while a client stays silent. A client's RFC 2349 timeout
	// option (1..255 s) replaces it, without the doubling.
	Timeout time.Duration `mapstructure:"timeout"`
	// Retries is how many times a packet is retransmitted before the
	// transfer is abandoned (0 = never retransmit).
	Retries int `mapstructure:"retries"`
	// TransferTimeout bounds a whole transfer, opening the file included,
	// unless its file is too large to cross at TransferMinRate in that
	// time: then the limit is the file's size at that rate. A firmware
	// load for a phone across a slow WAN takes longer than any config
	// file, and a phone in front of its own cluster gets it, however
	// long it takes.
	TransferTimeout time.Duration `mapstructure:"transfer_timeout"`
	// TransferMinRate is the rate, in bytes a second, that a transfer of
	// a large file is given time for (0: none, TransferTimeout bounds
	// every transfer). The default, one 512-byte block a second, is the
	// slowest a lock-step client moves without falling into
	// retransmission.
	TransferMinRate ctftp.Size `mapstructure:"transfer_min_rate"`
	// MaxTransfers is how many transfers may run at once; a request over it
	// is answered with error 0 "Server busy".
	MaxTransfers int `mapstructure:"max_transfers"`
	// ShutdownGrace is how long Shutdown (or cancelling Serve's context)
	// lets transfers in flight finish before cancelling them.
	ShutdownGrace time.Duration `mapstructure:"shutdown_grace"`

	// Allow lists the client CIDRs (or bare addresses) that may ask at
	// all; empty allows everyone. Deny lists those refused; it wins over
	// Allow. A refused client's packets are dropped in silence (an answer
	// would make the gateway a reflector for spoofed sources). Both lists
	// also apply to the HTTP provisioning front end (403 there).
	Allow []string `mapstructure:"allow"`
	Deny  []string `mapstructure:"deny"`
	// ClientRate is how many requests per second one client address may
	// send to the listening port, with bursts of up to ClientBurst; over
	// it, packets are dropped. 0 turns the limit off.
	ClientRate  float64 `mapstructure:"client_rate"`
	ClientBurst int     `mapstructure:"client_burst"`
	// MaxTransfersPerClient is how many transfers one client address may
	// run at once; requests over it are dropped. 0 = no limit.
	MaxTransfersPerClient int `mapstructure:"max_transfers_per_client"`
	// MaxClients bounds the per-client rate state: the least recently
	// seen address is forgotten (its next request starts with a full
	// burst) when more addresses than this are tracked, so a flood from
	// varying source addresses cannot grow memory.
	MaxClients int `mapstructure:"max_clients"`
	// SinglePort serves every packet of every transfer from the listening
	// port instead of a new port per transfer; transfers are told apart
	// by the client's address and port. For NAT, firewalls that only open
	// port 69, and containers.
	SinglePort bool `mapstructure:"single_port"`
}

// DefaultConfig returns the defaults documented in config.yaml.
func DefaultConfig() Config {
	return Config{
		Listen:          []string{"0.0.0.0:69"},
		MaxBlockSize:    tftpwire.MaxBlockSize,
		MaxWindowSize:   16,
		Timeout:         time.Second,
		Retries:         5,
		TransferTimeout: 5 * time.Minute,
		TransferMinRate: 512,
		MaxTransfers:    10000,
		ShutdownGrace:   10 * time.Second,

		Allow:                 []string{},
		Deny:                  []string{},
		ClientRate:            50,
		ClientBurst:           100,
		MaxTransfersPerClient: 16,
		MaxClients:            65536,
	}
}

// Limits on the knobs, beyond the RFC ranges: no phone needs more, and
// each bound keeps a typo ("timeout: 1000s") from pinning sockets for
// hours.
const (
	maxRetries      = 100
	maxRetransmit   = tftpwire.MaxTimeout * time.Second
	maxTransfersCap = 1 << 20
	maxClientsCap   = 1 << 24
)

// Validate reports every problem in c at once, each prefixed with its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(c.Listen) == 0 {
		bad("listen: at least one address is required")
	}
	seen := make(map[netip.AddrPort]bool)
	for i, a := range c.Listen {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			bad("listen[%d]: %q is not a literal ip:port (e.g. 0.0.0.0:69 or [::]:69)", i, a)
			continue
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if seen[ap] && ap.Port() != 0 {
			bad("listen[%d]: %s is listed twice", i, a)
		}
		seen[ap] = true
	}
	if c.MaxBlockSize < tftpwire.MinBlockSize || c.MaxBlockSize > tftpwire.MaxBlockSize {
		bad("max_blksize: must be between %d and %d, got %d", tftpwire.MinBlockSize, tftpwire.MaxBlockSize, c.MaxBlockSize)
	}
	if c.MaxWindowSize < 1 || c.MaxWindowSize > tftpwire.MaxWindowSize {
		bad("max_windowsize: must be between 1 and %d, got %d", tftpwire.MaxWindowSize, c.MaxWindowSize)
	}
	if c.Timeout <= 0 || c.Timeout > maxRetransmit {
		bad("timeout: must be more than 0 and at most %v, got %v", maxRetransmit, c.Timeout)
	}
	if c.Retries < 0 || c.Retries > maxRetries {
		bad("retries: must be between 0 and %d, got %d", maxRetries, c.Retries)
	}
	if c.TransferTimeout <= 0 {
		bad("transfer_timeout: must be more than 0, got %v", c.TransferTimeout)
	}
	if c.TransferMinRate < 0 {
		bad("transfer_min_rate: must be 0 (transfer_timeout bounds every transfer) or more, got %d", c.TransferMinRate)
	}
	if c.MaxTransfers < 1 || c.MaxTransfers > maxTransfersCap {
		bad("max_transfers: must be between 1 and %d, got %d", maxTransfersCap, c.MaxTransfers)
	}
	if c.ShutdownGrace < 0 {
		bad("shutdown_grace: must not be negative, got %v", c.ShutdownGrace)
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"allow", c.Allow}, {"deny", c.Deny}} {
		for i, a := range l.list {
			if _, err := routing.ParseClient(a); err != nil {
				bad("%s[%d]: %v", l.key, i, err)
			}
		}
	}
	if c.ClientRate < 0 || math.IsNaN(c.ClientRate) || math.IsInf(c.ClientRate, 0) {
		bad("client_rate: must be 0 (no limit) or more, got %v", c.ClientRate)
	}
	if c.ClientRate > 0 && c.ClientBurst < 1 {
		bad("client_burst: must be at least 1 when client_rate is set, got %d", c.ClientBurst)
	}
	if c.MaxTransfersPerClient < 0 {
		bad("max_transfers_per_client: must be 0 (no limit) or more, got %d", c.MaxTransfersPerClient)
	}
	if c.MaxClients < 1 || c.MaxClients > maxClientsCap {
		bad("max_clients: must be between 1 and %d, got %d", maxClientsCap, c.MaxClients)
	}
	return errors.Join(errs...)
}
