package proxy

import (
	"errors"
	"fmt"
	"io"

	"github.com/ctftp/ctftp/internal/tftpwire"
)

// blockSource yields the DATA packets of a transfer. packet(n) is called
// with n from the window being sent: the next unread block, or one of the
// last WindowSize blocks again for a retransmission.
type blockSource interface {
	// packet returns DATA block n (1-based, absolute) ready to send, and
	// whether it is the last one (payload shorter than the block size).
	// The slice is valid until the next call.
	packet(n uint64) (pkt []byte, last bool, err error)
	release()
}

// newBlocks picks how to read the body. An io.ReaderAt (an *os.File from
// Local, the cache's in-memory readers) is read at each block's offset,
// so a retransmission re-reads instead of buffering the window and one
// packet buffer serves any window size. Other bodies (netascii
// conversion, streams from a backend) are read once, into a ring of
// WindowSize packet buffers kept for retransmission.
func (t *transfer) newBlocks(body io.Reader) blockSource {
	size := t.neg.BlockSize
	if ra, ok := body.(io.ReaderAt); ok {
		t.blocks = readerAtBlocks{pool: &t.s.bufs, ra: ra, size: size, buf: t.s.bufs.get(tftpwire.HeaderSize + size)}
		return &t.blocks
	}
	slots := make([]*[]byte, t.neg.WindowSize)
	for i := range slots {
		slots[i] = t.s.bufs.get(tftpwire.HeaderSize + size)
	}
	return &streamBlocks{pool: &t.s.bufs, r: body, size: size, slots: slots, lens: make([]int, len(slots))}
}

type readerAtBlocks struct {
	pool *bufferPool
	ra   io.ReaderAt
	size int
	buf  *[]byte
}

func (b *readerAtBlocks) packet(n uint64) ([]byte, bool, error) {
	buf := *b.buf
	got, err := b.ra.ReadAt(buf[tftpwire.HeaderSize:], int64(n-1)*int64(b.size))
	if got < b.size && err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	// A full block is never the last, even with io.EOF: the file is then a
	// multiple of the block size and ends with an empty block (RFC 1350).
	tftpwire.PutDataHeader(buf, uint16(n))
	return buf[:tftpwire.HeaderSize+got], got < b.size, nil
}

func (b *readerAtBlocks) release() { b.pool.put(b.buf) }

type streamBlocks struct {
	pool  *bufferPool
	r     io.Reader
	size  int
	slots []*[]byte // block n lives in slots[n % len(slots)]
	lens  []int
	read  uint64 // last block read from r
	last  uint64 // the final block, once read
}

func (b *streamBlocks) packet(n uint64) ([]byte, bool, error) {
	i := n % uint64(len(b.slots))
	switch {
	case n == b.read+1 && b.last == 0:
		buf := *b.slots[i]
		got, err := io.ReadFull(b.r, buf[tftpwire.HeaderSize:])
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, false, err
		}
		tftpwire.PutDataHeader(buf, uint16(n))
		b.lens[i] = tftpwire.HeaderSize + got
		b.read = n
		if got < b.size {
			b.last = n
		}
	case n > b.read || b.read-n >= uint64(len(b.slots)):
		// The sender only asks for the next block or one still in the ring.
		return nil, false, fmt.Errorf("proxy: block %d requested, %d read, window %d", n, b.read, len(b.slots))
	}
	return (*b.slots[i])[:b.lens[i]], n == b.last, nil
}

func (b *streamBlocks) release() {
	for _, s := range b.slots {
		b.pool.put(s)
	}
}
