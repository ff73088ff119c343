package loadgen

import (
	"context"
	"errors"

	"github.com/ctftp/ctftp/internal/tftpclient"
	"github.com/ctftp/ctftp/internal/tftpwire"
)

// Kind classifies why a transfer failed; Report.Errors counts by it. A
// string value, safe to share.
type Kind string

// The kinds Classify returns.
const (
	// KindNotFound: a required file (the configuration) was not found.
	// Missing CTLSEP/ITLSEP files are misses, not errors.
	KindNotFound Kind = "not_found"
	// KindDenied: the server answered ERROR 2 (access violation).
	KindDenied Kind = "denied"
	// KindServerError: any other ERROR packet ("Server busy", "temporarily
	// unavailable", ...).
	KindServerError Kind = "server_error"
	// KindTimeout: the server stopped answering for Retries timeouts.
	KindTimeout Kind = "timeout"
	// KindBootTimeout: the phone's whole boot took longer than BootTimeout.
	KindBootTimeout Kind = "boot_timeout"
	// KindProtocol: the server broke the protocol (bad OACK, oversized DATA).
	KindProtocol Kind = "protocol"
	// KindTooLarge: a file was larger than MaxFileSize.
	KindTooLarge Kind = "too_large"
	// KindMismatch: Options.Check rejected the bytes received.
	KindMismatch Kind = "mismatch"
	// KindNetwork: a socket error (no route, too many open files, ...).
	KindNetwork Kind = "network"
	// KindCanceled: the run was stopped before the transfer ended.
	KindCanceled Kind = "canceled"
)

// errMismatch wraps what Options.Check returns.
var errMismatch = errors.New("loadgen: content check failed")

// Classify names the kind of a transfer error (nil gives ""). parent is
// the run's context: a deadline of the phone's own context is a boot
// timeout, the end of the run's is a cancellation.
func Classify(parent context.Context, err error) Kind {
	var se *tftpclient.ServerError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		switch se.Code {
		case tftpwire.CodeFileNotFound:
			return KindNotFound
		case tftpwire.CodeAccessViolation:
			return KindDenied
		}
		return KindServerError
	case errors.Is(err, errMismatch):
		return KindMismatch
	case errors.Is(err, tftpclient.ErrTimeout):
		return KindTimeout
	case errors.Is(err, tftpclient.ErrTooLarge):
		return KindTooLarge
	case errors.Is(err, tftpclient.ErrProtocol):
		return KindProtocol
	case parent != nil && parent.Err() != nil:
		return KindCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return KindBootTimeout
	case errors.Is(err, context.Canceled):
		return KindCanceled
	}
	return KindNetwork
}

// isNotFound reports whether err is the server's "file not found".
func isNotFound(err error) bool {
	var se *tftpclient.ServerError
	return errors.As(err, &se) && se.NotFound()
}
