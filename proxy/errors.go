package proxy

import (
	"errors"
	"fmt"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftpwire"
)

// Errors of the front end. The ErrName* ones come from CleanName and wrap
// ctftp.ErrDenied; check them all with errors.Is.
var (
	// ErrServerClosed: Listen or Serve after Shutdown; also the cause of
	// the cancellation transfers see when a shutdown's grace runs out.
	ErrServerClosed = errors.New("proxy: server closed")
	// ErrBusy: a request arrived while MaxTransfers transfers were running.
	ErrBusy = errors.New("proxy: too many transfers in flight")
	// ErrTransferTimeout: a transfer ran longer than TransferTimeout.
	ErrTransferTimeout = errors.New("proxy: transfer timed out")
	// ErrClientGone: the client stopped acknowledging and every
	// retransmission went unanswered.
	ErrClientGone = errors.New("proxy: client stopped answering")
	// ErrNoAcknowledgement: the client acknowledged nothing, not even
	// after one retransmission; the transfer ended without an error
	// packet (see preAckRetries).
	ErrNoAcknowledgement = errors.New("proxy: client never acknowledged (spoofed request or vanished client)")
	// ErrClientUnreachable: an ICMP unreachable (port, host or network)
	// answered a packet to the client: it is gone (or was never there,
	// the request being spoofed). Nothing more is sent to it.
	ErrClientUnreachable = errors.New("proxy: client unreachable")
	// ErrClientAbort: the client ended the transfer with an ERROR packet.
	ErrClientAbort = errors.New("proxy: client aborted the transfer")
	// ErrWriteRefused: a WRQ; the gateway is read-only.
	ErrWriteRefused = fmt.Errorf("proxy: write requests are refused: %w", ctftp.ErrDenied)

	ErrNameEmpty   = fmt.Errorf("proxy: empty file name: %w", ctftp.ErrDenied)
	ErrNameTooLong = fmt.Errorf("proxy: file name longer than %d bytes: %w", MaxNameLength, ctftp.ErrDenied)
	ErrNameNUL     = fmt.Errorf("proxy: NUL in file name: %w", ctftp.ErrDenied)
	ErrNameByte    = fmt.Errorf("proxy: control or non-ASCII byte in file name: %w", ctftp.ErrDenied)
	ErrNameDotDot  = fmt.Errorf("proxy: \"..\" in file name: %w", ctftp.ErrDenied)
	ErrNameInvalid = fmt.Errorf("proxy: invalid file name: %w", ctftp.ErrDenied)

	// errIllegalOperation: a packet that has no business at the port it
	// reached (DATA, ACK or an unknown opcode sent to the listening port).
	errIllegalOperation = errors.New("proxy: illegal TFTP operation")
	// errUnknownTID: in single-port mode, a DATA, ACK or OACK from an
	// address and port that has no transfer running.
	errUnknownTID = errors.New("proxy: unknown transfer ID")
)

// WireError maps an error to the TFTP error code and message a client
// gets. It is the only place that decides what a client is told, and the
// messages are fixed strings: whatever err says (paths, backend
// addresses, internal detail) goes to the log only.
//
//	ctftp.ErrNotFound                       1 "File not found"
//	ctftp.ErrDenied (bad names, WRQ, ...)   2 "Access violation"
//	malformed packets, stray DATA/ACK       4 "Illegal TFTP operation"
//	a packet from a stranger to a transfer  5 "Unknown transfer ID"
//	option refused                          8 "Option negotiation failed"
//	anything else                           0 with a generic text
func WireError(err error) (code uint16, msg string) {
	switch {
	case errors.Is(err, ctftp.ErrNotFound):
		return tftpwire.CodeFileNotFound, "File not found"
	case errors.Is(err, ctftp.ErrDenied):
		return tftpwire.CodeAccessViolation, "Access violation"
	case errors.Is(err, tftpwire.ErrOptionRefused):
		return tftpwire.CodeOptionRefused, "Option negotiation failed"
	case errors.Is(err, tftpwire.ErrMalformed), errors.Is(err, tftpwire.ErrNotRequest),
		errors.Is(err, tftpwire.ErrUnknownMode), errors.Is(err, errIllegalOperation):
		return tftpwire.CodeIllegalOperation, "Illegal TFTP operation"
	case errors.Is(err, errUnknownTID):
		return tftpwire.CodeUnknownTID, "Unknown transfer ID"
	case errors.Is(err, ErrBusy):
		return tftpwire.CodeNotDefined, "Server busy"
	case errors.Is(err, ErrServerClosed):
		return tftpwire.CodeNotDefined, "Server shutting down"
	case errors.Is(err, ErrTransferTimeout), errors.Is(err, ErrClientGone), errors.Is(err, ErrNoAcknowledgement):
		return tftpwire.CodeNotDefined, "Transfer timed out"
	case errors.Is(err, ctftp.ErrUnavailable):
		return tftpwire.CodeNotDefined, "Temporarily unavailable"
	}
	return tftpwire.CodeNotDefined, "Transfer failed"
}

// Values of the result label and of the log line's result field.
const (
	resultOK       = "ok"
	resultNotFound = "not_found"
	resultDenied   = "denied"
	resultError    = "error"
)

// resultOf classifies a transfer's outcome for metrics and logs.
func resultOf(err error) string {
	switch {
	case err == nil:
		return resultOK
	case errors.Is(err, ctftp.ErrNotFound):
		return resultNotFound
	case errors.Is(err, ctftp.ErrDenied):
		return resultDenied
	}
	return resultError
}
