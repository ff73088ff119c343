package tftpwire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestEncodeDecode(t *testing.T) {
	t.Run("data", func(t *testing.T) {
		b := AppendData(nil, 65535, []byte("hello"))
		if want := []byte{0, 3, 0xff, 0xff, 'h', 'e', 'l', 'l', 'o'}; !bytes.Equal(b, want) {
			t.Fatalf("AppendData = %v, want %v", b, want)
		}
		block, payload, err := ParseData(b)
		if err != nil || block != 65535 || string(payload) != "hello" {
			t.Fatalf("ParseData = %d %q %v", block, payload, err)
		}
		hdr := make([]byte, 4)
		PutDataHeader(hdr, 65535)
		if !bytes.Equal(hdr, b[:4]) {
			t.Fatalf("PutDataHeader = %v", hdr)
		}
	})
	t.Run("empty data", func(t *testing.T) {
		block, payload, err := ParseData(AppendData(nil, 0, nil))
		if err != nil || block != 0 || len(payload) != 0 {
			t.Fatalf("ParseData = %d %q %v", block, payload, err)
		}
	})
	t.Run("ack", func(t *testing.T) {
		b := AppendACK(nil, 258)
		if want := []byte{0, 4, 1, 2}; !bytes.Equal(b, want) {
			t.Fatalf("AppendACK = %v", b)
		}
		if block, err := ParseACK(append(b, "trailing"...)); err != nil || block != 258 {
			t.Fatalf("ParseACK = %d %v", block, err)
		}
	})
	t.Run("error", func(t *testing.T) {
		b := AppendError(nil, CodeAccessViolation, "Access violation")
		if want := "\x00\x05\x00\x02Access violation\x00"; string(b) != want {
			t.Fatalf("AppendError = %q", b)
		}
		code, msg, err := ParseError(b)
		if err != nil || code != 2 || msg != "Access violation" {
			t.Fatalf("ParseError = %d %q %v", code, msg, err)
		}
	})
	t.Run("error message cut at NUL", func(t *testing.T) {
		b := AppendError(nil, 0, "a\x00secret")
		if string(b) != "\x00\x05\x00\x00a\x00" {
			t.Fatalf("AppendError = %q", b)
		}
	})
	t.Run("error without terminator", func(t *testing.T) {
		code, msg, err := ParseError([]byte("\x00\x05\x00\x01gone"))
		if err != nil || code != 1 || msg != "gone" {
			t.Fatalf("ParseError = %d %q %v", code, msg, err)
		}
	})
	t.Run("oack", func(t *testing.T) {
		opts := []Option{{"blksize", "1428"}, {"tsize", "7000"}}
		got, err := ParseOACK(AppendOACK(nil, opts))
		if err != nil || !reflect.DeepEqual(got, opts) {
			t.Fatalf("ParseOACK = %v %v", got, err)
		}
	})
	t.Run("empty oack", func(t *testing.T) {
		got, err := ParseOACK(AppendOACK(nil, nil))
		if err != nil || got != nil {
			t.Fatalf("ParseOACK = %v %v", got, err)
		}
	})
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		parse   func([]byte) error
		in      []byte
		wantErr error
	}{
		{"data short", func(b []byte) error { _, _, err := ParseData(b); return err }, []byte{0, 3, 0}, ErrMalformed},
		{"data wrong opcode", func(b []byte) error { _, _, err := ParseData(b); return err }, AppendACK(nil, 1), ErrUnexpectedOpcode},
		{"ack short", func(b []byte) error { _, err := ParseACK(b); return err }, []byte{0, 4, 1}, ErrMalformed},
		{"ack empty", func(b []byte) error { _, err := ParseACK(b); return err }, nil, ErrMalformed},
		{"ack wrong opcode", func(b []byte) error { _, err := ParseACK(b); return err }, AppendData(nil, 1, nil), ErrUnexpectedOpcode},
		{"error 3 bytes", func(b []byte) error { _, _, err := ParseError(b); return err }, []byte{0, 5, 0}, ErrMalformed},
		{"oack broken option", func(b []byte) error { _, err := ParseOACK(b); return err }, []byte("\x00\x06blksize\x00"), ErrMalformed},
		{"oack wrong opcode", func(b []byte) error { _, err := ParseOACK(b); return err }, AppendACK(nil, 0), ErrUnexpectedOpcode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.parse(tt.in); !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestEncodersDoNotAllocateIntoCapacity(t *testing.T) {
	buf := make([]byte, 0, 600)
	n := testing.AllocsPerRun(100, func() {
		b := AppendData(buf[:0], 7, make([]byte, 0))
		b = AppendACK(b[:0], 7)
		_ = AppendError(b[:0], CodeFileNotFound, "File not found")
	})
	if n != 0 {
		t.Errorf("%v allocations per run", n)
	}
}

// netasciiRef is the obvious byte-at-a-time conversion the reader must match.
func netasciiRef(in []byte) []byte {
	var out []byte
	for _, c := range in {
		switch c {
		case '\n':
			out = append(out, '\r', '\n')
		case '\r':
			out = append(out, '\r', 0)
		default:
			out = append(out, c)
		}
	}
	return out
}

func TestNetASCIIReader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", ""},
		{"plain", "abc", "abc"},
		{"lf", "a\nb\n", "a\r\nb\r\n"},
		{"cr", "a\rb", "a\r\x00b"},
		{"crlf becomes cr nul cr lf", "a\r\n", "a\r\x00\r\n"},
		{"only newlines", "\n\n\n", "\r\n\r\n\r\n"},
		{"long", strings.Repeat("line\n", 300), strings.Repeat("line\r\n", 300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := io.ReadAll(NetASCIIReader(strings.NewReader(tt.in)))
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
			// One byte at a time exercises the pending half of an expansion.
			got, err = io.ReadAll(iotest.OneByteReader(NetASCIIReader(iotest.HalfReader(strings.NewReader(tt.in)))))
			if err != nil || string(got) != tt.want {
				t.Fatalf("byte-wise: got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if err := iotest.TestReader(NetASCIIReader(strings.NewReader("a\nb\rc")), []byte("a\r\nb\r\x00c")); err != nil {
		t.Error(err)
	}
}

func TestNetASCIIReaderPassesErrors(t *testing.T) {
	boom := errors.New("boom")
	_, err := io.ReadAll(NetASCIIReader(iotest.ErrReader(boom)))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	r := NetASCIIReader(io.MultiReader(strings.NewReader("a\n"), iotest.ErrReader(boom)))
	got, err := io.ReadAll(r)
	if string(got) != "a\r\n" || !errors.Is(err, boom) {
		t.Fatalf("got %q, %v", got, err)
	}
}

func FuzzNetASCIIReader(f *testing.F) {
	f.Add([]byte("a\r\nb\n\r\x00"), uint8(3))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		r := NetASCIIReader(iotest.HalfReader(bytes.NewReader(in)))
		var got []byte
		buf := make([]byte, int(chunk)%17+1)
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if want := netasciiRef(in); !bytes.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}
