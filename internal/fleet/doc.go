// Package fleet generates the project's one multi-cluster world of Cisco
// phones, with real keys and really signed files: a PKI per cluster
// (SAST, CallManager, TVS), each cluster's ITLFile.tlv, a CTLFile.tlv,
// every phone's ITLSEP<MAC>.tlv and SEP<MAC>.cnf.xml(.sgn) at the sizes
// of real phone logs, and a device list per sub-cluster. `ctftp demo`,
// `ctftp bench --side-by-side` and the storm tests all serve this world,
// so what a benchmark measures is what the demo shows and the tests
// check.
//
// The world is laid out in trees (Write): root/ (the gateway's own
// files), one per sub-cluster (what that cluster's TFTP server serves),
// direct/ (one server serving every phone, the baseline a gateway is
// compared with) and devices/ (one MAC list per sub-cluster, for
// routing.rules device_file).
//
// Generation signs in parallel on every CPU and stops early when its
// context ends; a World is read-only afterwards and safe for concurrent
// use. No goroutines outlive Generate. No metrics.
package fleet
