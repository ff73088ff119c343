package cluster

import (
	"context"
	"sync"
	"time"
)

// Priority orders the claims on a backend's slots. A phone's own request
// always comes before work the gateway does on its own account
// (prefetch, probes), which must never make a phone wait.
type Priority uint8

// The priorities a slot is asked for with.
const (
	// PriorityPhone is a fetch a phone is waiting for (the default).
	PriorityPhone Priority = iota
	// PriorityLow is background work: prefetch, probes. It only takes a
	// slot no phone is waiting for, and never the last free one.
	PriorityLow
)

// priorityKey carries a Priority in a context through the Source chain
// (routing and the cache know nothing of slots).
type priorityKey struct{}

// WithPriority returns ctx marked so that every backend fetch made under
// it asks for slots at priority p. Prefetch uses
// WithPriority(ctx, PriorityLow).
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// priorityOf is the priority ctx was marked with, PriorityPhone if none.
func priorityOf(ctx context.Context) Priority {
	p, _ := ctx.Value(priorityKey{}).(Priority)
	return p
}

// slots is a backend's cap on fetches and probes in flight, with
// priorities: a freed slot goes to the oldest phone waiting, then to the
// oldest low-priority waiter. Low priority never takes the last free
// slot, so a phone arriving finds one at once whenever background work is
// all that is running. Safe for concurrent use.
type slots struct {
	mu   sync.Mutex
	cap  int
	used int
	// waiters per priority, oldest first. A waiter's channel is closed
	// when it is handed a slot.
	waiters [2][]chan struct{}
}

func newSlots(n int) *slots { return &slots{cap: n} }

// limit is how many slots priority p may fill.
func (s *slots) limit(p Priority) int {
	if p == PriorityLow && s.cap > 1 {
		return s.cap - 1
	}
	return s.cap
}

// tryAcquire takes a slot if one is free for p and nobody of p's priority
// or higher is queued for it.
func (s *slots) tryAcquire(p Priority) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tryLocked(p)
}

func (s *slots) tryLocked(p Priority) bool {
	if s.used >= s.limit(p) {
		return false
	}
	for q := Priority(0); q <= p; q++ {
		if len(s.waiters[q]) > 0 {
			return false
		}
	}
	s.used++
	return true
}

// acquire waits for a slot at priority p for at most wait (0: as long as
// ctx allows). It returns ErrBusy or ctx's error when none came.
func (s *slots) acquire(ctx context.Context, p Priority, wait time.Duration) error {
	s.mu.Lock()
	if s.tryLocked(p) {
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	s.waiters[p] = append(s.waiters[p], ch)
	s.mu.Unlock()

	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = ErrBusy
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-ch:
		// Handed a slot while giving up: pass it on.
		s.releaseLocked()
	default:
		s.waiters[p] = deleteChan(s.waiters[p], ch)
	}
	return err
}

// release frees a slot, handing it to the first waiter in priority order.
func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *slots) releaseLocked() {
	s.used--
	for p := range s.waiters {
		if len(s.waiters[p]) == 0 || s.used >= s.limit(Priority(p)) {
			continue
		}
		ch := s.waiters[p][0]
		s.waiters[p] = s.waiters[p][1:]
		s.used++
		close(ch)
		return
	}
}

// inUse is the number of slots held now.
func (s *slots) inUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

func deleteChan(list []chan struct{}, ch chan struct{}) []chan struct{} {
	for i, c := range list {
		if c == ch {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}
