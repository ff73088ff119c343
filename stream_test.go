package ctftp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
)

// Readers that start before, during and after the writes all read the
// whole file, in the block sizes a transfer uses, while it arrives in the
// backend's.
func TestStreamReadersWhileArriving(t *testing.T) {
	want := make([]byte, 100_003)
	for i := range want {
		want[i] = byte(rand.Uint32())
	}
	s := NewStream(int64(len(want)))
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([][]byte, 6)
	read := func(i, block int) {
		r := s.NewReader(nil)
		defer r.Close()
		var out bytes.Buffer
		buf := make([]byte, block)
		for off := int64(0); ; off += int64(block) {
			n, err := r.ReadAt(buf, off)
			out.Write(buf[:n])
			if errors.Is(err, io.EOF) || n < block {
				break
			}
			if err != nil {
				t.Errorf("reader %d: %v", i, err)
				return
			}
		}
		got[i] = out.Bytes()
	}
	for i := range 3 {
		wg.Go(func() { read(i, []int{512, 1428, 8192}[i]) })
	}
	for off := 0; off < len(want); off += 1428 {
		if _, err := s.Write(want[off:min(off+1428, len(want))]); err != nil {
			t.Fatal(err)
		}
		if off == 50*1428 {
			for i := 3; i < 5; i++ {
				wg.Go(func() { read(i, 512) })
			}
		}
	}
	s.Finish(nil)
	read(5, 65464)
	wg.Wait()
	for i, g := range got {
		if !bytes.Equal(g, want) {
			t.Errorf("reader %d: %d bytes, not the file", i, len(g))
		}
	}
	all, err := s.Wait(ctx)
	if err != nil || !bytes.Equal(all, want) {
		t.Fatalf("Wait: %d bytes, %v", len(all), err)
	}
	// Read and Seek, as tsize and netascii conversion use them.
	r := s.NewReader(nil)
	if n, _ := r.Seek(0, io.SeekEnd); n != int64(len(want)) {
		t.Errorf("Seek end: %d", n)
	}
	r.Seek(0, io.SeekStart)
	if b, err := io.ReadAll(r); err != nil || !bytes.Equal(b, want) {
		t.Errorf("ReadAll: %d bytes, %v", len(b), err)
	}
}

// A stream that breaks off, or that gets more or fewer bytes than its
// backend announced, fails its readers and its Wait: a phone must get an
// error, never a short file that looks whole.
func TestStreamBreaksOff(t *testing.T) {
	ctx := context.Background()
	cut := errors.New("backend stopped answering")

	s := NewStream(2000)
	s.Write(make([]byte, 1000))
	r := s.NewReader(nil)
	done := make(chan error)
	go func() {
		_, err := r.ReadAt(make([]byte, 512), 1024)
		done <- err
	}()
	s.Finish(cut)
	if err := <-done; !errors.Is(err, cut) {
		t.Errorf("waiting reader: %v, want the fetch's error", err)
	}
	if n, err := r.ReadAt(make([]byte, 512), 512); n != 488 || !errors.Is(err, cut) {
		t.Errorf("read across the cut: %d, %v", n, err)
	}
	if _, err := s.Wait(ctx); !errors.Is(err, cut) {
		t.Errorf("Wait: %v", err)
	}

	short := NewStream(10)
	short.Write([]byte("12345"))
	short.Finish(nil)
	if _, err := short.Wait(ctx); err == nil {
		t.Error("5 of 10 announced bytes passed as whole")
	}

	over := NewStream(4)
	if _, err := over.Write([]byte("12345")); !errors.Is(err, ErrStreamOverrun) {
		t.Errorf("overrun: %v", err)
	}
	if _, err := over.Wait(ctx); !errors.Is(err, ErrStreamOverrun) {
		t.Errorf("overrun Wait: %v", err)
	}
}

// A reader waiting for bytes that do not come returns when it is closed
// (from another goroutine); onClose runs once.
func TestStreamReaderStops(t *testing.T) {
	s := NewStream(100)
	closes := 0
	r2 := s.NewReader(func() { closes++ })
	go r2.Close()
	if _, err := r2.ReadAt(make([]byte, 10), 0); err == nil {
		t.Error("closed reader's wait returned no error")
	}
	r2.Close()
	if closes != 1 {
		t.Errorf("onClose ran %d times", closes)
	}
	if n, err := NewStream(0).NewReader(nil).ReadAt(make([]byte, 1), 0); n != 0 || err != io.EOF {
		t.Errorf("empty stream: %d, %v", n, err)
	}
}

// A stream larger than preallocMax grows as it arrives: a reader reading
// meanwhile gets the right bytes across every reallocation, and the whole
// file is kept without spare capacity.
func TestStreamGrowsPastPrealloc(t *testing.T) {
	want := make([]byte, preallocMax+preallocMax/2+7)
	for i := range want {
		want[i] = byte(i * 7)
	}
	s := NewStream(int64(len(want)))
	if cap(s.buf) != preallocMax {
		t.Fatalf("preallocated %d bytes for an announced %d", cap(s.buf), len(want))
	}
	done := make(chan []byte)
	go func() {
		b, err := io.ReadAll(s.NewReader(nil))
		if err != nil {
			t.Error(err)
		}
		done <- b
	}()
	for off := 0; off < len(want); off += 1428 {
		s.Write(want[off:min(off+1428, len(want))])
	}
	s.Finish(nil)
	if got := <-done; !bytes.Equal(got, want) {
		t.Fatalf("reader got %d bytes, not the file", len(got))
	}
	all, err := s.Wait(context.Background())
	if err != nil || !bytes.Equal(all, want) || cap(all)-len(all) > len(all)/8 {
		t.Errorf("Wait: %d bytes (cap %d), %v", len(all), cap(all), err)
	}
}

// TestStreamMatches: only bytes that arrived, and only the same ones,
// match.
func TestStreamMatches(t *testing.T) {
	s := NewStream(10)
	s.Write([]byte("abcdef"))
	for _, tc := range []struct {
		off  int64
		p    string
		want bool
	}{
		{0, "abc", true}, {2, "cdef", true}, {0, "", true},
		{1, "abc", false}, // other bytes
		{4, "efg", false}, // past what arrived
		{-1, "a", false},  // no such offset
		{6, "", true},     // nothing, at the end of what arrived
	} {
		if got := s.Matches(tc.off, []byte(tc.p)); got != tc.want {
			t.Errorf("Matches(%d, %q) = %v, want %v", tc.off, tc.p, got, tc.want)
		}
	}
}
