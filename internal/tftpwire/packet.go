package tftpwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Opcode is the first field of every TFTP packet (RFC 1350 section 5,
// RFC 2347 for OACK).
type Opcode uint16

// The opcodes of TFTP.
const (
	OpRRQ   Opcode = 1 // read request
	OpWRQ   Opcode = 2 // write request
	OpDATA  Opcode = 3
	OpACK   Opcode = 4
	OpERROR Opcode = 5
	OpOACK  Opcode = 6 // option acknowledgment, RFC 2347
)

// String names the opcode; unknown values print as their number.
func (o Opcode) String() string {
	switch o {
	case OpRRQ:
		return "RRQ"
	case OpWRQ:
		return "WRQ"
	case OpDATA:
		return "DATA"
	case OpACK:
		return "ACK"
	case OpERROR:
		return "ERROR"
	case OpOACK:
		return "OACK"
	}
	return fmt.Sprintf("opcode(%d)", uint16(o))
}

// Error codes carried by ERROR packets (RFC 1350 appendix, RFC 2347 for 8).
const (
	CodeNotDefined       uint16 = 0 // see the message
	CodeFileNotFound     uint16 = 1
	CodeAccessViolation  uint16 = 2
	CodeDiskFull         uint16 = 3
	CodeIllegalOperation uint16 = 4
	CodeUnknownTID       uint16 = 5
	CodeFileExists       uint16 = 6
	CodeNoSuchUser       uint16 = 7
	CodeOptionRefused    uint16 = 8 // option negotiation failed
)

// Sizes fixed by the RFCs.
const (
	// HeaderSize is the length of a DATA or ACK header: opcode and block.
	HeaderSize = 4
	// DefaultBlockSize is the RFC 1350 block size, used unless a blksize
	// option was acknowledged.
	DefaultBlockSize = 512
	// MinBlockSize and MaxBlockSize bound the RFC 2348 blksize option.
	// 65464 is the largest payload of an IPv4 UDP datagram less the TFTP,
	// UDP and IP headers.
	MinBlockSize = 8
	MaxBlockSize = 65464
	// MinTimeout and MaxTimeout bound the RFC 2349 timeout option, in seconds.
	MinTimeout = 1
	MaxTimeout = 255
	// MaxWindowSize bounds the RFC 7440 windowsize option (its minimum is 1).
	MaxWindowSize = 65535
	// MaxOptions is how many options ParseRequest and ParseOACK keep; the
	// rest are skipped unread. RFC 2347 caps a request at 512 bytes, so no
	// conforming peer sends more than about a hundred, and a fixed cap keeps
	// the work per packet bounded whatever arrives.
	MaxOptions = 64
)

// Errors returned by the parsers. Check them with errors.Is; the wrapping
// message says what exactly was wrong.
var (
	// ErrMalformed: the packet is shorter than its opcode needs, a field
	// lacks its NUL terminator, or a required field is empty.
	ErrMalformed = errors.New("tftpwire: malformed packet")
	// ErrNotRequest: ParseRequest got a packet that is not an RRQ or WRQ.
	ErrNotRequest = errors.New("tftpwire: not a read or write request")
	// ErrUnknownMode: the transfer mode is neither octet nor netascii
	// (including the obsolete "mail" mode, which is refused).
	ErrUnknownMode = errors.New("tftpwire: unsupported transfer mode")
	// ErrOptionRefused: Negotiate refuses the request because an option
	// has a value outside its RFC range; answer with CodeOptionRefused.
	ErrOptionRefused = errors.New("tftpwire: option refused")
	// ErrUnexpectedOpcode: ParseData, ParseACK, ParseError or ParseOACK
	// got a packet with another opcode.
	ErrUnexpectedOpcode = errors.New("tftpwire: unexpected opcode")
)

// PacketOpcode returns the opcode of b, or ErrMalformed when b is shorter
// than an opcode. The value is not checked against the known opcodes.
func PacketOpcode(b []byte) (Opcode, error) {
	if len(b) < 2 {
		return 0, fmt.Errorf("%w: %d bytes, no opcode", ErrMalformed, len(b))
	}
	return Opcode(binary.BigEndian.Uint16(b)), nil
}

func expect(b []byte, op Opcode, min int) error {
	got, err := PacketOpcode(b)
	if err != nil {
		return err
	}
	if got != op {
		return fmt.Errorf("%w: want %v, got %v", ErrUnexpectedOpcode, op, got)
	}
	if len(b) < min {
		return fmt.Errorf("%w: %v of %d bytes", ErrMalformed, op, len(b))
	}
	return nil
}

// AppendData appends a DATA packet for block carrying payload.
func AppendData(dst []byte, block uint16, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(OpDATA))
	dst = binary.BigEndian.AppendUint16(dst, block)
	return append(dst, payload...)
}

// PutDataHeader writes a DATA header for block into b[:4], so a sender
// can read the payload straight into b[4:] without copying it.
func PutDataHeader(b []byte, block uint16) {
	binary.BigEndian.PutUint16(b, uint16(OpDATA))
	binary.BigEndian.PutUint16(b[2:], block)
}

// ParseData returns the block number and payload of a DATA packet. The
// payload aliases b.
func ParseData(b []byte) (block uint16, payload []byte, err error) {
	if err := expect(b, OpDATA, HeaderSize); err != nil {
		return 0, nil, err
	}
	return binary.BigEndian.Uint16(b[2:]), b[HeaderSize:], nil
}

// AppendACK appends an ACK packet for block.
func AppendACK(dst []byte, block uint16) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(OpACK))
	return binary.BigEndian.AppendUint16(dst, block)
}

// ParseACK returns the block number of an ACK packet. Bytes after the
// block number are ignored, as RFC 1350 receivers do.
func ParseACK(b []byte) (block uint16, err error) {
	if err := expect(b, OpACK, HeaderSize); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(b[2:]), nil
}

// AppendError appends an ERROR packet. A NUL inside msg would end the
// message early on the wire, so msg is cut at its first NUL.
func AppendError(dst []byte, code uint16, msg string) []byte {
	if i := indexNUL(msg); i >= 0 {
		msg = msg[:i]
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(OpERROR))
	dst = binary.BigEndian.AppendUint16(dst, code)
	dst = append(dst, msg...)
	return append(dst, 0)
}

// ParseError returns the code and message of an ERROR packet. A message
// without its NUL terminator is taken up to the end of the packet: the
// packet is already an abort, and a peer's sloppy framing must not hide
// its error code.
func ParseError(b []byte) (code uint16, msg string, err error) {
	if err := expect(b, OpERROR, HeaderSize); err != nil {
		return 0, "", err
	}
	m := b[HeaderSize:]
	if i := bytes.IndexByte(m, 0); i >= 0 {
		m = m[:i]
	}
	return binary.BigEndian.Uint16(b[2:]), string(m), nil
}

// Option is one option of a request or OACK. Name is lower-cased by the
// parsers (RFC 2347 names are case-insensitive); Value is kept as sent.
type Option struct {
	Name  string
	Value string
}

// AppendOACK appends an OACK packet listing opts in order.
func AppendOACK(dst []byte, opts []Option) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(OpOACK))
	for _, o := range opts {
		dst = append(dst, o.Name...)
		dst = append(dst, 0)
		dst = append(dst, o.Value...)
		dst = append(dst, 0)
	}
	return dst
}

// ParseOACK returns the options of an OACK packet, names lower-cased.
// Like ParseRequest it keeps at most MaxOptions.
func ParseOACK(b []byte) ([]Option, error) {
	if err := expect(b, OpOACK, 2); err != nil {
		return nil, err
	}
	return parseOptions(b[2:])
}

// AppendRequest appends an RRQ or WRQ. Clients and tests use it; it does
// not check that the fields are free of NULs.
func AppendRequest(dst []byte, op Opcode, filename, mode string, opts []Option) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(op))
	dst = append(dst, filename...)
	dst = append(dst, 0)
	dst = append(dst, mode...)
	dst = append(dst, 0)
	for _, o := range opts {
		dst = append(dst, o.Name...)
		dst = append(dst, 0)
		dst = append(dst, o.Value...)
		dst = append(dst, 0)
	}
	return dst
}

func indexNUL(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}
