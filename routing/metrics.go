package routing

import (
	"github.com/VictoriaMetrics/metrics"
)

// The series this package exports. Labels come only from the fixed set
// of decision kinds: never a MAC, file name or client address.
const (
	// metricDecisions counts routing decisions the forwarder acted on, by
	// kind (rule, learned, fanout, migration: see Kind.String). A learned route that
	// no longer has the file is followed by a fan-out, which counts as a
	// second decision.
	metricDecisions = `ctftp_routing_decisions_total`
	// metricLearned is the number of learned MAC -> sub-cluster routes
	// held. Expired routes leave it when the table is next written to or
	// Learned is called.
	metricLearned = `ctftp_routing_learned_routes`
	// metricDuplicates counts fan-outs in which more than one sub-cluster
	// answered positively for the same device file.
	metricDuplicates = `ctftp_routing_duplicate_devices_total`
	// metricFanoutDuration is the time from the start of a fan-out to its
	// answer, in seconds.
	metricFanoutDuration = `ctftp_routing_fanout_duration_seconds`
	// metricNotAsked counts fan-outs that skipped a sub-cluster known
	// down (its backends were not asked), by the answer the phone got:
	// not_found (a per-device trust list every live sub-cluster lacks) or
	// error (anything else: an outage never reads as "not found" for a
	// file the phone needs).
	metricNotAsked = `ctftp_routing_fanout_not_asked_total`

	// metricMigrationDevices is a gauge per wave and state (staged,
	// cutover, rolled_back): the wave's device count under the state in
	// force, 0 under the others.
	metricMigrationDevices = `ctftp_migration_devices`
	// metricMigrationSeen is the number of a wave's phones that asked
	// for a file since the cutover.
	metricMigrationSeen = `ctftp_migration_phones_seen`
	// metricMigrationFiles counts files served to a wave's phones, by
	// side: "from" (staged, rolled back) or "to" (cut over).
	metricMigrationFiles = `ctftp_migration_files_total`
)

type routerMetrics struct {
	learned *metrics.Gauge
}

// newRouterMetrics uses GetOrCreate so that a Router built on reload
// takes over the series of the one it replaces instead of panicking on a
// duplicate registration. The gauge is set, not computed by callback, for
// the same reason: a callback would keep the first Router alive and
// reporting.
func newRouterMetrics(s *metrics.Set) routerMetrics {
	return routerMetrics{learned: s.GetOrCreateGauge(metricLearned, nil)}
}

type forwarderMetrics struct {
	decisions      [Migration + 1]*metrics.Counter
	duplicates     *metrics.Counter
	fanoutDuration *metrics.Histogram
	// notAsked[true]: answered not found; [false]: answered error.
	notAsked map[bool]*metrics.Counter
}

func newForwarderMetrics(s *metrics.Set) forwarderMetrics {
	var m forwarderMetrics
	for k := RuleMatch; k <= Migration; k++ {
		m.decisions[k] = s.GetOrCreateCounter(fmtKind(k))
	}
	m.duplicates = s.GetOrCreateCounter(metricDuplicates)
	m.fanoutDuration = s.GetOrCreateHistogram(metricFanoutDuration)
	m.notAsked = map[bool]*metrics.Counter{
		true:  s.GetOrCreateCounter(metricNotAsked + `{answer="not_found"}`),
		false: s.GetOrCreateCounter(metricNotAsked + `{answer="error"}`),
	}
	return m
}

func fmtKind(k Kind) string {
	return metricDecisions + `{kind="` + k.String() + `"}`
}
