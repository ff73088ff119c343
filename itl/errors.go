package itl

import (
	"errors"
	"fmt"
)

// Errors returned by the package. Check them with errors.Is; every returned
// error wraps one of them with context.
var (
	// ErrMalformed: the bytes do not follow the format. Parse returns it
	// wrapped in a *FormatError that gives the byte offset.
	ErrMalformed = errors.New("malformed file")
	// ErrUnsupported: the file is well formed but uses an algorithm or key
	// type this package cannot check or write (an unknown digest code, a
	// non-RSA signer, a key size phones do not use).
	ErrUnsupported = errors.New("unsupported")
	// ErrBadSignature: the signer was found and the signature was checked,
	// and it does not match the file.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrSignerNotFound: no record of an allowed role in the trust list
	// matches the header's signer (issuer and serial number).
	ErrSignerNotFound = errors.New("signer not in trust list")
	// ErrNoKey: the matching record carries no usable public key (a
	// hash-only or empty record); on a phone this case goes to TVS.
	ErrNoKey = errors.New("record has no usable public key")
	// ErrNeedTrustList: a .sgn or .enc.sgn is checked against a separate
	// trust list (VerifyWith), never against itself.
	ErrNeedTrustList = errors.New("a signed file is checked against a trust list")
	// ErrDecrypt: an .enc.sgn could not be decrypted, or its plaintext
	// does not match the digest in its header.
	ErrDecrypt = errors.New("cannot decrypt")
	// ErrInvalidPEM: a PEM file lacks the certificate or key asked for, or
	// its key does not belong to its certificate.
	ErrInvalidPEM = errors.New("invalid PEM")
)

// FormatError is what Parse returns for malformed input: what is wrong and
// where. It wraps ErrMalformed. Not modified after it is returned.
type FormatError struct {
	// Offset is the byte offset, from the start of the file, of the element
	// (or the byte) at fault.
	Offset int
	// Record is the 1-based record number when the fault is inside a
	// record, 0 in the header.
	Record int
	// Msg says what is wrong.
	Msg string
}

// Error formats the offset and message, e.g.
// "itl: malformed file at offset 382: record 1: RECORDLENGTH 4 is less than 5".
func (e *FormatError) Error() string {
	if e.Record > 0 {
		return fmt.Sprintf("itl: %v at offset %d: record %d: %s", ErrMalformed, e.Offset, e.Record, e.Msg)
	}
	return fmt.Sprintf("itl: %v at offset %d: %s", ErrMalformed, e.Offset, e.Msg)
}

// Unwrap lets errors.Is(err, ErrMalformed) hold.
func (e *FormatError) Unwrap() error { return ErrMalformed }

func formatErr(off int, format string, args ...any) *FormatError {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}
