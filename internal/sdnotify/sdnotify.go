package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends state changes to systemd. The zero value (no socket)
// drops them.
type Notifier struct {
	socket string
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET; it does not unset the
// variable, so child processes would see it (ctftp starts none that
// speak the protocol).
func FromEnv() Notifier {
	return Notifier{socket: os.Getenv("NOTIFY_SOCKET")}
}

// Enabled reports whether a service manager listens.
func (n Notifier) Enabled() bool { return n.socket != "" }

// Notify sends the newline-separated assignments in state ("READY=1",
// "STATUS=serving"). It returns nil when no service manager listens.
func (n Notifier) Notify(state ...string) error {
	if n.socket == "" {
		return nil
	}
	// An abstract socket's leading '@' is what Go's net package
	// expects too: it writes the NUL the kernel wants in its place.
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	c, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(state, "\n"))); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// Ready says the service is up: its sockets are bound and it serves.
func (n Notifier) Ready(status string) error {
	return n.Notify("READY=1", "STATUS="+status)
}

// Reloading says a reload began; Ready must follow when it ends, as
// Type=notify-reload units expect. systemd wants the CLOCK_MONOTONIC
// time with it, to order it against the reload it asked for.
func (n Notifier) Reloading() error {
	if n.socket == "" {
		return nil
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("sdnotify: monotonic clock: %w", err)
	}
	return n.Notify("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", time.Duration(ts.Nano()).Microseconds()))
}

// Stopping says the service is shutting down.
func (n Notifier) Stopping() error {
	return n.Notify("STOPPING=1", "STATUS=stopping")
}

// Status updates the one-line status `systemctl status` shows.
func (n Notifier) Status(status string) error {
	return n.Notify("STATUS=" + status)
}
