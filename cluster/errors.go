package cluster

import (
	"errors"
	"fmt"

	"github.com/ctftp/ctftp"
)

// Errors this package returns, wrapped with the sub-cluster, file and
// backend they concern; check them with errors.Is. Every error that means
// "the file may exist but could not be fetched now" also satisfies
// errors.Is(err, ctftp.ErrUnavailable), and a backend's "file not found"
// satisfies errors.Is(err, ctftp.ErrNotFound), so callers that only know
// the root contract need nothing from this block.
var (
	// ErrUnknownSubcluster: Open or Fetch named a sub-cluster the Set
	// does not have. It is a caller bug (routing produced a name that is
	// not configured), so it deliberately does not read as unavailable.
	ErrUnknownSubcluster = errors.New("unknown sub-cluster")
	// ErrBackendUnavailable: a backend did not answer in time, an I/O
	// error occurred, or its answer was malformed or shorter than the
	// tsize it announced. Counts against the backend's health.
	ErrBackendUnavailable error = &kindError{"backend unavailable", ctftp.ErrUnavailable}
	// ErrRefused: a backend answered with a TFTP error other than 1 "file
	// not found" (2 "access violation", 0 "undefined", ...). It is not
	// ctftp.ErrDenied: the backend refusing us is not the gateway refusing
	// the phone, and the phone must not be told "access violation" for a
	// backend's permission problem. The backend is alive, so its health is
	// not affected; the next backend is tried.
	ErrRefused error = &kindError{"backend refused the request", ctftp.ErrUnavailable}
	// ErrCorrupt: a fetched .tlv, .sgn or .enc.sgn is not whole: its own
	// lengths (header, records, payload) do not match the bytes received,
	// or its signature does not match them. The transfer itself was well
	// formed (a backend ended the file early with a short block and no
	// tsize). It counts against the backend like ErrBackendUnavailable,
	// the next backend is tried, and nothing of it is cached or served.
	ErrCorrupt error = &kindError{"fetched file is not whole", ctftp.ErrUnavailable}
	// ErrSubclusterDown: every backend of the sub-cluster is known down,
	// so it was not asked at all: the answer comes at once instead of
	// after timeouts, and background probes (half-open, with backoff)
	// find it when it comes back. It wraps ctftp.ErrNotAsked, so a
	// fan-out can tell "could not be asked" from "asked and failed".
	ErrSubclusterDown error = &kindError{"every backend is known down; not asked", ctftp.ErrNotAsked}
	// ErrBusy: every slot of the backends that could be asked stayed
	// taken for backend.slot_wait. It says nothing about the backends'
	// health.
	ErrBusy error = &kindError{"every backend slot busy for backend.slot_wait", ctftp.ErrUnavailable}
	// ErrTooLarge: the file is bigger than backend.max_file_size. The
	// fetch stops; siblings are not tried (they serve the same file).
	ErrTooLarge error = &kindError{"file exceeds backend.max_file_size", ctftp.ErrUnavailable}
	// ErrNoBackends: the sub-cluster had no backend to try: its names did
	// not resolve, every address was refused as a loop, or every backend
	// is down and backend.all_down is "fail".
	ErrNoBackends error = &kindError{"no usable backend", ctftp.ErrUnavailable}
	// ErrLoop: a backend address is one of the gateway's own listen
	// addresses; forwarding to it would ask ourselves forever. New
	// returns it for literal addresses; resolved ones are left out of
	// service and reported by Status and ProbeAll.
	ErrLoop = errors.New("backend is one of the gateway's own listen addresses")
)

// kindError is a sentinel that also satisfies a root-package sentinel
// through Unwrap, so its text stays short ("backend unavailable") while
// errors.Is(err, ctftp.ErrUnavailable) holds.
type kindError struct {
	msg  string
	root error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.root }

// TFTPError is an ERROR packet a backend answered with; it is not changed
// after it is returned, so it may be shared. Code 1 unwraps to
// ctftp.ErrNotFound; every other code unwraps to ErrRefused. Message is
// the backend's text, for logs only: it must never reach a phone.
type TFTPError struct {
	Code    uint16
	Message string
}

func (e *TFTPError) Error() string {
	return fmt.Sprintf("backend answered TFTP error %d %q", e.Code, e.Message)
}

// Unwrap maps the TFTP error code onto this package's sentinels.
func (e *TFTPError) Unwrap() error {
	if e.Code == 1 {
		return ctftp.ErrNotFound
	}
	return ErrRefused
}

// attemptsError reports every backend a fetch tried, in order. errors.Is
// matches any attempt's error, so a fetch that saw both a refusal and a
// timeout is both ErrRefused and ErrBackendUnavailable (and so
// ctftp.ErrUnavailable).
type attemptsError struct {
	prefix string
	errs   []error
}

func (e *attemptsError) Error() string {
	s := e.prefix
	for i, err := range e.errs {
		if i > 0 {
			s += "; "
		} else {
			s += ": "
		}
		s += err.Error()
	}
	return s
}

func (e *attemptsError) Unwrap() []error { return e.errs }
