// Package tftptest starts TFTP servers on loopback for tests, the way
// net/http/httptest starts HTTP servers. It is test support only: the
// cluster package's fetch tests and the end-to-end tests in tests/ use it
// as their backends.
//
// NewServer serves an in-memory file map with pin/tftp's server on
// 127.0.0.1 (or ::1 with ListenOn) and a port the OS picks, counts the
// read requests it gets and the transfers it has open at once, and has
// knobs for the faults real backends have: WithDelay (slow), Silent
// (socket open, never answers), Corrupt (sends less than the tsize it
// announces), FailAfter (hangs after N requests) and Refuse (answers
// every request with a given TFTP error code, which pin/tftp's server
// cannot send). StartTFTPD runs a real tftpd-hpa on a loopback port
// instead, through internal/tftpd (the launcher `ctftp bench` uses too).
//
// Goroutines: a Server runs one serve loop plus pin/tftp's goroutine per
// transfer; StartTFTPD's daemon has one goroutine waiting for it. Close
// (registered with t.Cleanup) stops them and waits for them. A Server is
// safe for concurrent use. No metrics.
package tftptest
