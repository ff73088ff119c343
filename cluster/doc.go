// Package cluster owns the sub-clusters behind the gateway: their backend
// TFTP servers, the DNS names those backends are written as, the
// backends' health, and fetching files from them. Its Set is the last
// Source in the chain,
//
//	First(local, route -> cache(subcluster+name) -> cluster.Set)
//
// so it answers for one sub-cluster (Request.Subcluster) and knows
// nothing about phones, routing or caching. Whether phones will accept
// what it fetches is the trust package's business.
//
// # Fetching
//
// Set.Open reads the whole file from one backend with pin/tftp's client
// (per-attempt timeout and retransmissions from config, blksize and tsize
// asked for) and returns it from memory, so a transfer that breaks or
// comes up short of its announced tsize can still fail over and a phone
// never sees half a file. Backends are tried in configured order, healthy
// ones first. A backend that does not answer (ErrBackendUnavailable) or
// refuses (ErrRefused: any TFTP error but 1) hands over to the next; "file
// not found" (TFTP error 1) is the answer (ctftp.ErrNotFound). Every
// failure is also ctftp.ErrUnavailable, so an outage never reads as "not
// found". pin/tftp reports a backend's ERROR packet only as text; that
// text is parsed in one function, classifyClientError.
//
// Each backend has a cap on fetches in flight (backend.max_in_flight,
// default 5: CUCM serves five files at a time since 11.5 and queues the
// rest). A fetch takes the first healthy backend with a free slot, else
// waits for the first candidate's, for as long as its context allows.
//
// # Health
//
// Passive: backend.max_fails consecutive failures (no answer, I/O error,
// malformed or short transfer) mark a backend down; any answer marks it
// up. Active: Run probes every backend each backend.probe_interval by
// asking for backend.probe_file; any TFTP answer, even an ERROR packet,
// proves it alive. At most one probe per backend is in flight, and a
// probe takes one of the backend's slots (a full backend is not probed:
// its fetches already tell). Only changes of health are logged.
//
// # Names
//
// A backend is an address, a host name (A and AAAA) or a _tftp._udp SRV
// name, resolved with miekg/dns against dns.servers or /etc/resolv.conf.
// Run looks names up again when their TTL, bounded by dns.min_ttl and
// dns.max_ttl, runs out. Addresses that stay keep their backend, with its
// health and slots; a failed lookup keeps the previous addresses. An
// address that is one of the gateway's own listen addresses is refused
// (ErrLoop): New fails for a literal one, a resolved one is left out and
// shown by Status and ProbeAll.
//
// # Goroutines and concurrency
//
// New starts nothing. Run starts the resolution and probe loop in the
// caller's goroutine and one goroutine per probe in flight; all of them
// end, and Run returns, once its context is done. Open, Fetch, Resolve,
// ProbeAll, Status and Names are safe for concurrent use with each other
// and with Run. Resolve and ProbeAll use goroutines of their own and wait
// for them before returning.
//
// # Metrics
//
//	ctftp_backend_fetches_total{subcluster,result}   counter, one per backend attempt;
//	                                                 result: ok, not_found, refused, error
//	ctftp_backend_fetch_duration_seconds{subcluster} histogram of attempt durations
//	ctftp_backend_in_flight{subcluster}              gauge: attempts holding a backend slot
//	ctftp_backend_waiting{subcluster}                gauge: fetches waiting for a slot
//	ctftp_backend_up{subcluster,backend}             gauge: 1 while some address of the
//	                                                 configured backend string is up
//	ctftp_backend_probes_total{subcluster,result}    counter; result: alive, dead
//	ctftp_dns_resolutions_total{result}              counter, one per name lookup;
//	                                                 result: ok, empty, error
//
// ProbeFetch's attempts (the trust package's ITL probes) count in
// ctftp_backend_probes_total like the health probes.
//
// Labels come only from configuration (sub-cluster names, backend strings
// as written), never from file names or client addresses.
package cluster
