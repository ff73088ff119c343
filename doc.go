// Package ctftp is the small contract every layer of the gateway shares:
// a Request for a file, the File that answers it, and the Source that
// turns one into the other. It imports only the standard library so that
// proxy, routing, cache and cluster can all speak it without importing
// each other.
//
// The chain the gateway runs is
//
//	First(local, route -> cache(subcluster+name) -> cluster backends)
//
// ErrNotFound is the only error that means "try the next source"; any
// other error stops the chain, so a backend outage is never reported to a
// phone as "file not found".
//
// Two more things every layer must agree on live here: DeviceMAC, the one
// grammar of per-device file names (routing places phones by it, the
// cache keeps their files fresh by it), and Request.Prefetch, a request
// no phone made yet, which the backends serve only from an idle slot
// (ErrNoIdleSlot otherwise). And Stream: a large file on its way from a
// backend, which the cluster writes, the cache shares among the phones
// asking and stores once whole, and the front end reads block by block
// as it arrives (a StreamingBody: a read may wait for its bytes).
package ctftp
