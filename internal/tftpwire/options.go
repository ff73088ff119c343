package tftpwire

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"
)

// The option names this package negotiates, as ParseRequest spells them.
const (
	OptBlockSize    = "blksize"    // RFC 2348
	OptTransferSize = "tsize"      // RFC 2349
	OptTimeout      = "timeout"    // RFC 2349
	OptWindowSize   = "windowsize" // RFC 7440
)

// Limits are a server's caps on what a client may negotiate.
type Limits struct {
	// MaxBlockSize caps a negotiated blksize. 0 means MaxBlockSize;
	// other values are clamped into MinBlockSize..MaxBlockSize. A client
	// that sends no blksize gets the RFC 1350 512 bytes whatever the cap.
	MaxBlockSize int
	// MaxWindowSize caps windowsize. 0 or 1 means the server does not do
	// RFC 7440, so the option is ignored; larger values are clamped to
	// MaxWindowSize.
	MaxWindowSize int
}

type optionKind uint8

const (
	kindBlockSize optionKind = iota
	kindTransferSize
	kindTimeout
	kindWindowSize
	numKinds
)

// Negotiation is the outcome of a request's options: the parameters of
// the transfer and the options to acknowledge. The zero value is not
// meaningful; get one from Negotiate. Its methods only read it, so a
// Negotiation may be shared once built.
type Negotiation struct {
	// BlockSize is the payload of a full DATA packet.
	BlockSize int
	// WindowSize is how many DATA packets may be unacknowledged (1 is
	// RFC 1350 lock-step).
	WindowSize int
	// Timeout is the retransmission timeout the client asked for, or 0.
	Timeout time.Duration
	// TransferSize is true when the client asked for tsize and may get
	// it; the server supplies the value when it writes the OACK.
	TransferSize bool

	// order lists the acknowledged options in the order the client sent
	// them, which is the order RFC 2347 peers expect back.
	order [numKinds]optionKind
	n     int
}

// Negotiate applies the server's rules to req's options:
//
//   - unknown options are ignored (RFC 2347); so are recognised ones whose
//     value is not a decimal number ("abc", "", "-1"), as tftp-hpa does;
//   - only the first occurrence of an option counts, later ones are ignored;
//   - blksize below 8 refuses the request (RFC 2348 range); above the cap
//     it is lowered to the cap (RFC 2348 lets the server answer smaller);
//   - timeout outside 1..255 refuses the request (RFC 2349 range; the
//     server may not answer another value, so it cannot clamp);
//   - windowsize is ignored when lim.MaxWindowSize <= 1; 0 refuses the
//     request (RFC 7440 range); above the cap it is lowered to the cap;
//   - tsize is acknowledged in octet mode only: in netascii the bytes on
//     the wire differ from the file size, and computing the converted size
//     would mean reading the whole file before the first packet.
//
// A refusal is an error wrapping ErrOptionRefused; answer it with
// CodeOptionRefused.
func Negotiate(req Request, lim Limits) (Negotiation, error) {
	maxBlock := lim.MaxBlockSize
	if maxBlock == 0 {
		maxBlock = MaxBlockSize
	}
	maxBlock = min(max(maxBlock, MinBlockSize), MaxBlockSize)
	maxWindow := min(max(lim.MaxWindowSize, 1), MaxWindowSize)

	n := Negotiation{BlockSize: DefaultBlockSize, WindowSize: 1}
	var seen [numKinds]bool
	for _, o := range req.Options {
		kind, known := kindOf(o.Name)
		if !known || seen[kind] {
			continue
		}
		seen[kind] = true
		v, ok := parseDecimal(o.Value)
		if !ok {
			continue
		}
		switch kind {
		case kindBlockSize:
			if v < MinBlockSize {
				return Negotiation{}, fmt.Errorf("%w: blksize %s is below %d (RFC 2348)", ErrOptionRefused, clip(o.Value), MinBlockSize)
			}
			n.BlockSize = int(min(v, uint64(maxBlock)))
		case kindTransferSize:
			if req.Mode == ModeNetASCII {
				continue
			}
			n.TransferSize = true
		case kindTimeout:
			if v < MinTimeout || v > MaxTimeout {
				return Negotiation{}, fmt.Errorf("%w: timeout %s is outside %d..%d seconds (RFC 2349)", ErrOptionRefused, clip(o.Value), MinTimeout, MaxTimeout)
			}
			n.Timeout = time.Duration(v) * time.Second
		case kindWindowSize:
			if maxWindow == 1 {
				continue
			}
			if v < 1 {
				return Negotiation{}, fmt.Errorf("%w: windowsize %s is below 1 (RFC 7440)", ErrOptionRefused, clip(o.Value))
			}
			n.WindowSize = int(min(v, uint64(maxWindow)))
		}
		n.order[n.n] = kind
		n.n++
	}
	return n, nil
}

// HasOACK reports whether AppendOACK(dst, tsize) would acknowledge any
// option. When it is false the server answers the request with DATA 1, as
// RFC 2347 requires when no option is accepted. tsize < 0 means the size
// is unknown, so a tsize request alone is not acknowledged.
func (n *Negotiation) HasOACK(tsize int64) bool {
	for _, k := range n.order[:n.n] {
		if k != kindTransferSize || tsize >= 0 {
			return true
		}
	}
	return false
}

// AppendOACK appends the OACK acknowledging the negotiated options in the
// order the client sent them. tsize is the size to report, or < 0 to leave
// tsize out (size unknown).
func (n *Negotiation) AppendOACK(dst []byte, tsize int64) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(OpOACK))
	for _, k := range n.order[:n.n] {
		var v int64
		switch k {
		case kindBlockSize:
			v = int64(n.BlockSize)
		case kindTransferSize:
			if tsize < 0 {
				continue
			}
			v = tsize
		case kindTimeout:
			v = int64(n.Timeout / time.Second)
		case kindWindowSize:
			v = int64(n.WindowSize)
		}
		dst = append(dst, k.name()...)
		dst = append(dst, 0)
		dst = strconv.AppendInt(dst, v, 10)
		dst = append(dst, 0)
	}
	return dst
}

func kindOf(name string) (optionKind, bool) {
	switch name {
	case OptBlockSize:
		return kindBlockSize, true
	case OptTransferSize:
		return kindTransferSize, true
	case OptTimeout:
		return kindTimeout, true
	case OptWindowSize:
		return kindWindowSize, true
	}
	return 0, false
}

func (k optionKind) name() string {
	return [...]string{OptBlockSize, OptTransferSize, OptTimeout, OptWindowSize}[k]
}

// parseDecimal reads an unsigned decimal number. Signs, spaces and empty
// strings are not numbers. Values past 2^32 saturate there: every limit
// we compare with is far below, and saturating keeps "99999999999999999999"
// a large number (clamped) instead of an overflow.
func parseDecimal(s string) (uint64, bool) {
	const ceiling = 1 << 32
	if s == "" {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if v < ceiling {
			v = v*10 + uint64(c-'0')
		}
	}
	return min(v, ceiling), true
}
