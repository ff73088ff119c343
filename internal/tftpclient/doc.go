// Package tftpclient is ctftp's TFTP read client: `ctftp get`, the boot
// storm generator and tests use it. It speaks RFC 1350 with the option
// extensions RFC 2347 (OACK), 2348 (blksize), 2349 (tsize, timeout) and
// RFC 7440 (windowsize), so one fetch across a WAN costs a few round
// trips instead of one per 512 bytes.
//
// Why not pin/tftp's client: it has no context, reports a server's ERROR
// only as text (callers would have to parse it), does not do windowsize,
// and mis-reads transfers at blksize 8 (seen against tftpd-hpa: it stops
// after the first block). Here a server's ERROR is a typed *ServerError.
//
// Get runs on the caller's goroutine and starts none; it is safe to call
// concurrently (each call has its own socket).
package tftpclient
