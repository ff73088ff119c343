// Package proxy is ctftp's front end and composition root: the TFTP
// server phones talk to (Server), the Source of the gateway's own files
// (Local), the file-name cleaning every request goes through (CleanName),
// the single mapping from errors to TFTP error packets (WireError),
// (compose*.go) the assembly of the chain local -> routing -> cache ->
// backends behind it, and the same engine serving a directory on its own
// (ServeDir: the demo's sub-clusters, the bench's RFC 7440 backends). For each RRQ the server cleans the name, builds a
// ctftp.Request and asks its Source; everything below speaks only the
// root package's contract.
//
// # The TFTP engine
//
// The server is our own (pin/tftp stays a test peer and the bench's
// baseline; the backend client is internal/tftpclient): RFC 1350 with RFC 2347 options, blksize (RFC 2348), tsize and
// timeout (RFC 2349) and windowsize (RFC 7440), netascii, block-number
// wraparound past 65535 (to 0), retransmission with back-off, and
// exact error codes. For each RRQ it:
//
//   - ignores it if the same client address:port already has a transfer of
//     the same name running (a retransmitted RRQ must not start a second
//     transfer, nor a second backend fetch);
//   - refuses, from the listening port, a request it cannot serve:
//     malformed (error 4), a name CleanName refuses (error 2), an option
//     out of range (error 8), MaxTransfers reached (error 0 "Server busy");
//   - otherwise starts a transfer: a goroutine and a UDP socket of its
//     own (the server's TID; one an ended transfer left in the socket
//     pool, sockpool.go, emptied of what its previous client left, or a
//     new one) bound to the exact local address the request arrived
//     on (learnt from IP_PKTINFO/IPV6_PKTINFO on wildcard listeners; no
//     interface lookup) and connected to the client, a context from the
//     server's base context ended by a timer at TransferTimeout,
//     Source.Open, the timer moved out to the file's size at
//     TransferMinRate when that is later, then OACK and DATA.
//
// WRQ gets error 2; DATA, ACK, OACK and unknown opcodes at the listening
// port get error 4; an ERROR packet is never answered. The transfer's
// socket is connected, so the kernel keeps packets from any other address
// or port away from it (they draw an ICMP port unreachable, as with
// tftpd-hpa, not error 5) and reports an ICMP unreachable from the client
// on the next read: the transfer ends at once (ErrClientUnreachable,
// counted in ctftp_transfer_unreachable_total) instead of retransmitting
// to a client that is gone. An ERROR from the client ends the transfer.
// Duplicate ACKs are ignored (no Sorcerer's Apprentice) and do not extend
// deadlines. The engine reaches its socket through the small transport
// interface (transport.go), so other socket models share it.
//
// # Abuse resistance
//
// Before anything else, a packet at the listening port is checked against
// the client ACL (Config.Allow, Config.Deny; acl.go) and the client's
// token bucket (Config.ClientRate, ClientBurst; clients.go, a table
// bounded by MaxClients); a request over MaxTransfersPerClient is dropped
// too. All three drop in silence (an answer to a spoofed source is a
// reflection) and count. A transfer whose client has acknowledged nothing
// sends its first packet and one retransmission (preAckRetries), then ends
// without an error packet: a spoofed RRQ draws at most two packets.
//
// # Single-port mode
//
// With Config.SinglePort the transfers use the listening socket instead
// of sockets of their own (demux.go): its reader hands packets from a
// client address:port with a transfer running to that transfer's inbox,
// and the transfer sends through the listening socket (source address
// pinned on wildcard sockets). The transfer engine is the same; only its
// transport differs. A new request from the same address:port supersedes
// the transfer there, which falls silent. A shutdown keeps the listening
// sockets open until the transfers have ended.
//
// # Option choices
//
// Per RFC 2347 unknown options are ignored and only recognised ones are
// acknowledged; with none left the server answers with DATA 1. Following
// tftp-hpa: a non-numeric value ("abc") ignores the option; blksize below
// 8 (0, 7), windowsize 0 and a timeout outside 1..255 refuse the request
// with error 8; blksize above max_blksize (65465, say) and windowsize above
// max_windowsize are lowered to the cap, as RFC 2348 and RFC 7440 allow.
// A repeated option counts once, first occurrence first. Options after
// the 64th are not read (RFC 2347 caps a request at 512 bytes, so only a
// broken or hostile client sends more). tsize is answered from File.Size,
// else by seeking a seekable Body, else left out; in netascii mode it is
// always left out, because the converted length is only known after
// reading the whole file and a wrong tsize is worse than none. The
// client's timeout is used as asked; otherwise the retransmission timeout
// starts at Timeout and doubles up to four times it. Windowed transfers
// restart the window right after an ACK that falls inside it (RFC 7440).
//
// # Goroutines, concurrency, memory
//
// Serve starts one reader goroutine per listening socket and one
// goroutine per transfer; Shutdown (or cancelling Serve's context) closes
// the listening sockets, which ends the readers, lets transfers finish
// for up to ShutdownGrace, then cancels their contexts and wakes every
// transfer blocked on its socket in one sweep; Serve and Shutdown return
// only after all have ended, and close the sockets kept for reuse (at
// most 256, each closed after 5 s idle by a timer of the pool). Server,
// Local and the functions here are safe for concurrent use.
//
// Memory is bounded by MaxTransfers: each transfer holds one socket (in
// single-port mode, an inbox of four small packets instead), a goroutine, about 1 KiB of state and its packet buffers (pooled by size
// class): one block for a Body implementing io.ReaderAt, which must then
// serve the same bytes as Read from offset 0 (an *os.File, a
// bytes.Reader), and WindowSize blocks for other bodies. The data path
// (DATA out, ACK in) allocates nothing per packet, and sets its read
// deadline about once per retransmission interval, not per packet;
// transfers and their sockets are reused. A warm transfer allocates 15
// objects in all (allocs_test.go asserts the budget).
//
// # Logs and metrics
//
// Every request that reaches the server as an RRQ or WRQ logs exactly one
// Info line "transfer" with client, file, source (File.Origin or "none"),
// subcluster, backend, bytes, duration, blksize, windowsize, result
// (ok, not_found, denied, error) and err (the internal error text, which
// never reaches the client: WireError gives clients fixed texts). Other
// refused packets are logged at Debug only. Metrics (see metrics.go):
// ctftp_transfers_total{source,result}, ctftp_active_transfers,
// ctftp_transfer_bytes_total, ctftp_transfer_duration_seconds (a
// VictoriaMetrics histogram of transfers that started; refusals at the
// listening port are not timed), ctftp_transfer_retransmits_total (DATA
// or OACK packets sent again after a timeout: loss or slow clients) and
// ctftp_requests_rejected_total{reason} with reason one of malformed,
// illegal_opcode, write, bad_name, bad_option, busy, duplicate, acl,
// rate_limited, client_busy; ctftp_transfer_unreachable_total and
// ctftp_transfer_unacknowledged_total (transfers ended by an ICMP
// unreachable, or because the client never acknowledged),
// ctftp_client_rate_entries and ctftp_client_rate_evictions_total (the
// bounded per-client table), ctftp_tftp_single_port,
// ctftp_transfer_sockets_idle (sockets kept for reuse). Dropped packets are
// logged at Debug only, so a flood cannot flood the log.
//
// # The gateway: generations, trust guard, reload
//
// Gateway (compose.go) owns a generation: one configuration's chain
// (local files, routing with its migration waves, cache, cluster Set,
// trust watcher) behind an atomic pointer the front ends read per
// request. Reload (reload.go) validates a new configuration, including
// the ITL homogeneity check with live probes and the check of every
// migration wave that cuts over (migrate.go: a wave that would break
// phones refuses it), builds the next generation, swaps it in, and retires
// the old one once the requests already inside it have finished; a
// configuration that fails leaves the old generation serving. The trust
// guard (trust.Guard) sits on the cache's fill path, so each forwarded
// .tlv/.sgn is checked once per fill against its sub-cluster's ITL with
// the phone trust model. Its metrics: ctftp_homogeneous,
// ctftp_trust_signer_changes_total, ctftp_trust_heterogeneous_total,
// ctftp_trust_forwarded_checked_total, ctftp_trust_forwarded_rejected_total,
// ctftp_trust_refused_total (all {subcluster}), ctftp_config_generation,
// ctftp_config_reloads_total{result} and ctftp_config_info{sha256} (always
// 1, naming the SHA-256 of the configuration file in force, so the two
// gateways of an HA pair can be compared).
//
// # The admin endpoint
//
// One GatewayStatus (Status) is the source of everything an operator
// reads: /status encodes it as JSON; View lays it out as sections of
// facts and tables, which statuspage.go renders as the HTML page at /
// (self-contained, phone-sized, reloading itself) and /status/tables
// hands to `ctftp status` as JSON. /readyz answers from the same
// readiness list. A new part of the state (migration waves) is a field
// of GatewayStatus plus a section in View, and appears in all three.
package proxy
