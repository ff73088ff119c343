package proxy

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
)

// The front end's series (names are part of ctftp's interface contract):
//
//	ctftp_transfers_total{source,result}   requests answered, by where the file
//	                                       came from (local, cache, backend; none
//	                                       when no file was opened) and outcome
//	                                       (ok, not_found, denied, error)
//	ctftp_active_transfers                 transfers running now
//	ctftp_transfer_bytes_total             file bytes the clients acknowledged
//	ctftp_transfer_duration_seconds        histogram of transfer time, from the
//	                                       request to the last ACK or the failure
//	ctftp_transfer_retransmits_total       packets sent again after a timeout
//	                                       (a loss or a slow client)
//	ctftp_transfer_unreachable_total       transfers ended by an ICMP unreachable
//	                                       from the client (vanished or spoofed)
//	ctftp_transfer_sockets_idle            sockets of ended transfers kept for the
//	                                       next ones (socketPool)
//	ctftp_transfer_unacknowledged_total    transfers whose client acknowledged
//	                                       nothing (spoofed requests; ended after
//	                                       at most two packets, in silence)
//	ctftp_requests_rejected_total{reason}  packets refused before a transfer
//	                                       started, by reason (see reason*)
//	ctftp_tftp_single_port                 1 in single-port mode (tftp.single_port),
//	                                       else 0
//	ctftp_client_rate_entries              client addresses with a token bucket
//	                                       (at most tftp.max_clients)
//	ctftp_client_rate_evictions_total      buckets forgotten to stay within
//	                                       tftp.max_clients
//
// Counters are created once, here, so the packet path never formats a
// metric name. GetOrCreate lets the HTTP front end share the same series.

// Label values, in the index order of serverMetrics.transfers.
const (
	numSources = 4 // local, cache, backend, none
	numResults = 4 // ok, not_found, denied, error
)

func sourceIndex(f *ctftp.File) int {
	if f != nil {
		switch f.Origin {
		case ctftp.OriginLocal:
			return 0
		case ctftp.OriginCache:
			return 1
		case ctftp.OriginBackend:
			return 2
		}
	}
	// No file, or an origin outside the contract's set: "none" rather
	// than minting a new label value.
	return 3
}

func resultIndex(result string) int {
	switch result {
	case resultOK:
		return 0
	case resultNotFound:
		return 1
	case resultDenied:
		return 2
	}
	return 3
}

// Reasons a packet is refused before any transfer starts.
type reason int

const (
	reasonMalformed     reason = iota // truncated, unterminated, unknown mode, empty name
	reasonIllegalOpcode               // DATA, ACK, ERROR, OACK or unknown opcode at the listening port
	reasonWrite                       // WRQ
	reasonBadName                     // CleanName refused the name
	reasonBadOption                   // option value outside its RFC range
	reasonBusy                        // MaxTransfers reached
	reasonDuplicate                   // retransmitted RRQ of a running transfer (ignored)
	reasonACL                         // client refused by tftp.allow / tftp.deny (dropped)
	reasonRateLimited                 // client over tftp.client_rate (dropped)
	reasonClientBusy                  // client at tftp.max_transfers_per_client (dropped)
	numReasons
)

func (r reason) String() string {
	return [numReasons]string{"malformed", "illegal_opcode", "write", "bad_name", "bad_option", "busy", "duplicate",
		"acl", "rate_limited", "client_busy"}[r]
}

type serverMetrics struct {
	transfers [numSources][numResults]*metrics.Counter
	active    *metrics.Gauge
	bytes     *metrics.Counter
	duration  *metrics.Histogram
	resends   *metrics.Counter
	// unreachable counts transfers an ICMP unreachable ended.
	unreachable *metrics.Counter
	socketsIdle *metrics.Gauge
	// unacknowledged counts transfers whose client never acknowledged.
	unacknowledged *metrics.Counter
	rejected       [numReasons]*metrics.Counter
}

func newServerMetrics(set *metrics.Set) *serverMetrics {
	m := &serverMetrics{
		active:   set.GetOrCreateGauge("ctftp_active_transfers", nil),
		bytes:    set.GetOrCreateCounter("ctftp_transfer_bytes_total"),
		duration: set.GetOrCreateHistogram("ctftp_transfer_duration_seconds"),
		resends:  set.GetOrCreateCounter("ctftp_transfer_retransmits_total"),

		unreachable:    set.GetOrCreateCounter("ctftp_transfer_unreachable_total"),
		socketsIdle:    set.GetOrCreateGauge("ctftp_transfer_sockets_idle", nil),
		unacknowledged: set.GetOrCreateCounter("ctftp_transfer_unacknowledged_total"),
	}
	for i, s := range [numSources]string{"local", "cache", "backend", "none"} {
		for j, r := range [numResults]string{resultOK, resultNotFound, resultDenied, resultError} {
			m.transfers[i][j] = set.GetOrCreateCounter(fmt.Sprintf(`ctftp_transfers_total{source=%q,result=%q}`, s, r))
		}
	}
	for r := range numReasons {
		m.rejected[r] = set.GetOrCreateCounter(fmt.Sprintf(`ctftp_requests_rejected_total{reason=%q}`, r))
	}
	return m
}

// transfer returns the counter for a file's origin (nil file: "none")
// and a result.
func (m *serverMetrics) transfer(f *ctftp.File, result string) *metrics.Counter {
	return m.transfers[sourceIndex(f)][resultIndex(result)]
}
