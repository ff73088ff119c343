package loadgen

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/ctftp/ctftp/internal/tftpclient"
)

func TestClassify(t *testing.T) {
	live := context.Background()
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	wrap := func(err error) error { return fmt.Errorf("CTLFile.tlv: %w", err) }
	tests := []struct {
		name   string
		parent context.Context
		err    error
		want   Kind
	}{
		{"nil", live, nil, ""},
		{"not found", live, wrap(&tftpclient.ServerError{Code: 1, Message: "File not found"}), KindNotFound},
		{"denied", live, wrap(&tftpclient.ServerError{Code: 2, Message: "Access violation"}), KindDenied},
		{"busy", live, wrap(&tftpclient.ServerError{Code: 0, Message: "Server busy"}), KindServerError},
		{"option refused", live, &tftpclient.ServerError{Code: 8}, KindServerError},
		{"timeout", live, wrap(tftpclient.ErrTimeout), KindTimeout},
		{"too large", live, wrap(tftpclient.ErrTooLarge), KindTooLarge},
		{"protocol", live, wrap(fmt.Errorf("%w: bad OACK", tftpclient.ErrProtocol)), KindProtocol},
		{"mismatch", live, fmt.Errorf("%w: x: differs", errMismatch), KindMismatch},
		{"boot deadline", live, wrap(fmt.Errorf("tftp: %w", context.DeadlineExceeded)), KindBootTimeout},
		{"run stopped", stopped, wrap(fmt.Errorf("tftp: %w", context.Canceled)), KindCanceled},
		{"run stopped during a timeout", stopped, wrap(fmt.Errorf("tftp: %w", context.DeadlineExceeded)), KindCanceled},
		{"socket", live, wrap(fmt.Errorf("tftp: socket: %w", syscall.EMFILE)), KindNetwork},
		{"anything else", live, errors.New("odd"), KindNetwork},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.parent, tc.err); got != tc.want {
				t.Fatalf("Classify(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}
