// Package trust answers one question: will the phones accept what the
// gateway serves? It owns the ITL eras of the gateway's sides, their
// homogeneity, the signer watch, and the check of forwarded trust lists
// and signed files, all judged with the itl package's phone trust model
// (itl.Evaluate). It fetches through cluster.Set and never talks to a
// backend itself.
//
// # ITL eras and homogeneity
//
// Centralized TFTP only works when every side is ITL-homogeneous: all
// CUCM 8.0 or later, or all before 8.0 (domain.md). ParseVersion reads a
// declared version and ClassifyITL a side's ITLFile.tlv (verified ITL:
// ClassSBD; blank: ClassRollback; not found: ClassPre80; anything else
// unknown, ErrBadITL when it does not verify). Check judges the central
// side (the gateway's root) and every sub-cluster together and reports a
// Verdict, the Problems (each starting with its config key, sorted by
// kind for `ctftp validate`'s exit codes) and a table with the ways out
// (Report.WriteTable).
//
// # The signer watch
//
// A Watcher keeps probing (cluster.Set.ProbeFetch of ITLFile.tlv, so
// trust probes count as probes, not as fetches phones caused): its first
// round is the caller's start-up guard and sets the baseline era; later
// rounds report a sub-cluster whose ITL signer (issuer and serial)
// changed, latched until the watcher is replaced by a reload, and one
// whose era now conflicts with the baseline, while it does. A failed
// probe keeps the previous finding (stale), so a lost packet never flips
// an era. Sub serves the current ITL and alarm of a sub-cluster to the
// request path without a lock.
//
// # Forwarded files
//
// Guard is the Source between the cache and the cluster Set: each
// forwarded .tlv/.sgn is checked once per cache fill against its
// sub-cluster's ITL, the way a phone holding that ITL would judge it;
// Config (the `trust:` section) says whether a file a phone would reject
// is served anyway, and whether an alarmed sub-cluster is still
// forwarded to.
//
// # Migration verdicts
//
// CheckWave predicts, phone by phone and in the phone's order, what
// moving a wave from A to B does: the ITL the phone holds now (A's
// ITLSEP<MAC>.tlv, else A's ITLFile.tlv), B's ITLSEP<MAC>.tlv judged
// against it, then B's signed configs against the ITL the phone holds by
// then. Outcomes: ok, pre8 (no ITL either side), tvs (only A's TVS can
// vouch: blocking unless trust: imported), unprovisioned, broken, error;
// each blocking one names its ways out. The gateway refuses a
// configuration that cuts a blocked wave over (MigrationError), and
// WaveGuard, in front of the cache, judges what the moved phones are then
// served from B, so a file B changes after the check is seen.
//
// # Goroutines and concurrency
//
// NewWatcher starts nothing; Watcher.Probe starts one goroutine per
// sub-cluster and waits for them; Watcher.Run probes every interval in
// the caller's goroutine until its context is done. A Watcher is safe for
// concurrent use; rounds take turns. Guard and WaveGuard start nothing
// and are safe for concurrent use. CheckWave starts its workers and waits
// for them.
//
// # Metrics
//
//	ctftp_homogeneous                                  gauge: 1 while every side is of one
//	                                                   era, 0 when mixed (with rollback) or
//	                                                   heterogeneous (set by the active Watcher)
//	ctftp_trust_signer_changes_total{subcluster}       counter: ITL signer changes seen
//	ctftp_trust_heterogeneous_total{subcluster}        counter: turns into conflict with the
//	                                                   setup's era
//	ctftp_trust_forwarded_checked_total{subcluster}    counter: forwarded .tlv/.sgn files checked
//	ctftp_trust_forwarded_rejected_total{subcluster}   counter: of those, files a phone would reject
//	ctftp_trust_refused_total{subcluster}              counter: requests not forwarded
//	                                                   (on_change refuse)
//	ctftp_migration_rejected_total{wave}               counter: files served to a moved phone
//	                                                   from B that it would reject
//
// Labels come only from configuration (sub-cluster and wave names), never from
// file names or client addresses.
package trust
