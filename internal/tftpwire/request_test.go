package tftpwire

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// rq builds raw request bytes from NUL-separated fields, so cases can
// describe broken framing that AppendRequest could not produce.
func rq(op Opcode, body string) []byte {
	return append([]byte{byte(op >> 8), byte(op)}, body...)
}

func TestParseRequest(t *testing.T) {
	manyOpts := strings.Repeat("x\x00y\x00", 1000)
	tests := []struct {
		name    string
		in      []byte
		want    Request
		wantErr error
	}{
		{
			name: "plain octet",
			in:   rq(OpRRQ, "SEP0011215A1AE3.cnf.xml.sgn\x00octet\x00"),
			want: Request{Opcode: OpRRQ, Filename: "SEP0011215A1AE3.cnf.xml.sgn", Mode: ModeOctet},
		},
		{
			name: "mode is case-insensitive",
			in:   rq(OpRRQ, "a\x00NetASCII\x00"),
			want: Request{Opcode: OpRRQ, Filename: "a", Mode: ModeNetASCII},
		},
		{
			name: "OCTET upper case",
			in:   rq(OpRRQ, "a\x00OCTET\x00"),
			want: Request{Opcode: OpRRQ, Filename: "a", Mode: ModeOctet},
		},
		{
			name: "write request",
			in:   rq(OpWRQ, "up\x00octet\x00"),
			want: Request{Opcode: OpWRQ, Filename: "up", Mode: ModeOctet},
		},
		{
			name: "options in order, names lower-cased, values kept",
			in:   rq(OpRRQ, "f\x00octet\x00BLKSIZE\x001428\x00tsize\x000\x00X-Vendor\x00Abc\x00"),
			want: Request{Opcode: OpRRQ, Filename: "f", Mode: ModeOctet, Options: []Option{
				{"blksize", "1428"}, {"tsize", "0"}, {"x-vendor", "Abc"},
			}},
		},
		{
			name: "empty option value is kept",
			in:   rq(OpRRQ, "f\x00octet\x00blksize\x00\x00"),
			want: Request{Opcode: OpRRQ, Filename: "f", Mode: ModeOctet, Options: []Option{{"blksize", ""}}},
		},
		{
			name: "trailing NUL padding is accepted",
			in:   rq(OpRRQ, "f\x00octet\x00\x00\x00\x00\x00"),
			want: Request{Opcode: OpRRQ, Filename: "f", Mode: ModeOctet},
		},
		{
			name: "padding after options",
			in:   rq(OpRRQ, "f\x00octet\x00tsize\x000\x00\x00\x00"),
			want: Request{Opcode: OpRRQ, Filename: "f", Mode: ModeOctet, Options: []Option{{"tsize", "0"}}},
		},
		{
			name: "1000 options keep the first MaxOptions",
			in:   rq(OpRRQ, "f\x00octet\x00"+manyOpts+"blksize\x001024\x00"),
			want: Request{Opcode: OpRRQ, Filename: "f", Mode: ModeOctet, Options: repeatOpt(Option{"x", "y"}, MaxOptions)},
		},
		{
			name: "options past the cap are not read, even broken ones",
			in:   rq(OpRRQ, "f\x00octet\x00"+strings.Repeat("x\x00y\x00", MaxOptions)+"broken"),
			want: Request{Opcode: OpRRQ, Filename: "f", Mode: ModeOctet, Options: repeatOpt(Option{"x", "y"}, MaxOptions)},
		},
		{name: "empty packet", in: nil, wantErr: ErrMalformed},
		{name: "one byte", in: []byte{0}, wantErr: ErrMalformed},
		{name: "opcode only", in: rq(OpRRQ, ""), want: Request{Opcode: OpRRQ}, wantErr: ErrMalformed},
		{name: "name without NUL", in: rq(OpRRQ, "file"), want: Request{Opcode: OpRRQ}, wantErr: ErrMalformed},
		{name: "empty name", in: rq(OpRRQ, "\x00octet\x00"), want: Request{Opcode: OpRRQ}, wantErr: ErrMalformed},
		{name: "mode missing", in: rq(OpRRQ, "f\x00"), want: Request{Opcode: OpRRQ, Filename: "f"}, wantErr: ErrMalformed},
		{name: "mode without NUL", in: rq(OpRRQ, "f\x00octet"), want: Request{Opcode: OpRRQ, Filename: "f"}, wantErr: ErrMalformed},
		{name: "empty mode", in: rq(OpRRQ, "f\x00\x00"), want: Request{Opcode: OpRRQ, Filename: "f"}, wantErr: ErrUnknownMode},
		{name: "unknown mode", in: rq(OpRRQ, "f\x00binary\x00"), want: Request{Opcode: OpRRQ, Filename: "f"}, wantErr: ErrUnknownMode},
		{name: "mail mode refused", in: rq(OpRRQ, "f\x00MAIL\x00"), want: Request{Opcode: OpRRQ, Filename: "f"}, wantErr: ErrUnknownMode},
		{name: "option value missing", in: rq(OpRRQ, "f\x00octet\x00blksize\x00"), want: Request{Opcode: OpRRQ, Filename: "f", Mode: ModeOctet}, wantErr: ErrMalformed},
		{name: "option value without NUL", in: rq(OpRRQ, "f\x00octet\x00blksize\x001024"), want: Request{Opcode: OpRRQ, Filename: "f", Mode: ModeOctet}, wantErr: ErrMalformed},
		{name: "option name without NUL", in: rq(OpRRQ, "f\x00octet\x00blk"), want: Request{Opcode: OpRRQ, Filename: "f", Mode: ModeOctet}, wantErr: ErrMalformed},
		{name: "empty option name before data", in: rq(OpRRQ, "f\x00octet\x00\x001024\x00"), want: Request{Opcode: OpRRQ, Filename: "f", Mode: ModeOctet}, wantErr: ErrMalformed},
		{name: "DATA is not a request", in: AppendData(nil, 1, []byte("x")), wantErr: ErrNotRequest},
		{name: "ACK is not a request", in: AppendACK(nil, 0), wantErr: ErrNotRequest},
		{name: "unknown opcode", in: rq(Opcode(99), "f\x00octet\x00"), wantErr: ErrNotRequest},
		{name: "opcode zero", in: rq(Opcode(0), "f\x00octet\x00"), wantErr: ErrNotRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.in)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func repeatOpt(o Option, n int) []Option {
	out := make([]Option, n)
	for i := range out {
		out[i] = o
	}
	return out
}

func TestParseRequestErrorTextIsBounded(t *testing.T) {
	_, err := ParseRequest(rq(OpRRQ, "f\x00"+strings.Repeat("m", 60000)+"\x00"))
	if !errors.Is(err, ErrUnknownMode) {
		t.Fatalf("err = %v", err)
	}
	if len(err.Error()) > 200 {
		t.Errorf("error text is %d bytes; peer input must be clipped", len(err.Error()))
	}
}

func TestAppendRequestRoundTrip(t *testing.T) {
	opts := []Option{{"blksize", "1428"}, {"windowsize", "4"}}
	b := AppendRequest(nil, OpRRQ, "dir/ITLFile.tlv", ModeOctet, opts)
	got, err := ParseRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Request{Opcode: OpRRQ, Filename: "dir/ITLFile.tlv", Mode: ModeOctet, Options: opts}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func BenchmarkParseRequest(b *testing.B) {
	pkt := AppendRequest(nil, OpRRQ, "SEP0011215A1AE3.cnf.xml.sgn", "octet", []Option{{"blksize", "1428"}, {"tsize", "0"}})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(rq(OpRRQ, "SEP0011215A1AE3.cnf.xml.sgn\x00octet\x00"))
	f.Add(rq(OpRRQ, "f\x00netascii\x00blksize\x001428\x00tsize\x000\x00timeout\x003\x00windowsize\x0016\x00"))
	f.Add(rq(OpWRQ, "f\x00octet\x00"))
	f.Add(rq(OpRRQ, "f\x00octet\x00\x00\x00"))
	f.Add(rq(OpRRQ, "f\x00octet\x00blksize"))
	f.Add([]byte{0})
	f.Add(rq(OpRRQ, "f\x00octet\x00"+strings.Repeat("a\x00b\x00", 100)))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseRequest(b)
		if err != nil {
			return
		}
		if req.Opcode != OpRRQ && req.Opcode != OpWRQ {
			t.Fatalf("opcode %v accepted", req.Opcode)
		}
		if req.Filename == "" || strings.IndexByte(req.Filename, 0) >= 0 {
			t.Fatalf("bad filename %q accepted", req.Filename)
		}
		if req.Mode != ModeOctet && req.Mode != ModeNetASCII {
			t.Fatalf("mode %q accepted", req.Mode)
		}
		if len(req.Options) > MaxOptions {
			t.Fatalf("%d options kept", len(req.Options))
		}
		for _, o := range req.Options {
			if o.Name == "" || o.Name != strings.ToLower(o.Name) {
				t.Fatalf("option name %q not lower-case", o.Name)
			}
		}
		// The canonical encoding of what was parsed parses to the same.
		again, err := ParseRequest(AppendRequest(nil, req.Opcode, req.Filename, req.Mode, req.Options))
		if err != nil {
			t.Fatalf("re-encoded request does not parse: %v", err)
		}
		if !reflect.DeepEqual(req, again) {
			t.Fatalf("round trip: %+v != %+v", req, again)
		}
		// Negotiation must accept or refuse, never panic, on any options.
		n, err := Negotiate(req, Limits{MaxBlockSize: 1428, MaxWindowSize: 16})
		if err == nil {
			checkNegotiation(t, n, 1428, 16)
		} else if !errors.Is(err, ErrOptionRefused) {
			t.Fatalf("Negotiate error %v does not wrap ErrOptionRefused", err)
		}
	})
}

func TestOpcodeString(t *testing.T) {
	for op, want := range map[Opcode]string{OpRRQ: "RRQ", OpOACK: "OACK", Opcode(42): "opcode(" + strconv.Itoa(42) + ")"} {
		if got := op.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", uint16(op), got, want)
		}
	}
}
