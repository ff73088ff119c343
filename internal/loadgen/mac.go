package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// macDigits is the length of a MAC as Cisco device names write it.
const macDigits = 12

// ParseMAC reads one MAC address in any of the forms admins paste:
// "0011215A1AE3", "00:11:21:5a:1a:e3", "00-11-21-5A-1A-E3",
// "0011.215a.1ae3" or a device name "SEP0011215A1AE3". It returns the
// twelve upper-case hex digits phones put in their file names.
func ParseMAC(s string) (string, error) {
	t := strings.TrimSpace(s)
	if len(t) >= 3 && strings.EqualFold(t[:3], "SEP") {
		t = t[3:]
	}
	var b strings.Builder
	b.Grow(macDigits)
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == ':' || c == '-' || c == '.':
			continue
		case isHexDigit(c):
			if b.Len() == macDigits {
				return "", fmt.Errorf("MAC %q: more than %d hex digits", clip(s), macDigits)
			}
			b.WriteByte(upper(c))
		default:
			return "", fmt.Errorf("MAC %q: %q is not a hex digit", clip(s), c)
		}
	}
	if b.Len() != macDigits {
		return "", fmt.Errorf("MAC %q: want %d hex digits, got %d", clip(s), macDigits, b.Len())
	}
	return b.String(), nil
}

// ReadMACs reads a file of MACs, one per line, in any form ParseMAC
// takes. Blank lines and text after '#' are ignored. Every bad line is
// reported (with its line number), and so is a MAC listed twice: two
// phones with one MAC would ask for the same files and skew the storm.
func ReadMACs(r io.Reader) ([]string, error) {
	var (
		macs []string
		errs []error
		seen = map[string]int{}
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if strings.TrimSpace(line) == "" {
			continue
		}
		mac, err := ParseMAC(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		if first, dup := seen[mac]; dup {
			errs = append(errs, fmt.Errorf("line %d: MAC %s already on line %d", n, mac, first))
			continue
		}
		seen[mac] = n
		macs = append(macs, mac)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("reading MACs: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(macs) == 0 {
		return nil, errors.New("no MAC addresses in the list")
	}
	return macs, nil
}

// MACs generates n MACs: prefix (0 to 11 hex digits, any case) followed
// by a counter starting at first, zero-padded to twelve digits. It fails
// when the counter would not fit in the digits the prefix leaves.
func MACs(prefix string, first, n int) ([]string, error) {
	p := strings.ToUpper(prefix)
	if len(p) >= macDigits {
		return nil, fmt.Errorf("%q: at most %d hex digits, so a counter fits", clip(prefix), macDigits-1)
	}
	for i := 0; i < len(p); i++ {
		if !isHexDigit(p[i]) {
			return nil, fmt.Errorf("%q: %q is not a hex digit", clip(prefix), p[i])
		}
	}
	width := macDigits - len(p)
	if first < 0 || n < 0 {
		return nil, fmt.Errorf("negative counter (first %d, n %d)", first, n)
	}
	// 16^width phones fit behind the prefix; width is at most 12, so
	// the shift cannot overflow.
	room := uint64(1) << (4 * width)
	if uint64(first)+uint64(n) > room {
		return nil, fmt.Errorf("%q leaves %d hex digits: room for %d phones, not %d from %d", prefix, width, room, n, first)
	}
	out := make([]string, n)
	for i := range out {
		c := strings.ToUpper(strconv.FormatUint(uint64(first+i), 16))
		out[i] = p + strings.Repeat("0", width-len(c)) + c
	}
	return out, nil
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

// clip bounds user input quoted in an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
