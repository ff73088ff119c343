package fleet

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ctftp/ctftp/itl"
)

// TestWorld checks the generated world: where each file is, that it is
// what phones get (Check), and that the files are real: ITLs and the CTL
// parse and verify, configs carry a signature by their sub-cluster's
// CallManager key, sizes near the domain notes' phone logs.
func TestWorld(t *testing.T) {
	dir := t.TempDir()
	phones := Spread([]string{"0011215A1AE3", "00AABB000001", "00AABB000002"}, DefaultSubclusters())
	w, err := Generate(context.Background(), Options{Phones: phones})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(dir); err != nil {
		t.Fatal(err)
	}
	where := map[string][]string{
		"CTLFile.tlv":                     {"direct", "east", "west"},
		"ITLFile.tlv":                     {"direct", "root", "east", "west"},
		"README.txt":                      {"root"},
		"ITLSEP0011215A1AE3.tlv":          {"direct", "east"},
		"SEP0011215A1AE3.cnf.xml.sgn":     {"direct", "east"},
		"SEP0011215A1AE3.cnf.xml":         {"direct", "east"},
		"ITLSEP00AABB000001.tlv":          {"direct", "west"},
		"SEP00AABB000001.cnf.xml.sgn":     {"direct", "west"},
		"SEP00AABB000002.cnf.xml.sgn":     {"direct", "east"},
		"CTLSEP0011215A1AE3.tlv":          nil,
		"SEP00AABB000002.cnf.xml.sgn.bak": nil,
	}
	for name, dirs := range where {
		for _, d := range []string{"direct", "root", "east", "west"} {
			b, err := os.ReadFile(filepath.Join(dir, d, name))
			want := slices.Contains(dirs, d)
			if want != (err == nil) {
				t.Errorf("%s/%s: present %v, want %v", d, name, err == nil, want)
			}
			if err == nil && name != "ITLFile.tlv" && name != "README.txt" {
				if cerr := w.Check(name, b); cerr != nil {
					t.Errorf("%s/%s: %v", d, name, cerr)
				}
			}
		}
	}
	for sc, want := range map[string]string{"east": "0011215A1AE3\n00AABB000002\n", "west": "00AABB000001\n"} {
		b, err := os.ReadFile(DeviceFile(dir, sc))
		if err != nil || !strings.HasSuffix(string(b), want) || !strings.HasPrefix(string(b), "#") {
			t.Errorf("device list %s: %q, %v; want a comment and %q", sc, b, err, want)
		}
	}
	sizes := map[string][2]int{
		"CTLFile.tlv":                 {5000, 8000},
		"ITLSEP0011215A1AE3.tlv":      {5000, 7000},
		"SEP0011215A1AE3.cnf.xml.sgn": {6500, 8500},
	}
	for name, r := range sizes {
		b, _ := w.PhoneFile(name)
		if n := len(b); n < r[0] || n > r[1] {
			t.Errorf("%s is %d bytes, want %d..%d", name, n, r[0], r[1])
		}
	}
	for _, name := range []string{"CTLFile.tlv", "ITLSEP0011215A1AE3.tlv", "SEP0011215A1AE3.cnf.xml.sgn"} {
		b, _ := w.PhoneFile(name)
		f, err := itl.ParseNamed(name, b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// `ctftp itl show/verify` of a generated file warns of nothing
		// (a FILENAME that is not the published name would be warned of).
		if w := f.Warnings(); len(w) > 0 {
			t.Errorf("%s: warnings %q", name, w)
		}
		if err := f.Verify(); err != nil && f.Kind.IsTrustList() {
			t.Errorf("%s does not verify: %v", name, err)
		}
		if name == "SEP0011215A1AE3.cnf.xml.sgn" && !strings.Contains(f.Header.Signer.Subject, "cucm-east.example.com") {
			t.Errorf("%s signed by %q, want east CallManager", name, f.Header.Signer.Subject)
		}
	}
	// A phone holding its cluster's ITL accepts its config; one of the
	// other cluster does not.
	sgn, _ := w.PhoneFile("SEP0011215A1AE3.cnf.xml.sgn")
	f, err := itl.ParseNamed("SEP0011215A1AE3.cnf.xml.sgn", sgn)
	if err != nil {
		t.Fatal(err)
	}
	for sc, accept := range map[string]bool{"east": true, "west": false} {
		list, err := itl.ParseNamed("ITLFile.tlv", w.ITL(sc))
		if err != nil {
			t.Fatal(err)
		}
		v := itl.Evaluate(itl.PhoneState{ITL: list}, "SEP0011215A1AE3.cnf.xml.sgn", f)
		if (v.Decision == itl.Accept) != accept {
			t.Errorf("a phone holding %s's ITL: %v, want accept %v", sc, v, accept)
		}
	}
	other, _ := w.PhoneFile("SEP00AABB000001.cnf.xml.sgn")
	if err := w.Check("SEP0011215A1AE3.cnf.xml.sgn", other); err == nil {
		t.Error("Check accepted another phone's config")
	}
	if err := w.Check("CTLSEP0011215A1AE3.tlv", nil); err == nil {
		t.Error("Check accepted a file that was never generated")
	}
}

func TestGenerateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"unknown sub-cluster", Options{KeyBits: 1024, Phones: []Phone{{MAC: "001122334455", Subcluster: "north"}}}, `no sub-cluster "north"`},
		{"bad MAC", Options{KeyBits: 1024, Phones: []Phone{{MAC: "0011", Subcluster: "east"}}}, "12 upper-case hex digits"},
		{"twice", Options{KeyBits: 1024, Phones: []Phone{{MAC: "001122334455", Subcluster: "east"}, {MAC: "001122334455", Subcluster: "west"}}}, "listed twice"},
		{"reserved name", Options{KeyBits: 1024, Subclusters: []string{"root"}}, `"root" cannot name a sub-cluster`},
		{"none", Options{KeyBits: 1024, Subclusters: []string{}}, "no sub-clusters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Generate(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestGenerateStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	macs := make([]string, 50)
	for i := range macs {
		macs[i] = "00AA550000" + string("0123456789ABCDEF"[i/16]) + string("0123456789ABCDEF"[i%16])
	}
	if _, err := Generate(ctx, Options{KeyBits: 1024, Phones: Spread(macs, DefaultSubclusters())}); err == nil {
		t.Fatal("a cancelled generation succeeded")
	}
}
