// Package tests holds the end-to-end tests: the real ctftp binary, built
// once per run, serving real clients (curl, tftp-hpa's tftp, ctftp get)
// with real backends (tftpd-hpa's in.tftpd) on loopback ports. Nothing
// here reaches beyond loopback.
package tests
