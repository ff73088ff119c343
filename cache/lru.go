package cache

import (
	"container/list"
	"time"
)

// key is what decides an answer: the sub-cluster and the file name. The
// maps use the struct so a hit allocates no key; the singleflight group
// needs a string and gets String.
type key struct {
	sub, name string
}

// String joins the parts with NUL, which cannot occur in a TFTP file name
// (the protocol uses it as the terminator), so no two keys collide.
func (k key) String() string { return k.sub + "\x00" + k.name }

// kind says what an entry remembers.
type kind uint8

const (
	kindFile     kind = iota // the file's bytes
	kindNotFound             // the backend said "not found"
	kindTooBig               // the file is larger than max_object: stream it
)

// entry is one remembered answer. Every field but elem and prefetched is
// set before the entry is published and never changed after, so readers
// may use an entry they looked up under the lock after releasing it; elem
// and prefetched are touched only under Cache.mu.
type entry struct {
	key     key
	kind    kind
	class   Class  // the file's class, for ctftp_cache_changed_total
	data    []byte // kindFile only; shared by every reader, never written
	sub     string // the File.Subcluster the backend reported
	backend string
	fetched time.Time
	expires time.Time
	elem    *list.Element
	// prefetched: a prefetch stored it and no phone has used it yet.
	prefetched bool
}

// lru is a map plus a recency list, byte-counting its file data. It is not
// safe for concurrent use: Cache.mu guards it.
//
// It is written here rather than taken from hashicorp/golang-lru/v2
// because that library bounds the number of entries, not their bytes, and
// a TFTP cache holds files from a few KB (configs) to tens of MB (loads);
// container/list makes the byte-bounded version a few dozen lines.
type lru struct {
	// onRemove sees every entry leaving, evicted, purged or replaced.
	onRemove func(*entry)
	items    map[key]*entry
	order    list.List // front is most recently used
	bytes    int64
	kinds    [3]int // entries of each kind
}

func newLRU(onRemove func(*entry)) *lru {
	return &lru{onRemove: onRemove, items: make(map[key]*entry)}
}

func (l *lru) len() int { return len(l.items) }

func (l *lru) get(k key) *entry { return l.items[k] }

// touch marks e most recently used.
func (l *lru) touch(e *entry) { l.order.MoveToFront(e.elem) }

// add inserts e as most recently used, replacing any entry with its key.
func (l *lru) add(e *entry) {
	if old := l.items[e.key]; old != nil {
		l.remove(old)
	}
	e.elem = l.order.PushFront(e)
	l.items[e.key] = e
	l.bytes += int64(len(e.data))
	l.kinds[e.kind]++
}

func (l *lru) remove(e *entry) {
	l.order.Remove(e.elem)
	delete(l.items, e.key)
	l.bytes -= int64(len(e.data))
	l.kinds[e.kind]--
	if l.onRemove != nil {
		l.onRemove(e)
	}
}

// oldest returns the least recently used entry, or nil.
func (l *lru) oldest() *entry {
	if b := l.order.Back(); b != nil {
		return b.Value.(*entry)
	}
	return nil
}

// removeIf removes every entry for which match is true and returns how
// many it removed.
func (l *lru) removeIf(match func(*entry) bool) int {
	n := 0
	for el := l.order.Front(); el != nil; {
		next := el.Next()
		if e := el.Value.(*entry); match(e) {
			l.remove(e)
			n++
		}
		el = next
	}
	return n
}
