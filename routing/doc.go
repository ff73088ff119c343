// Package routing decides which sub-cluster a request is asked of, and
// forwards it there. It sits after the gateway's own files and before the
// cache: routing -> cache (keyed by sub-cluster + name) -> cluster
// backends. Routing must come before the cache because the sub-cluster
// is part of what decides the answer.
//
// A Router decides, without I/O, in this order:
//
//  0. a device of a migration wave (Migrations, the top-level
//     `migrations:`) goes to its wave's side: from while staged or
//     rolled back, to once cut over (by state, or when cutover_at
//     passes), whatever the rules and learned routes say;
//  1. configured rules, first match wins: the client's address (CIDR), a
//     list of MACs, a MAC prefix, or a device file (ReadDeviceFile: MACs
//     one per line, or a CUCM BAT "Export Phones" CSV read by its Device
//     Name column, SEP/ATA stripped, other devices skipped and counted);
//  2. a learned route: the sub-cluster that last answered for this MAC,
//     remembered for learn_ttl, at most learn_max of them;
//  3. a fan-out over every sub-cluster in configured priority order.
//
// NewMigrations compiles the waves: MACs, ranges "LO-HI" and device files
// (read by the same reader as rules' device_file), one wave per device.
// A wave's answer is learned like a rule's is not, so a phone stays on
// the side that served it once its wave leaves the configuration. The
// cache needs no help to keep the sides apart: its key holds the
// sub-cluster, so what from answered is never served for to. Whether a
// wave may cut over is the trust package's verdict, not routing's.
//
// The MAC comes from the requested file name (ParseMAC): CTLSEP<MAC>.tlv,
// ITLSEP<MAC>.tlv, SEP<MAC>.cnf.xml[.sgn|.enc.sgn], SEP<MAC>.cnf,
// SIP<MAC>.cnf, ATA<MAC>.cnf.xml and a few older names. Route returns a
// Decision whose Reason is what `ctftp route` prints.
//
// The Source from NewForwarder acts on decisions. A parallel fan-out
// (the default) asks every sub-cluster at once and serves the first
// positive answer, but waits up to grace (20ms) for a higher-priority
// sub-cluster still pending, so a phone present in two sub-clusters is
// served by the same one every time; it is logged and counted. A
// sequential fan-out asks one sub-cluster after another, as CUCM's
// alternate file locations do, so the two can be compared. A learned
// sub-cluster that lacks a file is followed by a fan-out over the others;
// the route changes only if another sub-cluster has it. "Not found"
// comes back as soon as every sub-cluster has said so; a sub-cluster
// that fails makes the answer ctftp.ErrUnavailable instead, never "not
// found". One exception: a sub-cluster known down answers at once with
// ctftp.ErrNotAsked (cluster skips it without waiting), and when every
// other sub-cluster says "not found" for a phone's own trust list
// (CTLSEP/ITLSEP<MAC>.tlv, IsDeviceTrustList), that is the answer, so
// the phone moves on to CTLFile.tlv instead of failing its boot on
// another cluster's outage. Any other file stays an outage (error 0: the
// phone retries rather than fall back to a default config).
//
// Prefetch: routing.prefetch lists a phone's boot set in the order phones
// ask for it (default CTLSEP{MAC}.tlv, ITLSEP{MAC}.tlv,
// SEP{MAC}.cnf.xml.sgn). A request for one of those names hands the names
// after it to next's Prefetch (the cache's; a Source without the
// Prefetcher capability gets none), for the phone's sub-cluster: at once
// for a rule or a learned route, after the answer for a fan-out (never
// across every sub-cluster). Names that are not per-device never start a
// prefetch. The cache counts what prefetches did; cluster serves them only
// from idle backend slots.
//
// A fan-out whose answers next holds in memory (the cache's Peek: a file,
// or a remembered "not found") is decided there, in priority order, on
// the caller's goroutine, with no backend asked; only the sub-clusters
// whose answer memory lacks are asked as configured. The request path's
// decision (decide without explain) allocates nothing: Route, for
// `ctftp route`, also explains.
//
// Goroutines: a parallel fan-out starts one goroutine per sub-cluster
// asked for the duration of one Open; Open cancels the losers once the
// winner is chosen and returns only after all of them have returned. Learned
// routes expire lazily. Migrations.Run, in the caller's goroutine,
// publishes the wave gauges and wakes when a cutover_at passes, until
// its context ends.
//
// Concurrency: Router and the forwarder are safe for concurrent use.
// A Router's rules are fixed at New; a reload builds a new Router.
//
// Metrics, on the *metrics.Set in Options:
//
//	ctftp_routing_decisions_total{kind}        kind: rule, learned, fanout, migration
//	ctftp_routing_learned_routes               learned routes held
//	ctftp_routing_duplicate_devices_total      fan-outs where a device file was
//	                                           found in more than one sub-cluster
//	ctftp_routing_fanout_duration_seconds      histogram, start of a fan-out to its answer
//	ctftp_routing_fanout_not_asked_total{answer}
//	                                           fan-outs that skipped a sub-cluster known
//	                                           down and found the file nowhere else;
//	                                           answer: not_found (per-device trust
//	                                           list) or error
//	ctftp_migration_devices{wave,state}        a wave's devices under the state in force
//	                                           (staged, cutover, rolled_back), 0 under the others
//	ctftp_migration_phones_seen{wave}          the wave's phones that asked since the cutover
//	ctftp_migration_files_total{wave,side}     files served to the wave's phones; side: from, to
//
// Usage:
//
//	r, err := routing.New(cfg.Routing, []string{"east", "west"}, routing.Options{Logger: log, Metrics: set})
//	if err != nil {
//		return err // every problem, one per line, each naming its key
//	}
//	src := ctftp.First(local, routing.NewForwarder(r, cache, routing.Options{Logger: log, Metrics: set}))
package routing
