package cluster

import (
	"sync"
	"time"
)

// hedgeTimer estimates, per sub-cluster, how long a backend that is
// answering takes to send its first block, and derives the hedge delay
// from it the way TCP derives its retransmission timeout (RFC 6298):
// smoothed time + 4 × smoothed deviation, clamped to [min, max]. A
// sub-cluster across a WAN gets a longer delay than one on the LAN, so
// hedges fire for silence, not for distance. Safe for concurrent use.
type hedgeTimer struct {
	min, max time.Duration

	mu     sync.Mutex
	srtt   time.Duration
	rttvar time.Duration
	seen   bool
}

// observe records the time a backend took to send its first block.
func (h *hedgeTimer) observe(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.seen {
		h.srtt, h.rttvar, h.seen = d, d/2, true
		return
	}
	diff := h.srtt - d
	if diff < 0 {
		diff = -diff
	}
	h.rttvar = (3*h.rttvar + diff) / 4
	h.srtt = (7*h.srtt + d) / 8
}

// delay is the current hedge delay; 0 means no hedging.
func (h *hedgeTimer) delay() time.Duration {
	if h.max <= 0 {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.seen {
		return h.max
	}
	return min(max(h.srtt+4*h.rttvar, h.min), h.max)
}
