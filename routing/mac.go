package routing

import (
	"fmt"
	"strings"

	"github.com/ctftp/ctftp"
)

// hexDigits strips the separators admins copy from switches and phone
// screens (00:11:21:5a:1a:e3, 00-11-21-5A-1A-E3, 0011.215a.1ae3) and
// upper-cases the rest. It accepts 1 to 12 digits.
func hexDigits(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ':' || c == '-' || c == '.':
			continue
		case !isHexDigit(c):
			return "", fmt.Errorf("%q: %q: %w", s, c, errMACDigit)
		}
		if b.Len() == macLen {
			return "", fmt.Errorf("%q: %w", s, errMACTooLong)
		}
		if 'a' <= c && c <= 'f' {
			c -= 'a' - 'A'
		}
		b.WriteByte(c)
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("%q: %w", s, errMACEmpty)
	}
	return b.String(), nil
}

// parseMAC reads a whole MAC address written in configuration.
func parseMAC(s string) (string, error) {
	d, err := hexDigits(s)
	if err != nil {
		return "", deviceNameHint(s, err)
	}
	if len(d) != macLen {
		return "", fmt.Errorf("%q: %w", s, errMACTooShort)
	}
	return d, nil
}

// parseMACPrefix reads the leading 1-12 hex digits of a MAC address (an
// OUI is 6). Odd lengths are allowed: prefixes compare digit by digit.
func parseMACPrefix(s string) (string, error) {
	d, err := hexDigits(s)
	if err != nil {
		return "", deviceNameHint(s, err)
	}
	return d, nil
}

// deviceNameHint says what to write when an admin pasted CUCM's device
// name (SEP0011215A1AE3) where a MAC belongs: the error alone ("'S': not
// a hex digit") does not say why.
func deviceNameHint(s string, err error) error {
	for _, p := range []string{"SEP", "ATA", "SIP"} {
		if len(s) > len(p) && strings.EqualFold(s[:len(p)], p) {
			if d, herr := hexDigits(s[len(p):]); herr == nil {
				return fmt.Errorf("%w (a device name: write it without %s, %s)", err, s[:len(p)], d)
			}
		}
	}
	return err
}

// macLen is the number of hex digits in a MAC address.
const macLen = ctftp.MACLen

// ParseMAC returns the MAC address a per-device file name carries, as
// twelve upper-case hex digits, and whether there was one. The grammar is
// ctftp.DeviceMAC's, shared with the cache's device class.
func ParseMAC(name string) (mac string, ok bool) { return ctftp.DeviceMAC(name) }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// IsDeviceTrustList reports whether name is a phone's own trust list,
// CTLSEP<MAC>.tlv or ITLSEP<MAC>.tlv. A phone asks for it first at every
// boot and, told "not found", moves on to CTLFile.tlv and ITLFile.tlv;
// most clusters have none, so "not found" is its usual answer.
func IsDeviceTrustList(name string) bool {
	if _, ok := ParseMAC(name); !ok {
		return false
	}
	// ParseMAC matched the prefix byte for byte (ASCII only), so the
	// first six bytes are ASCII and EqualFold cannot fold Unicode here.
	base := name[strings.LastIndexByte(name, '/')+1:]
	return strings.EqualFold(base[:6], "CTLSEP") || strings.EqualFold(base[:6], "ITLSEP")
}
