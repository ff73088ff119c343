package cluster

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ctftp/ctftp"
)

// prefetchReq is a prefetch of name from sub-cluster east.
func prefetchReq(name string) ctftp.Request {
	return ctftp.Request{Name: name, Subcluster: "east", Prefetch: true}
}

// gatedFetcher answers every fetch once release is closed and records
// how many fetches were inside it at once.
type gatedFetcher struct {
	fakeFetcher
	release chan struct{}
	inside  atomic.Int64
	most    atomic.Int64
}

func newGatedFetcher() *gatedFetcher {
	g := &gatedFetcher{release: make(chan struct{})}
	g.fetchFn = func(ctx context.Context, addr netip.AddrPort, name string) ([]byte, error) {
		n := g.inside.Add(1)
		defer g.inside.Add(-1)
		for {
			m := g.most.Load()
			if n <= m || g.most.CompareAndSwap(m, n) {
				break
			}
		}
		<-g.release
		return []byte(name), nil
	}
	return g
}

// A prefetch on an idle backend is an ordinary fetch.
func TestPrefetchOnIdleBackend(t *testing.T) {
	ff := &fakeFetcher{fetchFn: func(ctx context.Context, addr netip.AddrPort, name string) ([]byte, error) {
		return []byte("cnf"), nil
	}}
	s, set := newTestSet(t, testConfig(addrA.String()), Options{})
	s.fetcher = ff
	f, err := s.Open(context.Background(), prefetchReq("RingList.raw"))
	if err != nil || f.Size != 3 {
		t.Fatalf("%+v, %v", f, err)
	}
	if got := metricValue(t, set, `ctftp_backend_fetches_total{subcluster="east",result="ok"}`); got != "1" {
		t.Errorf("fetches ok = %v, want 1", got)
	}
}

// Prefetches never take the last free slot and never exceed the
// per-backend cap, however many start at once; a phone's fetch then finds
// the slot they left. A refused prefetch makes no attempt and leaves the
// backend's health alone.
func TestPrefetchLeavesASlotForPhones(t *testing.T) {
	for _, maxInFlight := range []int{1, 2, 5} {
		t.Run("", func(t *testing.T) {
			g := newGatedFetcher()
			cfg := testConfig(addrA.String())
			cfg.Backend.MaxInFlight = maxInFlight
			cfg.Backend.MaxFails = 1
			s, _ := newTestSet(t, cfg, Options{})
			s.fetcher = g

			const n = 20
			var wg sync.WaitGroup
			var busy, served atomic.Int64
			for range n {
				wg.Go(func() {
					_, err := s.Open(context.Background(), prefetchReq("Desktop.png"))
					switch {
					case err == nil:
						served.Add(1)
					case errors.Is(err, ctftp.ErrNoIdleSlot) && errors.Is(err, ctftp.ErrUnavailable):
						busy.Add(1)
					default:
						t.Errorf("prefetch: %v", err)
					}
				})
			}
			// Every prefetch that got a slot is inside the fetcher, the
			// rest have been refused.
			waitFor(t, "the prefetches to settle", func() bool {
				return g.inside.Load()+busy.Load() == n
			})
			if got, want := g.inside.Load(), int64(maxInFlight-1); got != want {
				t.Errorf("%d prefetches in flight on a backend of %d slots, want %d", got, maxInFlight, want)
			}
			// The phone's fetch is not queued behind them.
			phone := make(chan error, 1)
			go func() {
				_, err := s.Fetch(context.Background(), "east", "Ringer1.raw")
				phone <- err
			}()
			waitFor(t, "the phone's fetch to reach the backend", func() bool {
				return g.inside.Load() == int64(maxInFlight)
			})
			close(g.release)
			wg.Wait()
			if err := <-phone; err != nil {
				t.Errorf("phone: %v", err)
			}
			if most := g.most.Load(); most > int64(maxInFlight) {
				t.Errorf("%d fetches at once on a backend of %d slots", most, maxInFlight)
			}
			if served.Load()+busy.Load() != n || served.Load() != int64(maxInFlight-1) {
				t.Errorf("served %d, busy %d of %d", served.Load(), busy.Load(), n)
			}
			if st := backendStatus(t, s, addrA.String()); !st.Up || st.Fails != 0 {
				t.Errorf("refused prefetches touched the backend's health: %+v", st)
			}
		})
	}
}

// While a phone's fetch waits for a slot, no prefetch takes one, even
// one freed meanwhile: the waiting phone is first.
func TestPrefetchYieldsToWaitingPhone(t *testing.T) {
	g := newGatedFetcher()
	cfg := testConfig(addrA.String())
	cfg.Backend.MaxInFlight = 2
	s, set := newTestSet(t, cfg, Options{})
	s.fetcher = g
	var wg sync.WaitGroup
	defer func() {
		close(g.release)
		wg.Wait()
	}()
	for range 3 { // two in flight, one waiting
		wg.Go(func() { s.Fetch(context.Background(), "east", "f") })
	}
	waitFor(t, "a phone to wait", func() bool {
		return g.inside.Load() == 2 && metricValue(t, set, `ctftp_backend_waiting{subcluster="east"}`) == "1"
	})
	if _, err := s.Open(context.Background(), prefetchReq("g")); !errors.Is(err, ctftp.ErrNoIdleSlot) {
		t.Fatalf("prefetch with a phone waiting: %v, want ErrNoIdleSlot", err)
	}
}
