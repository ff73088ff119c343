package tftpwire

import (
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestNegotiate(t *testing.T) {
	lim := Limits{MaxBlockSize: 1428, MaxWindowSize: 16}
	tests := []struct {
		name    string
		mode    string
		lim     *Limits // nil: lim
		opts    []Option
		tsize   int64
		want    []Option // the OACK's options; nil: no OACK
		block   int
		window  int
		timeout time.Duration
		wantErr error
	}{
		{name: "no options", block: 512, window: 1},
		{name: "blksize accepted", opts: []Option{{"blksize", "1024"}}, want: []Option{{"blksize", "1024"}}, block: 1024, window: 1},
		{name: "blksize 8 is the minimum", opts: []Option{{"blksize", "8"}}, want: []Option{{"blksize", "8"}}, block: 8, window: 1},
		{name: "blksize above cap is clamped", opts: []Option{{"blksize", "65464"}}, want: []Option{{"blksize", "1428"}}, block: 1428, window: 1},
		{name: "blksize 65465 is clamped", lim: &Limits{}, opts: []Option{{"blksize", "65465"}}, want: []Option{{"blksize", "65464"}}, block: 65464, window: 1},
		{name: "blksize huge is clamped", opts: []Option{{"blksize", "99999999999999999999999"}}, want: []Option{{"blksize", "1428"}}, block: 1428, window: 1},
		{name: "blksize leading zeros", opts: []Option{{"blksize", "0512"}}, want: []Option{{"blksize", "512"}}, block: 512, window: 1},
		{name: "blksize 0 refused", opts: []Option{{"blksize", "0"}}, wantErr: ErrOptionRefused},
		{name: "blksize 7 refused", opts: []Option{{"blksize", "7"}}, wantErr: ErrOptionRefused},
		{name: "blksize abc ignored", opts: []Option{{"blksize", "abc"}}, block: 512, window: 1},
		{name: "blksize empty ignored", opts: []Option{{"blksize", ""}}, block: 512, window: 1},
		{name: "blksize negative ignored", opts: []Option{{"blksize", "-1"}}, block: 512, window: 1},
		{name: "blksize with space ignored", opts: []Option{{"blksize", " 1024"}}, block: 512, window: 1},
		{name: "duplicate: first wins", opts: []Option{{"blksize", "1024"}, {"blksize", "8"}}, want: []Option{{"blksize", "1024"}}, block: 1024, window: 1},
		{name: "duplicate: first ignored, second not read", opts: []Option{{"blksize", "abc"}, {"blksize", "1024"}}, block: 512, window: 1},
		{name: "duplicate: a refused first still refuses", opts: []Option{{"blksize", "0"}, {"blksize", "1024"}}, wantErr: ErrOptionRefused},
		{name: "unknown options ignored", opts: []Option{{"x-foo", "1"}, {"rollover", "0"}}, block: 512, window: 1},
		{name: "tsize with size", opts: []Option{{"tsize", "0"}}, tsize: 7000, want: []Option{{"tsize", "7000"}}, block: 512, window: 1},
		{name: "tsize zero-byte file", opts: []Option{{"tsize", "0"}}, tsize: 0, want: []Option{{"tsize", "0"}}, block: 512, window: 1},
		{name: "tsize unknown size alone: no OACK", opts: []Option{{"tsize", "0"}}, tsize: -1, block: 512, window: 1},
		{name: "tsize unknown with blksize", opts: []Option{{"tsize", "0"}, {"blksize", "1024"}}, tsize: -1, want: []Option{{"blksize", "1024"}}, block: 1024, window: 1},
		{name: "tsize nonzero request value still answered", opts: []Option{{"tsize", "5"}}, tsize: 9, want: []Option{{"tsize", "9"}}, block: 512, window: 1},
		{name: "tsize not in netascii", mode: ModeNetASCII, opts: []Option{{"tsize", "0"}}, tsize: 100, block: 512, window: 1},
		{name: "timeout echoed", opts: []Option{{"timeout", "3"}}, want: []Option{{"timeout", "3"}}, block: 512, window: 1, timeout: 3 * time.Second},
		{name: "timeout 255", opts: []Option{{"timeout", "255"}}, want: []Option{{"timeout", "255"}}, block: 512, window: 1, timeout: 255 * time.Second},
		{name: "timeout 0 refused", opts: []Option{{"timeout", "0"}}, wantErr: ErrOptionRefused},
		{name: "timeout 256 refused", opts: []Option{{"timeout", "256"}}, wantErr: ErrOptionRefused},
		{name: "timeout abc ignored", opts: []Option{{"timeout", "1s"}}, block: 512, window: 1},
		{name: "windowsize accepted", opts: []Option{{"windowsize", "4"}}, want: []Option{{"windowsize", "4"}}, block: 512, window: 4},
		{name: "windowsize clamped", opts: []Option{{"windowsize", "65535"}}, want: []Option{{"windowsize", "16"}}, block: 512, window: 16},
		{name: "windowsize 0 refused", opts: []Option{{"windowsize", "0"}}, wantErr: ErrOptionRefused},
		{name: "windowsize disabled is ignored", lim: &Limits{MaxWindowSize: 1}, opts: []Option{{"windowsize", "0"}}, block: 512, window: 1},
		{
			name:  "order follows the request",
			opts:  []Option{{"windowsize", "8"}, {"tsize", "0"}, {"x", "y"}, {"timeout", "2"}, {"blksize", "1400"}},
			tsize: 10,
			want:  []Option{{"windowsize", "8"}, {"tsize", "10"}, {"timeout", "2"}, {"blksize", "1400"}},
			block: 1400, window: 8, timeout: 2 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := lim
			if tt.lim != nil {
				l = *tt.lim
			}
			mode := tt.mode
			if mode == "" {
				mode = ModeOctet
			}
			n, err := Negotiate(Request{Opcode: OpRRQ, Filename: "f", Mode: mode, Options: tt.opts}, l)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if n.BlockSize != tt.block || n.WindowSize != tt.window || n.Timeout != tt.timeout {
				t.Errorf("block %d window %d timeout %v, want %d %d %v", n.BlockSize, n.WindowSize, n.Timeout, tt.block, tt.window, tt.timeout)
			}
			if got := n.HasOACK(tt.tsize); got != (tt.want != nil) {
				t.Fatalf("HasOACK = %v, want %v", got, tt.want != nil)
			}
			if tt.want == nil {
				return
			}
			got, err := ParseOACK(n.AppendOACK(nil, tt.tsize))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("OACK %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseDecimal(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true}, {"65464", 65464, true}, {"4294967296", 1 << 32, true},
		{"18446744073709551616", 1 << 32, true}, {"", 0, false}, {"+1", 0, false},
		{"1e3", 0, false}, {"١", 0, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			got, ok := parseDecimal(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("parseDecimal(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// checkNegotiation asserts the invariants every accepted negotiation has,
// and that its OACK parses back to exactly the negotiated values.
func checkNegotiation(t *testing.T, n Negotiation, maxBlock, maxWindow int) {
	t.Helper()
	if n.BlockSize < MinBlockSize || n.BlockSize > maxBlock && n.BlockSize != DefaultBlockSize {
		t.Fatalf("block size %d outside 8..%d", n.BlockSize, maxBlock)
	}
	if n.WindowSize < 1 || n.WindowSize > maxWindow {
		t.Fatalf("window %d outside 1..%d", n.WindowSize, maxWindow)
	}
	if n.Timeout != 0 && (n.Timeout < time.Second || n.Timeout > 255*time.Second) {
		t.Fatalf("timeout %v", n.Timeout)
	}
	opts, err := ParseOACK(n.AppendOACK(nil, 1234))
	if err != nil {
		t.Fatalf("own OACK does not parse: %v", err)
	}
	seen := map[string]bool{}
	for _, o := range opts {
		if seen[o.Name] {
			t.Fatalf("OACK repeats %q", o.Name)
		}
		seen[o.Name] = true
		v, err := strconv.Atoi(o.Value)
		if err != nil {
			t.Fatalf("OACK value %q", o.Value)
		}
		switch o.Name {
		case OptBlockSize:
			if v != n.BlockSize {
				t.Fatalf("OACK blksize %d, negotiated %d", v, n.BlockSize)
			}
		case OptWindowSize:
			if v != n.WindowSize {
				t.Fatalf("OACK windowsize %d, negotiated %d", v, n.WindowSize)
			}
		case OptTimeout:
			if time.Duration(v)*time.Second != n.Timeout {
				t.Fatalf("OACK timeout %d, negotiated %v", v, n.Timeout)
			}
		case OptTransferSize:
			if !n.TransferSize || v != 1234 {
				t.Fatalf("OACK tsize %d", v)
			}
		default:
			t.Fatalf("OACK acknowledges unknown option %q", o.Name)
		}
	}
}

func FuzzNegotiate(f *testing.F) {
	f.Add("blksize", "1428", "windowsize", "16", "timeout", "3", false)
	f.Add("BlkSize", "0", "tsize", "0", "x", "y", true)
	f.Add("blksize", "65465", "blksize", "8", "windowsize", "0", false)
	f.Add("timeout", "256", "tsize", "abc", "windowsize", "99999999999999999999", false)
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2, n3, v3 string, netascii bool) {
		mode := ModeOctet
		if netascii {
			mode = ModeNetASCII
		}
		// Go through the wire so names get the parser's treatment.
		pkt := AppendRequest(nil, OpRRQ, "f", mode, []Option{{n1, v1}, {n2, v2}, {n3, v3}})
		req, err := ParseRequest(pkt)
		if err != nil {
			return // NULs inside the fuzzed strings break the framing
		}
		for _, lim := range []Limits{{}, {MaxBlockSize: 512, MaxWindowSize: 1}, {MaxBlockSize: 1428, MaxWindowSize: 64}} {
			n, err := Negotiate(req, lim)
			if err != nil {
				if !errors.Is(err, ErrOptionRefused) {
					t.Fatalf("error %v does not wrap ErrOptionRefused", err)
				}
				if len(err.Error()) > 200 {
					t.Fatalf("error text not clipped: %d bytes", len(err.Error()))
				}
				continue
			}
			maxBlock := lim.MaxBlockSize
			if maxBlock == 0 {
				maxBlock = MaxBlockSize
			}
			checkNegotiation(t, n, maxBlock, max(lim.MaxWindowSize, 1))
			if netascii && n.TransferSize {
				t.Fatal("tsize acknowledged in netascii mode")
			}
		}
	})
}
