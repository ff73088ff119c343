// Package tftpd runs tftpd-hpa's in.tftpd on a loopback port: the one
// launcher of the real backend that `ctftp bench --side-by-side` and the
// tests (through internal/tftptest.StartTFTPD) share.
//
// in.tftpd must start as root, because it chroots into the directory it
// serves (-s) before it drops privileges; it is told to stay root (-u
// root), since generated files need not be readable by "nobody". It
// serves only world-readable files.
//
// Goroutines: Start runs one goroutine waiting for the daemon; Stop kills
// the daemon's process group (with every transfer it forked) and waits
// for that goroutine. A Proc is safe for concurrent use. No metrics.
package tftpd
