// Package sidebyside owns `ctftp bench --side-by-side`: one run, on
// loopback, of the same boot storm (internal/loadgen) against every server
// a reader needs to compare, in turn and for several passes — tftpd-hpa
// serving the fleet's files itself (internal/tftpd), a plain pin/tftp
// server in this process, the gateway (proxy) cold in front of one backend
// per sub-cluster with fan-out, then warm, then cold with device rules,
// and the loopback lock-step ceiling — with the ratios of their phones/s
// per pass and their medians, the load average at each start (Settle
// waits for a quiet machine first), the backend fetches of each cold run
// against the distinct answers cached, the heap per cached byte, and the
// gateway's memory per transfer in flight, held open by a child process.
// The fleet (PKI, ITLs, signed files, device lists) is internal/fleet's.
// The command line keeps the flags and the printing: Run returns a Result
// whose JSON form is what `--json` prints.
//
// Goroutines: Run runs the servers it starts (in.tftpd processes, the
// pin/tftp server, gateways, optional delay links) and stops each before
// it returns; servers in this process run under loadgen.ServerLabels so a
// CPU profile splits server from generator. Metrics: each gateway has a
// metrics set of its own, read for fetch counts and transfers in flight;
// nothing is registered globally.
package sidebyside
