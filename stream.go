package ctftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrStreamOverrun: a backend sent more bytes than the tsize it announced.
var ErrStreamOverrun = errors.New("more bytes than announced")

// Stream is a file on its way from a backend, readable while it arrives:
// one writer (the fetch) appends, and any number of readers read at their
// own pace, each waiting only for the bytes it needs. A phone then gets its
// first block as soon as the backend has sent it rather than after the
// whole file, which is what lets a firmware load cross a WAN within the
// phone's own retransmission timeouts, and every phone that asks meanwhile
// reads the one fetch.
//
// A Stream knows its length from the start (the backend's tsize). Bytes
// below the arrived length never change (a buffer that grows is copied,
// the old one left as it was to whoever still reads it), so readers copy
// them without holding the lock.
type Stream struct {
	size int64

	mu   sync.Mutex
	buf  []byte        // len: bytes arrived
	grew chan struct{} // closed (and replaced) when buf grows or the stream ends
	done bool
	err  error
}

// preallocMax bounds the buffer allocated on the strength of an announced
// size alone: a backend that announces 64 MiB and sends a few bytes must
// not cost 64 MiB per request.
const preallocMax = 4 << 20

// NewStream returns an empty Stream of size bytes (size ≥ 0).
func NewStream(size int64) *Stream {
	return &Stream{size: size, buf: make([]byte, 0, min(size, preallocMax)), grew: make(chan struct{})}
}

// Size is the announced length.
func (s *Stream) Size() int64 { return s.size }

// Write appends p. Writing past the announced size fails with
// ErrStreamOverrun and ends the stream with that error.
func (s *Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		if s.err != nil {
			return 0, s.err
		}
		return 0, errors.New("stream: write after the end")
	}
	if int64(len(s.buf))+int64(len(p)) > s.size {
		s.endLocked(fmt.Errorf("stream: %w: %d bytes announced, %d arrived", ErrStreamOverrun, s.size, int64(len(s.buf))+int64(len(p))))
		return 0, s.err
	}
	s.buf = append(s.buf, p...)
	close(s.grew)
	s.grew = make(chan struct{})
	return len(p), nil
}

// Finish ends the stream: err says why it broke off, nil that it is whole
// (fewer bytes than announced then break it). Only the first call counts.
func (s *Stream) Finish(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	if err == nil && int64(len(s.buf)) != s.size {
		err = fmt.Errorf("stream: %d bytes announced, %d arrived", s.size, len(s.buf))
	}
	if err == nil && cap(s.buf)-len(s.buf) > len(s.buf)/8 {
		// Grown past preallocMax by appending: the whole file is kept
		// (cached) as it is, so not with up to as much again unused.
		s.buf = bytes.Clone(s.buf)
	}
	s.endLocked(err)
}

func (s *Stream) endLocked(err error) {
	s.done, s.err = true, err
	close(s.grew)
}

// Wait waits for the end of the stream and returns the whole file, or why
// it broke off; ctx bounds the wait.
func (s *Stream) Wait(ctx context.Context) ([]byte, error) {
	for {
		s.mu.Lock()
		done, err, b, grew := s.done, s.err, s.buf, s.grew
		s.mu.Unlock()
		if done {
			if err != nil {
				return nil, err
			}
			return b, nil
		}
		select {
		case <-grew:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// Matches reports whether p is what arrived at off. Bytes that have not
// arrived match nothing. A fetch that carries a broken stream on from
// another backend reads the file again from its start: the bytes it
// skips show whether that backend has the same file, not only the same
// length.
func (s *Stream) Matches(off int64, p []byte) bool {
	s.mu.Lock()
	buf := s.buf
	s.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(buf)) {
		return false
	}
	// Arrived bytes never change: compared without the lock.
	return bytes.Equal(buf[off:off+int64(len(p))], p)
}

// Progress returns the bytes arrived so far and whether the stream ended.
func (s *Stream) Progress() (arrived int64, done bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.buf)), s.done
}

// NewReader returns a reader of the stream from its start. onClose, when
// set, is called once at the reader's Close (the one reader of a stream
// nobody else shares cancels the fetch with it).
func (s *Stream) NewReader(onClose func()) *StreamReader {
	return &StreamReader{s: s, onClose: onClose, closed: make(chan struct{})}
}

// StreamingBody is a File.Body read while it arrives from a backend: a
// read may wait for bytes, and Close, from any goroutine, ends the wait.
// A reader that must not wait past its own end (the front end's
// transfer, at its timeout or a shutdown) closes it then.
type StreamingBody interface {
	io.ReadCloser
	// Stream is the stream read, or nil when the body only wraps one
	// that is not shared.
	Stream() *Stream
}

// StreamReader reads a Stream. ReadAt blocks until the bytes asked for
// have arrived (as io.ReaderAt allows), so the front end reads it like a
// file: at each block's offset, a retransmission reading again. It is
// also an io.Reader and io.Seeker. One goroutine at a time reads; Close
// may come from another.
type StreamReader struct {
	s       *Stream
	onClose func()
	off     int64
	once    sync.Once
	closed  chan struct{}
}

// Stream returns the stream the reader reads.
func (r *StreamReader) Stream() *Stream { return r.s }

var _ StreamingBody = (*StreamReader)(nil)

// ReadAt reads len(p) bytes at off, waiting for them to arrive. It
// returns fewer only at the end of the file (io.EOF) or when the stream
// broke off or the reader was closed (that error).
func (r *StreamReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("stream: negative offset")
	}
	s := r.s
	if off >= s.size {
		return 0, io.EOF
	}
	want := min(off+int64(len(p)), s.size)
	for {
		s.mu.Lock()
		have, done, err, grew := int64(len(s.buf)), s.done, s.err, s.grew
		buf := s.buf
		s.mu.Unlock()
		if have >= want {
			n := copy(p, buf[off:want])
			if want == s.size && n < len(p) {
				return n, io.EOF
			}
			return n, nil
		}
		if done {
			n := 0
			if have > off {
				n = copy(p, buf[off:have])
			}
			return n, fmt.Errorf("stream broke off after %d of %d bytes: %w", have, s.size, err)
		}
		select {
		case <-grew:
		case <-r.closed:
			return 0, fmt.Errorf("stream: reader closed while waiting for bytes %d-%d", have, want)
		}
	}
}

// Read reads from the reader's offset.
func (r *StreamReader) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.off)
	r.off += int64(n)
	return n, err
}

// Seek sets the offset for Read; the end is the announced size.
func (r *StreamReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.s.size
	}
	if offset < 0 {
		return 0, errors.New("stream: seek before the start")
	}
	r.off = offset
	return offset, nil
}

// Close ends this reader: a wait in ReadAt returns, and onClose runs once.
func (r *StreamReader) Close() error {
	r.once.Do(func() {
		close(r.closed)
		if r.onClose != nil {
			r.onClose()
		}
	})
	return nil
}
