package routing

import (
	"container/list"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// learnTable maps MAC -> sub-cluster for routes learned from answers. It
// is bounded by count and by age.
//
// The list is ordered by the time a route was last learned or confirmed,
// newest at the front. Because every entry lives exactly ttl from that
// time, the list is also ordered by expiry: expired entries are always a
// run at the back, and the entry evicted when the table is full (the one
// confirmed longest ago, so the least recently useful) is the one closest
// to expiring anyway. Lookups do not reorder, so Route only needs the read
// lock; the forwarder re-learns every route that answers, which is what
// moves it to the front.
//
// Safe for concurrent use.
type learnTable struct {
	ttl time.Duration
	max int

	mu    sync.RWMutex
	order *list.List // of *learned, front = most recently confirmed
	byMAC map[string]*list.Element
	bySub map[string]int // routes held per sub-cluster, for /status without a walk
	// ver counts changes, so the learn file is written only when they
	// changed (Router.SaveLearned).
	ver atomic.Uint64
}

func (t *learnTable) version() uint64 { return t.ver.Load() }

type learned struct {
	mac        string
	subcluster string
	at         time.Time // learned or last confirmed
}

func newLearnTable(ttl time.Duration, max int) *learnTable {
	return &learnTable{ttl: ttl, max: max, order: list.New(), byMAC: make(map[string]*list.Element), bySub: make(map[string]int)}
}

// lookup returns the route for mac if one was learned less than ttl
// before now.
func (t *learnTable) lookup(mac string, now time.Time) (learned, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e, ok := t.byMAC[mac]
	if !ok {
		return learned{}, false
	}
	l := e.Value.(*learned)
	if t.expired(l, now) {
		return learned{}, false
	}
	return *l, true
}

func (t *learnTable) expired(l *learned, now time.Time) bool {
	return now.Sub(l.at) >= t.ttl
}

// learn records or confirms mac -> subcluster and returns the sub-cluster
// the MAC was routed to before ("" if none or expired) and the number of
// routes held afterwards.
func (t *learnTable) learn(mac, subcluster string, now time.Time) (previous string, held int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ver.Add(1)
	t.dropExpiredLocked(now)
	if e, ok := t.byMAC[mac]; ok {
		l := e.Value.(*learned)
		previous = l.subcluster
		t.count(previous, -1)
		t.count(subcluster, 1)
		l.subcluster, l.at = subcluster, now
		t.order.MoveToFront(e)
		return previous, t.order.Len()
	}
	for t.order.Len() >= t.max {
		t.removeLocked(t.order.Back())
	}
	t.byMAC[mac] = t.order.PushFront(&learned{mac: mac, subcluster: subcluster, at: now})
	t.count(subcluster, 1)
	return "", t.order.Len()
}

// forget drops the route for mac, if any, and returns the number held.
func (t *learnTable) forget(mac string, now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.byMAC[mac]; ok {
		t.removeLocked(e)
		t.ver.Add(1)
	}
	t.dropExpiredLocked(now)
	return t.order.Len()
}

// len drops expired routes and returns the number of live ones.
func (t *learnTable) len(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropExpiredLocked(now)
	return t.order.Len()
}

func (t *learnTable) dropExpiredLocked(now time.Time) {
	for e := t.order.Back(); e != nil && t.expired(e.Value.(*learned), now); e = t.order.Back() {
		t.removeLocked(e)
	}
}

func (t *learnTable) removeLocked(e *list.Element) {
	l := e.Value.(*learned)
	delete(t.byMAC, l.mac)
	t.count(l.subcluster, -1)
	t.order.Remove(e)
}

// count adds d to subcluster's route count, dropping zeros so the map
// holds only sub-clusters with routes. Called with mu held for writing.
func (t *learnTable) count(subcluster string, d int) {
	if n := t.bySub[subcluster] + d; n > 0 {
		t.bySub[subcluster] = n
	} else {
		delete(t.bySub, subcluster)
	}
}

// live returns the routes that have not expired, oldest first: the order
// in which restore rebuilds a table that keeps their ages.
func (t *learnTable) live(now time.Time) []learned {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]learned, 0, t.order.Len())
	for e := t.order.Back(); e != nil; e = e.Prev() {
		if l := e.Value.(*learned); !t.expired(l, now) {
			out = append(out, *l)
		}
	}
	return out
}

// restore adds routes, oldest first, each with its own time, so they
// expire when they would have; a route expired under this table's ttl is
// skipped, and past max the oldest go first, as with learn. It returns
// the number held afterwards.
func (t *learnTable) restore(routes []learned, now time.Time) int {
	// The table's order is its expiry order: a file edited by hand may
	// list routes in any order, and one written on a host whose clock ran
	// ahead may date them after now (they would outlive the ttl).
	routes = slices.Clone(routes)
	for i := range routes {
		if routes[i].at.After(now) {
			routes[i].at = now
		}
	}
	slices.SortStableFunc(routes, func(a, b learned) int { return a.at.Compare(b.at) })
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ver.Add(1)
	for _, l := range routes {
		if t.expired(&l, now) {
			continue
		}
		if e, ok := t.byMAC[l.mac]; ok {
			t.removeLocked(e)
		}
		for t.order.Len() >= t.max {
			t.removeLocked(t.order.Back())
		}
		t.byMAC[l.mac] = t.order.PushFront(&learned{mac: l.mac, subcluster: l.subcluster, at: l.at})
		t.count(l.subcluster, 1)
	}
	return t.order.Len()
}
