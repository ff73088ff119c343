package loadgen

import (
	"errors"
	"fmt"
	"time"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftpwire"
)

// Config is one storm: how many phones, how many boot at once, and how
// each one talks TFTP. `ctftp bench` fills it from its flags; tests build
// it in Go from DefaultConfig. It is plain data, safe to share once
// nobody writes it.
type Config struct {
	// Phones is how many phones boot. When MACs are passed to Run
	// explicitly their number wins.
	Phones int `mapstructure:"phones"`
	// Concurrency is how many phones boot at the same time; a phone that
	// finishes hands its slot to the next (a closed loop, so the server's
	// speed sets the rate).
	Concurrency int `mapstructure:"concurrency"`
	// MACPrefix is the hex the generated MACs start with (0 to 11
	// digits); a counter fills the rest: prefix 00AB gives 00AB00000000,
	// 00AB00000001, ...
	MACPrefix string `mapstructure:"mac_prefix"`
	// BlockSize is the RFC 2348 blksize a phone asks for; 0 or 512 asks
	// for none, as the phones in public captures do.
	BlockSize int `mapstructure:"blksize"`
	// WindowSize is the RFC 7440 windowsize asked for; 0 or 1 asks for
	// none (lock-step).
	WindowSize int `mapstructure:"windowsize"`
	// Timeout is a phone's retransmission timeout.
	Timeout time.Duration `mapstructure:"timeout"`
	// Retries is how many timeouts in a row make a phone give up a file.
	Retries int `mapstructure:"retries"`
	// BootTimeout bounds one phone's whole boot sequence.
	BootTimeout time.Duration `mapstructure:"boot_timeout"`
	// MaxFileSize bounds one file; a larger one fails as too_large.
	MaxFileSize ctftp.Size `mapstructure:"max_file_size"`
}

// DefaultConfig is a small storm of lock-step phones with tftp-hpa's
// retransmission timer.
func DefaultConfig() Config {
	return Config{
		Phones:      100,
		Concurrency: 10,
		MACPrefix:   "0000BE",
		Timeout:     time.Second,
		Retries:     5,
		BootTimeout: time.Minute,
		MaxFileSize: 16 << 20,
	}
}

// Limits Validate enforces. Every latency sample is kept (8 bytes per
// transfer), so MaxPhones bounds the generator's memory to tens of MB.
const (
	MaxPhones      = 1_000_000
	MaxConcurrency = 100_000
	maxRetries     = 100
)

// Validate reports every problem in c at once, each starting with its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Phones < 1 || c.Phones > MaxPhones {
		bad("phones: must be between 1 and %d, got %d", MaxPhones, c.Phones)
	}
	if c.Concurrency < 1 || c.Concurrency > MaxConcurrency {
		bad("concurrency: must be between 1 and %d, got %d", MaxConcurrency, c.Concurrency)
	}
	if _, err := MACs(c.MACPrefix, 0, 1); err != nil {
		bad("mac_prefix: %v", err)
	}
	if c.BlockSize != 0 && (c.BlockSize < tftpwire.MinBlockSize || c.BlockSize > tftpwire.MaxBlockSize) {
		bad("blksize: must be 0 (none) or between %d and %d, got %d", tftpwire.MinBlockSize, tftpwire.MaxBlockSize, c.BlockSize)
	}
	if c.WindowSize < 0 || c.WindowSize > tftpwire.MaxWindowSize {
		bad("windowsize: must be between 0 and %d, got %d", tftpwire.MaxWindowSize, c.WindowSize)
	}
	if c.Timeout <= 0 {
		bad("timeout: must be positive, got %s", c.Timeout)
	}
	if c.Retries < 0 || c.Retries > maxRetries {
		bad("retries: must be between 0 and %d, got %d", maxRetries, c.Retries)
	}
	if c.BootTimeout <= 0 {
		bad("boot_timeout: must be positive, got %s", c.BootTimeout)
	}
	if c.MaxFileSize <= 0 {
		bad("max_file_size: must be positive, got %d", c.MaxFileSize)
	}
	return errors.Join(errs...)
}
