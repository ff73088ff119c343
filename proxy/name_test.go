package proxy

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/ctftp/ctftp"
)

func TestCleanName(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    string
		wantErr error
	}{
		{name: "plain", raw: "SEP0011215A1AE3.cnf.xml.sgn", want: "SEP0011215A1AE3.cnf.xml.sgn"},
		{name: "case preserved", raw: "ITLFile.tlv", want: "ITLFile.tlv"},
		{name: "leading slash", raw: "/ITLFile.tlv", want: "ITLFile.tlv"},
		{name: "many leading slashes", raw: "////ITLFile.tlv", want: "ITLFile.tlv"},
		{name: "absolute path stays inside", raw: "/etc/passwd", want: "etc/passwd"},
		{name: "backslashes", raw: `\loads\SIP88xx.loads`, want: "loads/SIP88xx.loads"},
		{name: "mixed separators", raw: `/loads\a/b`, want: "loads/a/b"},
		{name: "dot elements dropped", raw: "./a/./b", want: "a/b"},
		{name: "double slash inside", raw: "a//b", want: "a/b"},
		{name: "trailing slash", raw: "dir/", want: "dir"},
		{name: "space is printable", raw: "my file", want: "my file"},
		{name: "three dots refused too", raw: "...x", wantErr: ErrNameDotDot},
		{name: "255 bytes", raw: strings.Repeat("a", 255), want: strings.Repeat("a", 255)},
		{name: "256 bytes", raw: strings.Repeat("a", 256), wantErr: ErrNameTooLong},
		{name: "600 bytes", raw: strings.Repeat("A", 600), wantErr: ErrNameTooLong},
		{name: "empty", raw: "", wantErr: ErrNameEmpty},
		{name: "only slashes", raw: "///", wantErr: ErrNameEmpty},
		{name: "only backslash", raw: `\`, wantErr: ErrNameEmpty},
		{name: "dot", raw: ".", wantErr: ErrNameEmpty},
		{name: "slash dot", raw: "/./", wantErr: ErrNameEmpty},
		{name: "dot-dot", raw: "..", wantErr: ErrNameDotDot},
		{name: "traversal", raw: "../../etc/passwd", wantErr: ErrNameDotDot},
		{name: "traversal after slash", raw: "/../etc/passwd", wantErr: ErrNameDotDot},
		{name: "traversal inside", raw: "a/../../b", wantErr: ErrNameDotDot},
		{name: "harmless-looking dot-dot", raw: "a/b/../c", wantErr: ErrNameDotDot},
		{name: "backslash traversal", raw: `..\..\x`, wantErr: ErrNameDotDot},
		{name: "dot-dot inside a name", raw: "a..b", wantErr: ErrNameDotDot},
		{name: "NUL", raw: "a\x00b", wantErr: ErrNameNUL},
		{name: "newline", raw: "a\nb", wantErr: ErrNameByte},
		{name: "tab", raw: "a\tb", wantErr: ErrNameByte},
		{name: "escape", raw: "\x1b[31m", wantErr: ErrNameByte},
		{name: "DEL", raw: "\x7f", wantErr: ErrNameByte},
		{name: "UTF-8", raw: "caf\u00e9", wantErr: ErrNameByte},
		{name: "invalid UTF-8", raw: "\xff", wantErr: ErrNameByte},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanName(tt.raw)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !errors.Is(err, ctftp.ErrDenied) {
					t.Fatalf("CleanName(%q) = %q, %v; want %v (wrapping ErrDenied)", tt.raw, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CleanName(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
			}
		})
	}
}

func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"SEP0011215A1AE3.cnf.xml", "/a/b", `..\..\x`, "a/./b//c/", "...", "a..", "/", ".", "x\x00y", "\\.\\."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := CleanName(raw)
		if err != nil {
			if !errors.Is(err, ctftp.ErrDenied) {
				t.Fatalf("error %v does not wrap ErrDenied", err)
			}
			return
		}
		if !fs.ValidPath(got) || got == "." {
			t.Fatalf("CleanName(%q) = %q: not a valid path", raw, got)
		}
		if strings.Contains(got, "..") || strings.HasPrefix(got, "/") || strings.Contains(got, `\`) {
			t.Fatalf("CleanName(%q) = %q", raw, got)
		}
		if len(got) > MaxNameLength {
			t.Fatalf("CleanName(%q) is %d bytes", raw, len(got))
		}
		again, err := CleanName(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", raw, got, again, err)
		}
	})
}
