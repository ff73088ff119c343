package cluster

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

// The results of ctftp_backend_fetches_total, one per backend attempt.
const (
	resultOK        = "ok"        // the file came back whole
	resultNotFound  = "not_found" // TFTP error 1
	resultRefused   = "refused"   // any other TFTP error
	resultError     = "error"     // no or a broken answer, too large, or the caller gave up
	resultInvalid   = "invalid"   // a signed file that is not whole (ErrCorrupt)
	resultCancelled = "cancelled" // a hedge's loser, or the caller gave up, mid-transfer
)

// The results of ctftp_backend_streams_total, one per file passed on
// while it arrived (backend.stream_over).
const (
	streamOK        = "ok"        // whole, from the backend that started it
	streamCarried   = "carried"   // whole, its rest from a sibling after a break
	streamError     = "error"     // broke off: its readers got the error
	streamCancelled = "cancelled" // its readers left, or the gateway closed
)

// fetchBuckets span a loopback hit (1 ms) to a silent backend with
// retries (16 s).
var fetchBuckets = metrics.ExponentialBuckets(0.001, 2, 15)

// subMetrics are one sub-cluster's series. Every label value comes from
// configuration (sub-cluster names and backend strings are validated), so
// the number of series is bounded.
type subMetrics struct {
	fetches  map[string]*metrics.Counter  // ctftp_backend_fetches_total{subcluster,result}
	duration *metrics.PrometheusHistogram // ctftp_backend_fetch_duration_seconds{subcluster}
	inFlight *metrics.Gauge               // ctftp_backend_in_flight{subcluster}
	waiting  *metrics.Gauge               // ctftp_backend_waiting{subcluster}
	probes   map[bool]*metrics.Counter    // ctftp_backend_probes_total{subcluster,result=alive|dead}
	skipped  *metrics.Counter             // ctftp_backend_skipped_total{subcluster}
	hedges   *metrics.Counter             // ctftp_backend_hedges_total{subcluster}
	// ctftp_backend_slot_timeouts_total{subcluster}
	slotTimeouts *metrics.Counter
	streams      map[string]*metrics.Counter // ctftp_backend_streams_total{subcluster,result}
}

func newSubMetrics(set *metrics.Set, sub string) subMetrics {
	m := subMetrics{
		fetches:  map[string]*metrics.Counter{},
		duration: set.GetOrCreatePrometheusHistogramExt(fmt.Sprintf(`ctftp_backend_fetch_duration_seconds{subcluster=%q}`, sub), fetchBuckets),
		inFlight: set.GetOrCreateGauge(fmt.Sprintf(`ctftp_backend_in_flight{subcluster=%q}`, sub), nil),
		waiting:  set.GetOrCreateGauge(fmt.Sprintf(`ctftp_backend_waiting{subcluster=%q}`, sub), nil),
		probes: map[bool]*metrics.Counter{
			true:  set.GetOrCreateCounter(fmt.Sprintf(`ctftp_backend_probes_total{subcluster=%q,result="alive"}`, sub)),
			false: set.GetOrCreateCounter(fmt.Sprintf(`ctftp_backend_probes_total{subcluster=%q,result="dead"}`, sub)),
		},
		skipped:      set.GetOrCreateCounter(fmt.Sprintf(`ctftp_backend_skipped_total{subcluster=%q}`, sub)),
		hedges:       set.GetOrCreateCounter(fmt.Sprintf(`ctftp_backend_hedges_total{subcluster=%q}`, sub)),
		slotTimeouts: set.GetOrCreateCounter(fmt.Sprintf(`ctftp_backend_slot_timeouts_total{subcluster=%q}`, sub)),
	}
	for _, r := range []string{resultOK, resultNotFound, resultRefused, resultError, resultInvalid, resultCancelled} {
		m.fetches[r] = set.GetOrCreateCounter(fmt.Sprintf(`ctftp_backend_fetches_total{subcluster=%q,result=%q}`, sub, r))
	}
	m.streams = map[string]*metrics.Counter{}
	for _, r := range []string{streamOK, streamCarried, streamError, streamCancelled} {
		m.streams[r] = set.GetOrCreateCounter(fmt.Sprintf(`ctftp_backend_streams_total{subcluster=%q,result=%q}`, sub, r))
	}
	return m
}

// upGauge is ctftp_backend_up{subcluster,backend}: 1 while at least one
// address of the configured backend string is up, else 0.
func upGauge(set *metrics.Set, sub, backend string) *metrics.Gauge {
	return set.GetOrCreateGauge(fmt.Sprintf(`ctftp_backend_up{subcluster=%q,backend=%q}`, sub, backend), nil)
}

// dnsMetrics count ctftp_dns_resolutions_total{result}: one per
// resolution of a configured name (an SRV name and its targets count
// once). ok: addresses found; empty: the name has none; error: no
// answer, the previous addresses stay in use.
type dnsMetrics struct {
	ok, empty, err *metrics.Counter
}

func newDNSMetrics(set *metrics.Set) dnsMetrics {
	return dnsMetrics{
		ok:    set.GetOrCreateCounter(`ctftp_dns_resolutions_total{result="ok"}`),
		empty: set.GetOrCreateCounter(`ctftp_dns_resolutions_total{result="empty"}`),
		err:   set.GetOrCreateCounter(`ctftp_dns_resolutions_total{result="error"}`),
	}
}
