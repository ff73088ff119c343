package itl

import (
	"errors"
	"fmt"

	"github.com/ctftp/ctftp"
)

// Config holds the limits the parser warns about. The CLI decodes the
// `itl:` section of config.yaml into it. A plain value, safe to copy and
// share; its methods do not modify it.
type Config struct {
	// PhoneSizeLimit is the ITL size above which phones fail to load it
	// (Cisco: about 64 KB, roughly 39 certificates). Larger ITLs parse
	// with a warning. Zero turns the warning off.
	PhoneSizeLimit ctftp.Size `mapstructure:"phone_size_limit"`
	// MaxSAST is the most SAST records a trust list may hold
	// (usecallmanager: two). More parse with a warning (Build always
	// refuses more than two). Zero turns the warning off.
	MaxSAST int `mapstructure:"max_sast"`
}

// DefaultConfig returns the limits phones are documented to have.
func DefaultConfig() Config {
	return Config{PhoneSizeLimit: 64 << 10, MaxSAST: 2}
}

// Validate reports every problem in c, each starting with its key.
func (c Config) Validate() error {
	var errs []error
	if c.PhoneSizeLimit < 0 {
		errs = append(errs, fmt.Errorf("phone_size_limit: must not be negative, got %d", c.PhoneSizeLimit))
	} else if c.PhoneSizeLimit > 0 && c.PhoneSizeLimit < 1<<10 {
		errs = append(errs, fmt.Errorf("phone_size_limit: %s is smaller than any trust list; use 0 to turn the check off", c.PhoneSizeLimit))
	}
	if c.MaxSAST < 0 {
		errs = append(errs, fmt.Errorf("max_sast: must not be negative, got %d", c.MaxSAST))
	}
	return errors.Join(errs...)
}
