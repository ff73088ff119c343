package itl

import (
	"bytes"
	"encoding/hex"
	"os"
	"testing"
)

// fuzzSeeds are valid files of every kind, so the fuzzer starts from deep
// inside the format. They are signed with a fixed key from testdata: fuzz
// workers run this setup in coverage-instrumented builds, where generating
// RSA keys takes long enough to stall them.
func fuzzSeeds(t testing.TB) [][]byte {
	t.Helper()
	s, err := LoadSignerPEM("testdata/seed-signer.pem")
	if err != nil {
		t.Fatal(err)
	}
	seeds := [][]byte{readFixture(t)}
	seeds = append(seeds, mustBuild(t, BuildOptions{Signer: s, Records: []RecordSpec{
		{Role: RoleCCMTFTP, Cert: s.Cert}, {Role: RoleTVS, Cert: s.Cert, HashOnly: true}}}))
	seeds = append(seeds, mustBuild(t, BuildOptions{Kind: KindCTL, Signer: s, Blank: true}))
	b, err := Sign("x.sgn", []byte("<a/>"), s, SHA512)
	if err != nil {
		t.Fatal(err)
	}
	seeds = append(seeds, b)
	b, err = SignEncrypted("x.enc.sgn", []byte("<a/>"), s.Cert, s, SHA1)
	if err != nil {
		t.Fatal(err)
	}
	return append(seeds, b)
}

// edgeInputs are hand-written corner cases, plus (as rows named "fuzz: ...")
// any input the fuzzer ever found to fail checkParse. Each must parse or
// fail cleanly.
var edgeInputs = []struct {
	name string
	hex  string
}{
	{"header of only VERSION and HEADERLENGTH 12", "0100020102020002000c0d0d"},
	{"container at the very end of the header", "01000201020200020010030000070000"},
	{"fuzz: unknown leaf before HEADERLENGTH overruns the file", "0100023030303030"},
	{"padding inside a container", "0100020102020002001403000d0d0d0d0d0d0d0d0d0d0d"},
}

func TestEdgeInputs(t *testing.T) {
	for _, c := range edgeInputs {
		t.Run(c.name, func(t *testing.T) {
			b, err := hex.DecodeString(c.hex)
			if err != nil {
				t.Fatal(err)
			}
			checkParse(t, b)
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add("", s)
		f.Add("ITLFile.tlv", s)
	}
	for _, c := range edgeInputs {
		b, _ := hex.DecodeString(c.hex)
		f.Add("CTLFile.tlv", b)
	}
	f.Fuzz(func(t *testing.T, name string, b []byte) {
		checkParse(t, b, name)
	})
}

// checkParse parses b and, when that succeeds, checks the invariants every
// parsed file holds and runs everything a caller could do with it.
func checkParse(t *testing.T, b []byte, names ...string) {
	name := ""
	if len(names) > 0 {
		name = names[0]
	}
	orig := bytes.Clone(b)
	f, err := ParseNamed(name, b)
	if !bytes.Equal(orig, b) {
		t.Fatal("Parse changed its input")
	}
	if err != nil {
		if fe, ok := err.(*FormatError); ok && (fe.Offset < 0 || fe.Offset > len(b)) {
			t.Fatalf("error offset %d outside a %d-byte file", fe.Offset, len(b))
		}
		return
	}
	h := f.Header
	if h.Length > len(b) || h.Length%4 != 0 || f.sigStart < 0 || f.sigEnd > h.Length {
		t.Fatalf("header length %d, signature %d..%d, file %d", h.Length, f.sigStart, f.sigEnd, len(b))
	}
	for _, e := range h.Elements {
		if e.Offset < 0 || e.Offset+3+len(e.Value) > h.Length && e.Value != nil {
			t.Fatalf("header element at %d outside the header", e.Offset)
		}
		_ = e.Text()
	}
	next := h.Length
	for i, r := range f.Records {
		if r.Offset != next || r.Length < 5 || r.Offset+r.Length > len(b) {
			t.Fatalf("record %d at %d+%d, expected at %d", i+1, r.Offset, r.Length, next)
		}
		for _, e := range r.Elements {
			if e.Offset < r.Offset || e.Offset+3+len(e.Value) > r.Offset+r.Length {
				t.Fatalf("record %d element at %d outside the record", i+1, e.Offset)
			}
			_ = e.Text()
		}
		next += r.Length
		_, _ = r.Key()
		_ = r.KeyDescription()
		_ = r.CertSHA1()
	}
	if f.Kind.IsTrustList() && next != len(b) {
		t.Fatalf("records end at %d, file at %d", next, len(b))
	}
	_ = f.Verify()
	_ = f.IsBlank()
	_ = f.Warnings()
	if f.Kind.IsTrustList() {
		_ = f.VerifyWith(f)
		_ = Evaluate(PhoneState{ITL: f, CTL: f}, name, f)
	}
	_ = Evaluate(PhoneState{}, name, f)
}

// FuzzCiscoName feeds DER names (real ones as seeds) to the name renderer.
func FuzzCiscoName(f *testing.F) {
	p, err := LoadSignerPEM("testdata/seed-signer.pem")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p.Cert.RawSubject)
	file, err := Parse(readFixture(f))
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range file.Records {
		f.Add(r.Cert().RawIssuer)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		s, err := CiscoName(der)
		if err == nil && !sameName(s, s) && s != "" {
			t.Fatalf("%q does not match itself", s)
		}
	})
}

// FuzzParseRole checks that every role ParseRole accepts survives a round
// trip through its short name.
func FuzzParseRole(f *testing.F) {
	for _, s := range []string{"sast", "CCM+TFTP", "21", "app-server", "System Administrator Security Token", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRole(s)
		if err != nil {
			return
		}
		if back, err := ParseRole(r.Short()); err != nil || back != r {
			t.Fatalf("ParseRole(%q) = %d, but %q reads back as %d, %v", s, r, r.Short(), back, err)
		}
	})
}

// FuzzParseSignerPEM must fail cleanly on any input.
func FuzzParseSignerPEM(f *testing.F) {
	b, err := os.ReadFile("testdata/seed-signer.pem")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := ParseSignerPEM(b); err == nil && (s.Cert == nil || s.Key == nil) {
			t.Fatal("ParseSignerPEM returned a signer without certificate or key")
		}
		_, _ = ParseCertPEM(b)
	})
}
