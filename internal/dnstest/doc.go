// Package dnstest starts an authoritative DNS server on loopback for
// tests: a miekg/dns server on 127.0.0.1 and a port the OS picks, whose A,
// AAAA and SRV records a test changes while it runs (to move backends),
// that can be switched to SERVFAIL (to play an outage), and that counts
// the questions it gets. It is test support for the cluster package's
// resolver and re-resolution tests.
//
// Goroutines: a Server runs miekg/dns's serve loop; Close (registered
// with t.Cleanup) stops it and waits. A Server is safe for concurrent
// use. No metrics.
package dnstest
