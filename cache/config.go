package cache

import (
	"errors"
	"fmt"
	"time"

	"github.com/ctftp/ctftp"
)

// Config is the `cache` section of config.yaml. The zero value is not
// useful; start from DefaultConfig.
type Config struct {
	// MaxBytes bounds the bytes of file data held by the positive cache.
	// 0 disables the positive cache: concurrent requests still share one
	// fetch, but nothing is kept after it.
	MaxBytes ctftp.Size `mapstructure:"max_bytes"`
	// MaxObject is the largest file that is buffered and cached. Larger
	// files stream from the backend to the phone uncached. It also bounds
	// the memory one fill may hold while MaxBytes is 0.
	MaxObject ctftp.Size `mapstructure:"max_object"`
	// TTL says how long a cached file is served without asking the
	// backend again, per file class (see ClassOf).
	TTL TTLConfig `mapstructure:"ttl"`
	// Classes put names in a class before the built-in classification
	// (ClassOf), first match wins.
	Classes []ClassRule `mapstructure:"classes"`
	// NegativeTTL is how long "file not found" is remembered. 0 disables
	// the negative cache. A device file's "not found" is remembered for
	// at most TTL.Device: an admin who adds a phone expects its next boot
	// to find its files.
	NegativeTTL time.Duration `mapstructure:"negative_ttl"`
	// NegativeMax bounds the number of remembered "not found" (and "too
	// big to cache") answers. Must be positive.
	NegativeMax int `mapstructure:"negative_max"`
	// StaleMaxAge is how long after its TTL ran out a cached file may
	// still be served when the backend fails (RFC 8767's maximum stale
	// timer). 0 disables serve-stale.
	StaleMaxAge time.Duration `mapstructure:"stale_max_age"`
	// FetchTimeout bounds one fill: opening the file on the backend and
	// reading it into memory. It belongs to the fill, not to any client,
	// so a phone giving up early does not cut short the fetch other
	// phones are waiting for. Must be positive.
	FetchTimeout time.Duration `mapstructure:"fetch_timeout"`
}

// TTLConfig holds the freshness lifetime of each file class. A zero TTL
// means files of that class are never kept (requests for them are still
// collapsed into one fetch while it runs).
type TTLConfig struct {
	// Device is the burst window of per-device files (CTLSEP<MAC>.tlv,
	// ITLSEP<MAC>.tlv, SEP<MAC>.cnf.xml.sgn, ...): long enough for a
	// phone's retransmissions and immediate retries and for a prefetched
	// file to wait for the phone's request, short enough that an admin's
	// change to a phone reaches its next boot. After it a device file is
	// fetched again; the last copy stays for serve-stale.
	Device time.Duration `mapstructure:"device"`
	// Trust is for ITL and CTL files (*.tlv). They change when an admin
	// rotates certificates, and a phone that gets an old one may refuse
	// everything else, so keep it short.
	Trust time.Duration `mapstructure:"trust"`
	// Config is for device configs (*.cnf.xml, *.cnf, *.xml dial plans
	// and ring lists, and other signed files). They change when admins work.
	Config time.Duration `mapstructure:"config"`
	// Firmware is for phone loads (*.loads, *.sbn, *.sebn, *.sb2, *.bin,
	// ...). A load's name carries its version, so its bytes never change.
	Firmware time.Duration `mapstructure:"firmware"`
	// Other is for everything else (ring tones, backgrounds, locales).
	Other time.Duration `mapstructure:"other"`
}

// DefaultConfig returns the defaults documented in config.yaml.
func DefaultConfig() Config {
	return Config{
		MaxBytes:  256 << 20,
		MaxObject: 16 << 20,
		TTL: TTLConfig{
			Device:   5 * time.Second,
			Trust:    5 * time.Minute,
			Config:   5 * time.Minute,
			Firmware: 24 * time.Hour,
			Other:    time.Hour,
		},
		NegativeTTL:  30 * time.Second,
		NegativeMax:  100000,
		StaleMaxAge:  time.Hour,
		FetchTimeout: 30 * time.Second,
	}
}

// Validate reports every problem in c, each naming its key relative to the
// cache section.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.MaxBytes < 0 {
		bad("max_bytes: must not be negative, got %d", c.MaxBytes)
	}
	switch {
	case c.MaxObject <= 0:
		bad("max_object: must be positive, got %d", c.MaxObject)
	case c.MaxBytes > 0 && c.MaxObject > c.MaxBytes:
		bad("max_object: must be at most max_bytes (%s), got %s", c.MaxBytes, c.MaxObject)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"ttl.device", c.TTL.Device},
		{"ttl.trust", c.TTL.Trust},
		{"ttl.config", c.TTL.Config},
		{"ttl.firmware", c.TTL.Firmware},
		{"ttl.other", c.TTL.Other},
		{"negative_ttl", c.NegativeTTL},
		{"stale_max_age", c.StaleMaxAge},
	} {
		if d.v < 0 {
			bad("%s: must not be negative, got %s", d.key, d.v)
		}
	}
	if c.NegativeMax <= 0 {
		bad("negative_max: must be positive (it also bounds the too-big markers), got %d", c.NegativeMax)
	}
	if c.FetchTimeout <= 0 {
		bad("fetch_timeout: must be positive, got %s", c.FetchTimeout)
	}
	_, classErrs := newClassifier(c.Classes)
	errs = append(errs, classErrs...)
	return errors.Join(errs...)
}

// ttl returns the freshness lifetime for a file of class k.
func (t TTLConfig) ttl(k Class) time.Duration {
	switch k {
	case ClassDevice:
		return t.Device
	case ClassTrust:
		return t.Trust
	case ClassConfig:
		return t.Config
	case ClassFirmware:
		return t.Firmware
	default:
		return t.Other
	}
}

// negativeTTL is how long a "not found" for a file of class k is
// remembered.
func (c Config) negativeTTL(k Class) time.Duration {
	if k == ClassDevice {
		return min(c.NegativeTTL, c.TTL.Device)
	}
	return c.NegativeTTL
}
