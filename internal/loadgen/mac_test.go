package loadgen

import (
	"strings"
	"testing"
)

func TestParseMAC(t *testing.T) {
	tests := []struct {
		name, in, want string // want "" = error
	}{
		{"bare", "0011215A1AE3", "0011215A1AE3"},
		{"lower", "0011215a1ae3", "0011215A1AE3"},
		{"colons", "00:11:21:5a:1a:e3", "0011215A1AE3"},
		{"dashes", "00-11-21-5A-1A-E3", "0011215A1AE3"},
		{"cisco dots", "0011.215a.1ae3", "0011215A1AE3"},
		{"device name", "SEP0011215A1AE3", "0011215A1AE3"},
		{"device name lower", "sep0011215a1ae3", "0011215A1AE3"},
		{"spaces around", "  0011215A1AE3\t", "0011215A1AE3"},
		{"short", "0011215A1AE", ""},
		{"long", "0011215A1AE3F", ""},
		{"non-hex", "0011215A1AEZ", ""},
		{"empty", "", ""},
		{"only separators", ":::", ""},
		{"inner space", "0011 215A1AE3", ""},
		{"SEP alone", "SEP", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMAC(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("ParseMAC(%q) = %q, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseMAC(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestReadMACs(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		errLike []string // substrings the error must contain
	}{
		{"list with comments", "# east\n0011215A1AE3\n\n00:11:22:33:44:55 # desk 4\n", []string{"0011215A1AE3", "001122334455"}, nil},
		{"bad lines all reported", "0011215A1AE3\nnope\n001122\n", nil, []string{"line 2:", "line 3:"}},
		{"duplicate", "0011215A1AE3\n0011.215a.1ae3\n", nil, []string{"line 2: MAC 0011215A1AE3 already on line 1"}},
		{"empty", "# nothing\n\n", nil, []string{"no MAC addresses"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadMACs(strings.NewReader(tc.in))
			if tc.errLike != nil {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				for _, s := range tc.errLike {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMACs(t *testing.T) {
	tests := []struct {
		name     string
		prefix   string
		first, n int
		want     []string // first and last; nil = error
	}{
		{"prefix and counter", "00ab", 0, 3, []string{"00AB00000000", "00AB00000002"}},
		{"offset", "0011215A1A", 0xe2, 2, []string{"0011215A1AE2", "0011215A1AE3"}},
		{"hex counter", "", 255, 2, []string{"0000000000FF", "000000000100"}},
		{"last slot", "00112233445", 15, 1, []string{"00112233445F", "00112233445F"}},
		{"full", "00112233445", 0, 17, nil},
		{"prefix too long", "001122334455", 0, 1, nil},
		{"bad prefix", "0x11", 0, 1, nil},
		{"none", "00", 0, 0, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MACs(tc.prefix, tc.first, tc.n)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.n {
				t.Fatalf("got %d MACs, want %d", len(got), tc.n)
			}
			if tc.n == 0 {
				return
			}
			if got[0] != tc.want[0] || got[len(got)-1] != tc.want[1] {
				t.Fatalf("got %s..%s, want %s..%s", got[0], got[len(got)-1], tc.want[0], tc.want[1])
			}
			for _, m := range got {
				if p, err := ParseMAC(m); err != nil || p != m {
					t.Fatalf("generated %q does not parse back: %q %v", m, p, err)
				}
			}
		})
	}
}

// FuzzParseMAC: whatever goes in, what comes out is twelve upper-case hex
// digits that parse to themselves.
func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"0011215A1AE3", "00:11:21:5a:1a:e3", "SEP0011.215a.1ae3", "", "SEP", "zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMAC(s)
		if err != nil {
			return
		}
		if len(m) != macDigits || strings.ToUpper(m) != m {
			t.Fatalf("ParseMAC(%q) = %q", s, m)
		}
		if again, err := ParseMAC(m); err != nil || again != m {
			t.Fatalf("ParseMAC(%q) = %q, %v; not stable", m, again, err)
		}
	})
}

// FuzzReadMACs: a list either fails or yields distinct, normalised MACs.
func FuzzReadMACs(f *testing.F) {
	f.Add("0011215A1AE3\n# c\n00:11:22:33:44:55\n")
	f.Add("0011215A1AE3\n0011215a1ae3\n")
	f.Add("\n\n#\n")
	f.Fuzz(func(t *testing.T, s string) {
		macs, err := ReadMACs(strings.NewReader(s))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, m := range macs {
			if p, err := ParseMAC(m); err != nil || p != m || seen[m] {
				t.Fatalf("bad MAC %q in %v", m, macs)
			}
			seen[m] = true
		}
	})
}
