// Package sdnotify tells systemd how the service is doing, for units of
// Type=notify: READY=1 once `ctftp serve` listens, RELOADING=1 and
// READY=1 around a reload, STOPPING=1 at shutdown, and STATUS= lines
// that `systemctl status` shows. It is the sd_notify(3) protocol: one
// datagram per message to the unix socket named by $NOTIFY_SOCKET (a
// path, or an abstract socket written with a leading '@'). Without that
// variable (not under systemd) every call does nothing.
//
// It is a few lines over the standard library rather than a dependency
// (coreos/go-systemd): one datagram write is the whole protocol.
//
// No goroutines, no metrics. A Notifier is safe for concurrent use.
package sdnotify
