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
// Set.Open reads the whole file with the project's own TFTP client
// (internal/tftpclient: the first answer taken only from the backend's
// address, the transfer ID then fixed, typed errors, context
// cancellation; blksize, tsize and windowsize asked for) and returns it
// from memory, so a transfer that breaks, comes up short of its announced
// tsize, or is not whole can still fail over and a phone never sees half
// a file. A file the backend announces as larger than
// backend.stream_over, and that is not a signed .tlv/.sgn, is returned
// instead as a ctftp.Stream as soon as its length is announced, so that a
// firmware load across a WAN reaches a phone within its timeouts; its
// attempt runs on, gives its slot back, and, when its backend breaks off
// half-way, is carried on by a sibling that announces the same length
// (Set.carryOn). A backend whose host answers ICMP port unreachable (its
// daemon killed) fails an attempt or a probe at once.
//
// Backends that are up are asked in configured order, hedged: when the
// one asked has sent no block for the hedge delay (the sub-cluster's
// smoothed time to a first block + 4 deviations, within backend.hedge_min
// and hedge_max, seeded by the probes' answer times), the next is asked
// too, and the first whole answer wins;
// the others are cancelled (a loser that had sent nothing is blamed). A
// backend that fails (ErrBackendUnavailable, ErrCorrupt) or refuses
// (ErrRefused: any TFTP error but 1) hands over to the next at once;
// "file not found" (TFTP error 1) is the answer (ctftp.ErrNotFound).
// Every failure is also ctftp.ErrUnavailable, so an outage never reads as
// "not found".
//
// Integrity: a fetched .tlv, .sgn or .enc.sgn must be whole before it is
// returned (checkIntegrity: header and records end where the file ends, a
// trust list's signature verifies against its own SAST record, a signed
// XML config is whole XML, a ciphertext is whole AES blocks); one that is
// not is ErrCorrupt, a failure of that backend.
//
// A backend marked down is never asked by Open. A sub-cluster whose
// backends are all down fails at once with ErrSubclusterDown (which is
// ctftp.ErrNotAsked, so a fan-out can skip it without waiting); with
// backend.all_down "try" one fetch at a time goes through as a trial.
// ProbeFetch, the gateway's own checks, asks down backends too.
//
// Each backend has a cap on fetches and probes in flight
// (backend.max_in_flight, default 5: CUCM serves five files at a time
// since 11.5 and queues the rest), with priorities: a phone's fetch comes
// first; background work (probes, and prefetch through
// WithPriority(ctx, PriorityLow)) takes only a slot nobody waits for and
// never the last free one. A fetch takes the first backend up with a free
// slot, else the first slot freed on any of them, waiting at most
// backend.slot_wait (then ErrBusy). A prefetch (ctftp.Request.Prefetch: the
// gateway fetching a file a phone is about to ask for) never waits: it
// gets ctftp.ErrNoIdleSlot instead, without an attempt, so prefetching
// only ever uses capacity no phone asked for (and a phone that joined a
// prefetch's fill is never queued at low priority).
//
// # Health
//
// Passive: backend.max_fails consecutive failed fetches (no answer, I/O
// error, malformed, short or not whole) mark a backend down; any answer
// marks it up. Active: Run probes every backend up each
// backend.probe_interval by asking for backend.probe_file, with
// backend.probe_timeout per packet; any TFTP answer, even an ERROR packet,
// proves it alive, and one left unanswered marks it down at once, so a
// backend that stops answering is seen within probe_interval +
// probe_timeout × (retries+1) with no traffic (5 s by default). A backend
// down is probed again after probe_interval, then with the wait doubling
// up to backend.down_retry_max: the half-open trials, one at a time.
// ProbeFetch's attempts (the trust guard's start-up and periodic ITL
// probes) count toward health the same way. At most one probe per
// backend is in flight, and a probe takes one of the backend's slots at
// low priority (a busy backend is not probed: its fetches already tell).
// Only changes of health are logged.
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
// end, and Run returns, once its context is done. Open and Fetch start one
// goroutine per attempt (two or more only when hedging) and return only
// after every one has returned. Open, Fetch, Resolve,
// ProbeAll, Status and Names are safe for concurrent use with each other
// and with Run. Resolve and ProbeAll use goroutines of their own and wait
// for them before returning.
//
// # Metrics
//
//	ctftp_backend_fetches_total{subcluster,result}   counter, one per backend attempt;
//	                                                 result: ok, not_found, refused, error,
//	                                                 invalid (not whole: ErrCorrupt),
//	                                                 cancelled (a hedge's loser that was
//	                                                 answering, or the caller gave up)
//	ctftp_backend_streams_total{subcluster,result}    counter, one per file passed on while it
//	                                                 arrived; result: ok, carried (finished by
//	                                                 a sibling), error, cancelled
//	ctftp_backend_fetch_duration_seconds{subcluster} histogram of attempt durations
//	ctftp_backend_in_flight{subcluster}              gauge: attempts holding a backend slot
//	ctftp_backend_waiting{subcluster}                gauge: fetches waiting for a slot
//	ctftp_backend_up{subcluster,backend}             gauge: 1 while some address of the
//	                                                 configured backend string is up
//	ctftp_backend_probes_total{subcluster,result}    counter; result: alive, dead
//	ctftp_backend_hedges_total{subcluster}           counter: a sibling asked because the
//	                                                 backend asked first was silent
//	ctftp_backend_skipped_total{subcluster}          counter: fetches failed at once, every
//	                                                 backend known down (not asked)
//	ctftp_backend_slot_timeouts_total{subcluster}    counter: fetches that found no slot
//	                                                 within backend.slot_wait
//	ctftp_dns_resolutions_total{result}              counter, one per name lookup;
//	                                                 result: ok, empty, error
//
// ProbeFetch's attempts (the trust package's ITL probes) count in
// ctftp_backend_probes_total like the health probes.
//
// Labels come only from configuration (sub-cluster names, backend strings
// as written), never from file names or client addresses.
package cluster
