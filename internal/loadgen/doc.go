// Package loadgen is the boot-storm load generator behind `ctftp bench`
// and the storm tests: it plays a building of Cisco phones booting at
// once against any TFTP server (ctftp, tftpd-hpa, CUCM), each phone
// asking for its files in the real order (BootSequence: CTLSEP<MAC>.tlv
// falling back to CTLFile.tlv, ITLSEP<MAC>.tlv falling back to
// ITLFile.tlv, SEP<MAC>.cnf.xml.sgn), and reports phones/s, transfers/s,
// exact latency percentiles per transfer and per boot, errors by kind and
// bytes. It stands outside the gateway's chain: it only talks TFTP to a
// server, through internal/tftpclient, and imports nothing of the
// gateway.
//
// Each phone reads its boot through one socket on an address of its own
// (a fresh socket after a transfer that needed a retransmission, which
// the server may answer twice), so the generator spends as little of a
// small machine's CPU as it can: a Report carries this process's CPU per
// phone and the hypervisor's steal over the run, and ProfileCPU splits a
// run's CPU between the server in the same process and the generator by
// pprof label (SideLabel).
//
// Three helpers measure what a storm alone does not: Ceiling stands in
// for client and server with nothing but the storm's round trips (the
// loopback lock-step ceiling), Hold keeps thousands of transfers open on a
// server at once (resident memory and goroutines per transfer in flight,
// and whether both come back), and DelayLink puts an emulated WAN between
// a client and a server (what a cache miss costs when the backend is
// 50 ms away).
//
// # Goroutines
//
// Run starts Concurrency workers and, when asked for progress, one
// reporter; all end before Run returns (early when its context ends).
// StartHold runs up to HoldOptions.Window goroutines while it opens the
// transfers and none afterwards. StartDelayLink starts two goroutines
// plus two per client session; Close stops them and waits.
//
// # Concurrency
//
// Run, StartHold and StartDelayLink may be called concurrently; Hold and
// DelayLink are safe for concurrent use. Options.Check and Options.Get
// are called from many goroutines at once. Report and Latency are plain
// data.
//
// # Metrics
//
// None: the generator is a client. Its measurements are the Report; the
// server's side is read from the server's own /metrics.
package loadgen
