package sdnotify

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen opens a unixgram socket like systemd's notify socket.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

func TestNotify(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@ctftp-sdnotify-test-" + t.Name()} {
		t.Run(name, func(t *testing.T) {
			c := listen(t, name)
			t.Setenv("NOTIFY_SOCKET", name)
			n := FromEnv()
			if !n.Enabled() {
				t.Fatal("not enabled")
			}
			if err := n.Ready("serving 2 sub-clusters"); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, c); got != "READY=1\nSTATUS=serving 2 sub-clusters" {
				t.Errorf("got %q", got)
			}
			if err := n.Reloading(); err != nil {
				t.Fatal(err)
			}
			got := recv(t, c)
			if !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") || len(got) <= len("RELOADING=1\nMONOTONIC_USEC=") {
				t.Errorf("got %q", got)
			}
			if err := n.Stopping(); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, c); got != "STOPPING=1\nSTATUS=stopping" {
				t.Errorf("got %q", got)
			}
		})
	}
}

func TestNotifyOff(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	if n.Enabled() || n.Ready("x") != nil || n.Reloading() != nil || n.Stopping() != nil {
		t.Error("a Notifier without a socket must do nothing")
	}
}

func TestNotifyNobodyListening(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	if err := FromEnv().Ready("x"); err == nil || !strings.HasPrefix(err.Error(), "sdnotify: ") {
		t.Errorf("err = %v, want a wrapped error", err)
	}
}
