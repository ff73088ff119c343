package tftpwire

import (
	"bytes"
	"fmt"
	"strings"
)

// The transfer modes ParseRequest accepts, as it returns them.
const (
	ModeOctet    = "octet"
	ModeNetASCII = "netascii"
)

// Request is a parsed RRQ or WRQ.
type Request struct {
	// Opcode is OpRRQ or OpWRQ.
	Opcode Opcode
	// Filename is the name exactly as sent: never empty, never containing
	// NUL, otherwise unchecked (cleaning it is the server's job).
	Filename string
	// Mode is ModeOctet or ModeNetASCII, whatever case the client used.
	Mode string
	// Options are the request's options in the order sent, names
	// lower-cased, at most MaxOptions of them.
	Options []Option
}

// ParseRequest parses an RRQ or WRQ:
//
//	| opcode | filename | 0 | mode | 0 | opt1 | 0 | value1 | 0 | ... |
//
// It rejects packets that are truncated or lack a NUL terminator
// (ErrMalformed), an empty filename (ErrMalformed), other opcodes
// (ErrNotRequest), and modes other than octet and netascii
// (ErrUnknownMode; the obsolete "mail" mode is refused too). NUL bytes
// after the last complete field are accepted as padding, because some
// boot ROMs pad their requests. Options after the MaxOptions-th are
// skipped unread, so the work done is bounded whatever the packet holds.
//
// On error the returned Request still carries what was parsed before the
// fault (the opcode and, once it was complete, the filename), so a server
// can say in its log what was refused.
func ParseRequest(b []byte) (Request, error) {
	op, err := PacketOpcode(b)
	if err != nil {
		return Request{}, err
	}
	if op != OpRRQ && op != OpWRQ {
		return Request{}, fmt.Errorf("%w: %v", ErrNotRequest, op)
	}
	req := Request{Opcode: op}
	name, rest, ok := cutField(b[2:])
	if !ok {
		return req, fmt.Errorf("%w: file name has no NUL terminator", ErrMalformed)
	}
	if len(name) == 0 {
		return req, fmt.Errorf("%w: empty file name", ErrMalformed)
	}
	req.Filename = string(name)
	mode, rest, ok := cutField(rest)
	if !ok {
		return req, fmt.Errorf("%w: mode has no NUL terminator", ErrMalformed)
	}
	switch {
	case asciiEqualFold(mode, ModeOctet):
		req.Mode = ModeOctet
	case asciiEqualFold(mode, ModeNetASCII):
		req.Mode = ModeNetASCII
	case asciiEqualFold(mode, "mail"):
		return req, fmt.Errorf("%w: mail mode is obsolete (RFC 1350) and refused", ErrUnknownMode)
	default:
		return req, fmt.Errorf("%w: %q", ErrUnknownMode, clip(string(mode)))
	}
	opts, err := parseOptions(rest)
	if err != nil {
		return req, err
	}
	req.Options = opts
	return req, nil
}

// parseOptions reads name/value pairs up to the end of b.
func parseOptions(b []byte) ([]Option, error) {
	var opts []Option
	for len(b) > 0 && !allNUL(b) && len(opts) < MaxOptions {
		name, rest, ok := cutField(b)
		if !ok {
			return nil, fmt.Errorf("%w: option name %q has no NUL terminator", ErrMalformed, clip(string(name)))
		}
		if len(name) == 0 {
			return nil, fmt.Errorf("%w: empty option name", ErrMalformed)
		}
		value, rest, ok := cutField(rest)
		if !ok {
			return nil, fmt.Errorf("%w: option %q has no NUL-terminated value", ErrMalformed, clip(string(name)))
		}
		opts = append(opts, Option{Name: lowerName(name), Value: string(value)})
		b = rest
	}
	return opts, nil
}

// cutField splits b at its first NUL. ok is false when there is none.
func cutField(b []byte) (field, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return b, nil, false
	}
	return b[:i], b[i+1:], true
}

func allNUL(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// lowerName returns the canonical spelling for the options we know, which
// costs no allocation for them, and a lower-cased copy otherwise.
func lowerName(b []byte) string {
	for _, known := range [...]string{OptBlockSize, OptTransferSize, OptTimeout, OptWindowSize} {
		if asciiEqualFold(b, known) {
			return known
		}
	}
	return strings.ToLower(string(b))
}

// asciiEqualFold reports whether b equals s ignoring ASCII case. s must be
// lower case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// clip shortens peer-supplied text quoted in error messages, so a 60 KB
// field cannot flood a log line.
func clip(s string) string {
	const max = 32
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
