package routing

import "time"

// LearnedRoutes is a snapshot of the learned routes for /status and the
// status page. The caller owns it.
type LearnedRoutes struct {
	// Total counts the live routes.
	Total int `json:"total"`
	// BySubcluster counts them per sub-cluster.
	BySubcluster map[string]int `json:"by_subcluster,omitempty"`
	// Recent are the routes learned or confirmed most recently, newest
	// first, at most the number asked for.
	Recent []LearnedRoute `json:"recent,omitempty"`
}

// LearnedRoute is one MAC -> sub-cluster route.
type LearnedRoute struct {
	MAC        string    `json:"mac"`
	Subcluster string    `json:"subcluster"`
	At         time.Time `json:"at"` // learned or last confirmed
}

// LearnedRoutes reports the live learned routes: their number per
// sub-cluster and the recent ones newest first. It walks the whole table
// under its lock, which is fine at status-page rates for learn_max's
// scale (100,000 routes take well under a millisecond).
func (r *Router) LearnedRoutes(recent int) LearnedRoutes {
	if r.learned == nil {
		return LearnedRoutes{}
	}
	t, now := r.learned, r.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropExpiredLocked(now)
	out := LearnedRoutes{Total: t.order.Len(), BySubcluster: map[string]int{}}
	for e := t.order.Front(); e != nil; e = e.Next() {
		l := e.Value.(*learned)
		out.BySubcluster[l.subcluster]++
		if len(out.Recent) < recent {
			out.Recent = append(out.Recent, LearnedRoute{MAC: l.mac, Subcluster: l.subcluster, At: l.at})
		}
	}
	r.m.learned.Set(float64(out.Total))
	return out
}
