package proxy

import (
	"math/bits"
	"sync"
)

// bufferPool recycles packet buffers in power-of-two size classes from
// 1 KiB (a default 516-byte DATA packet) to 64 KiB (the largest, 65468
// bytes), so a boot storm of thousands of transfers reuses a bounded set
// of buffers instead of allocating one per transfer. Safe for concurrent
// use. It stores *[]byte so that Put does not allocate.
type bufferPool struct {
	classes [numClasses]sync.Pool
}

const (
	minClassShift = 10 // 1 KiB
	numClasses    = 7  // 1 KiB .. 64 KiB
)

func classOf(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minClassShift
}

// get returns a buffer of length n (n <= 64 KiB). Its contents are
// whatever the last user left.
func (p *bufferPool) get(n int) *[]byte {
	c := classOf(n)
	if v, ok := p.classes[c].Get().(*[]byte); ok {
		*v = (*v)[:n]
		return v
	}
	b := make([]byte, n, 1<<(c+minClassShift))
	return &b
}

// put hands b back; b must come from get and not be used afterwards.
func (p *bufferPool) put(b *[]byte) {
	c := classOf(cap(*b))
	if 1<<(c+minClassShift) != cap(*b) {
		return // not one of ours
	}
	p.classes[c].Put(b)
}
