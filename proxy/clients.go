package proxy

import (
	"container/list"
	"net/netip"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/time/rate"
)

// clientRates holds a token bucket per client address (Config.ClientRate,
// ClientBurst) in a table bounded by Config.MaxClients: when it is full,
// the least recently seen address is forgotten. Forgetting is lenient,
// never harsh: a forgotten address starts again with a full bucket, so an
// attacker cycling source addresses can make the table churn but can
// neither grow it nor get a real client throttled. Safe for concurrent
// use.
type clientRates struct {
	limit rate.Limit
	burst int
	max   int

	mu    sync.Mutex
	items map[netip.Addr]*list.Element // of *clientRate
	order list.List                    // front: most recently seen

	entries   *metrics.Gauge
	evictions *metrics.Counter
}

type clientRate struct {
	addr netip.Addr
	lim  *rate.Limiter
}

func newClientRates(cfg Config, set *metrics.Set) *clientRates {
	c := &clientRates{
		limit:     rate.Limit(cfg.ClientRate),
		burst:     cfg.ClientBurst,
		max:       cfg.MaxClients,
		items:     make(map[netip.Addr]*list.Element),
		evictions: set.GetOrCreateCounter("ctftp_client_rate_evictions_total"),
	}
	c.entries = set.GetOrCreateGauge("ctftp_client_rate_entries", nil)
	return c
}

// allow takes a token from addr's bucket, reporting false when it is
// empty. With ClientRate 0 everything is allowed and nothing is tracked.
func (c *clientRates) allow(addr netip.Addr, now time.Time) bool {
	if c.limit == 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[addr]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*clientRate).lim.AllowN(now, 1)
	}
	if len(c.items) >= c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*clientRate).addr)
		c.evictions.Inc()
	}
	r := &clientRate{addr: addr, lim: rate.NewLimiter(c.limit, c.burst)}
	c.items[addr] = c.order.PushFront(r)
	c.entries.Set(float64(len(c.items)))
	return r.lim.AllowN(now, 1)
}

// len is how many addresses are tracked.
func (c *clientRates) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}
