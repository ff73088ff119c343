package cluster

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// Phones come before background work: a freed slot goes to the oldest
// phone waiting, and low priority never takes the last free slot.
func TestSlotsPriorities(t *testing.T) {
	s := newSlots(3)
	if !s.tryAcquire(PriorityLow) || !s.tryAcquire(PriorityLow) {
		t.Fatal("low priority could not take the first two of three slots")
	}
	if s.tryAcquire(PriorityLow) {
		t.Fatal("low priority took the last free slot")
	}
	if !s.tryAcquire(PriorityPhone) {
		t.Fatal("a phone did not get the last slot")
	}
	// Full. A low waiter, then a phone waiter: the phone gets the first
	// slot freed although it came second.
	got := make(chan Priority, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		if s.acquire(context.Background(), PriorityLow, 0) == nil {
			got <- PriorityLow
		}
	})
	waitFor(t, "the low waiter", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.waiters[PriorityLow]) == 1 })
	wg.Go(func() {
		if s.acquire(context.Background(), PriorityPhone, 0) == nil {
			got <- PriorityPhone
		}
	})
	waitFor(t, "the phone waiter", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.waiters[PriorityPhone]) == 1 })
	s.release()
	if p := <-got; p != PriorityPhone {
		t.Fatalf("first freed slot went to %v, want the phone", p)
	}
	// 3 in use again. One release leaves 2: the low waiter may fill only
	// 2 of 3, so it keeps waiting; a second release lets it in.
	s.release()
	select {
	case p := <-got:
		t.Fatalf("the last free slot went to %v", p)
	case <-time.After(50 * time.Millisecond):
	}
	s.release()
	if p := <-got; p != PriorityLow {
		t.Fatalf("freed slot went to %v", p)
	}
	wg.Wait()
	if n := s.inUse(); n != 2 {
		t.Errorf("%d in use, want 2", n)
	}
}

// A bounded wait ends with ErrBusy, a caller's end with its error, and
// neither leaks a slot or a waiter.
func TestSlotsBoundedWait(t *testing.T) {
	s := newSlots(1)
	if !s.tryAcquire(PriorityPhone) {
		t.Fatal("empty slots refused")
	}
	if err := s.acquire(context.Background(), PriorityPhone, 20*time.Millisecond); !errors.Is(err, ErrBusy) {
		t.Errorf("bounded wait: %v, want ErrBusy", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.acquire(ctx, PriorityPhone, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	s.release()
	if n := s.inUse(); n != 0 || len(s.waiters[0])+len(s.waiters[1]) != 0 {
		t.Errorf("after the waits: %d in use, waiters %v", n, s.waiters)
	}
}

// A fetch waiting for a slot takes the first one freed on any candidate,
// not only on the first.
func TestAcquireAnyTakesFirstFreed(t *testing.T) {
	a := newBackend(netip.MustParseAddrPort("192.0.2.1:69"), 1)
	b := newBackend(netip.MustParseAddrPort("192.0.2.2:69"), 1)
	a.slots.tryAcquire(PriorityPhone)
	b.slots.tryAcquire(PriorityPhone)
	done := make(chan int, 1)
	go func() {
		i, err := acquireAny(context.Background(), []*backend{a, b}, PriorityPhone, 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- i
	}()
	waitFor(t, "the waiters", func() bool {
		b.slots.mu.Lock()
		defer b.slots.mu.Unlock()
		return len(b.slots.waiters[PriorityPhone]) == 1
	})
	b.slots.release()
	if i := <-done; i != 1 {
		t.Fatalf("took candidate %d, want 1 (the one freed)", i)
	}
	if a.slots.inUse() != 1 || b.slots.inUse() != 1 {
		t.Errorf("in use: a %d (its own holder), b %d (ours)", a.slots.inUse(), b.slots.inUse())
	}
	a.slots.mu.Lock()
	left := len(a.slots.waiters[PriorityPhone])
	a.slots.mu.Unlock()
	if left != 0 {
		t.Error("a waiter left behind on a")
	}
	// Both full: a bounded wait ends with ErrBusy.
	if _, err := acquireAny(context.Background(), []*backend{a, b}, PriorityPhone, 20*time.Millisecond); !errors.Is(err, ErrBusy) {
		t.Errorf("both full: %v, want ErrBusy", err)
	}
}
