package proxy

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/internal/tftpwire"
)

func TestWireError(t *testing.T) {
	secret := "backend 10.1.0.10:69 /var/lib/ctftp/x"
	tests := []struct {
		name string
		err  error
		code uint16
		msg  string
	}{
		{"not found", fmt.Errorf("%s: %w", secret, ctftp.ErrNotFound), 1, "File not found"},
		{"denied", fmt.Errorf("%s: %w", secret, ctftp.ErrDenied), 2, "Access violation"},
		{"bad name", ErrNameDotDot, 2, "Access violation"},
		{"write", ErrWriteRefused, 2, "Access violation"},
		{"malformed", fmt.Errorf("x: %w", tftpwire.ErrMalformed), 4, "Illegal TFTP operation"},
		{"unknown mode", tftpwire.ErrUnknownMode, 4, "Illegal TFTP operation"},
		{"not a request", tftpwire.ErrNotRequest, 4, "Illegal TFTP operation"},
		{"illegal operation", errIllegalOperation, 4, "Illegal TFTP operation"},
		{"unknown TID", errUnknownTID, 5, "Unknown transfer ID"},
		{"option", fmt.Errorf("blksize 0: %w", tftpwire.ErrOptionRefused), 8, "Option negotiation failed"},
		{"busy", ErrBusy, 0, "Server busy"},
		{"shutdown", ErrServerClosed, 0, "Server shutting down"},
		{"transfer timeout", ErrTransferTimeout, 0, "Transfer timed out"},
		{"client gone", ErrClientGone, 0, "Transfer timed out"},
		{"unavailable", fmt.Errorf("%s: %w", secret, ctftp.ErrUnavailable), 0, "Temporarily unavailable"},
		{"anything else", errors.New(secret), 0, "Transfer failed"},
		{"context", context.Canceled, 0, "Transfer failed"},
		{"nil", nil, 0, "Transfer failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := WireError(tt.err)
			if code != tt.code || msg != tt.msg {
				t.Errorf("WireError = %d %q, want %d %q", code, msg, tt.code, tt.msg)
			}
			if !wireMessages[msg] {
				t.Errorf("%q missing from the tests' list of wire texts", msg)
			}
		})
	}
}

func TestResultOf(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{nil, "ok"}, {ctftp.ErrNotFound, "not_found"}, {ErrNameNUL, "denied"},
		{ErrBusy, "error"}, {ctftp.ErrUnavailable, "error"},
	} {
		if got := resultOf(tt.err); got != tt.want {
			t.Errorf("resultOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
