package routing

import (
	"maps"
	"time"
)

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
// sub-cluster (kept as routes come and go, so no walk of the table) and
// the recent ones newest first, the front of the table: the lock is held
// for O(recent + sub-clusters), whatever learn_max is.
func (r *Router) LearnedRoutes(recent int) LearnedRoutes {
	if r.learned == nil {
		return LearnedRoutes{}
	}
	t, now := r.learned, r.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropExpiredLocked(now)
	out := LearnedRoutes{Total: t.order.Len(), BySubcluster: maps.Clone(t.bySub)}
	for e := t.order.Front(); e != nil && len(out.Recent) < recent; e = e.Next() {
		l := e.Value.(*learned)
		out.Recent = append(out.Recent, LearnedRoute{MAC: l.mac, Subcluster: l.subcluster, At: l.at})
	}
	r.m.learned.Set(float64(out.Total))
	return out
}
