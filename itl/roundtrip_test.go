package itl_test

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ctftp/ctftp/itl"
)

var buildTime = time.Date(2011, 7, 27, 14, 16, 24, 0, time.UTC)

// The spec reader must accept the real certutils file, and its Cisco-style
// check must notice that certutils does not write Cisco's form (", " names,
// SIGNERID children 4, 6, 5): both halves of the reader can fail.
func TestSpecReaderOnRealITL(t *testing.T) {
	b, err := os.ReadFile("testdata/ITLFile-certutils.tlv")
	if err != nil {
		t.Fatal(err)
	}
	f, err := specRead(b, true)
	if err != nil {
		t.Fatal(err)
	}
	if f.headerLen != 388 || len(f.records) != 5 {
		t.Fatalf("spec reader: HEADERLENGTH %d, %d records", f.headerLen, len(f.records))
	}
	if err := specVerify(f, f, 0); err != nil {
		t.Errorf("spec reader does not verify the real ITL: %v", err)
	}
	if err := specVerify(f, f, 2, 3); err == nil {
		t.Error("spec reader found a TFTP signer in a list that has none")
	}
	if err := specCiscoStyle(f); err == nil {
		t.Error("certutils' file passed the Cisco-form check")
	}
	bad := bytes.Clone(b)
	bad[len(bad)-1] ^= 1
	if g, err := specRead(bad, true); err != nil || specVerify(g, g, 0) == nil {
		t.Errorf("spec reader accepted a changed byte (read error %v)", err)
	}
}

func TestBuildRoundTrip(t *testing.T) {
	p := itl.LoadTestPKI(t)
	tests := []struct {
		name      string
		opts      itl.BuildOptions
		wantRoles []itl.Role
		hashOnly  []bool
		blank     bool
	}{
		{
			name: "CUCM 8.x ITL, 1024-bit CallManager, hash-only TVS and CAPF, SHA-1",
			opts: itl.BuildOptions{Signer: p.CM1024, Records: []itl.RecordSpec{
				{Role: itl.RoleCCMTFTP, Cert: p.CM1024.Cert},
				{Role: itl.RoleTVS, Cert: p.TVS.Cert, HashOnly: true},
				{Role: itl.RoleCAPF, Cert: p.CAPF.Cert, HashOnly: true},
			}},
			wantRoles: []itl.Role{itl.RoleSAST, itl.RoleCCMTFTP, itl.RoleTVS, itl.RoleCAPF},
			hashOnly:  []bool{false, false, true, true},
		},
		{
			name: "12.x ITL signed by ITLRecovery, 2048-bit, SHA-512",
			opts: itl.BuildOptions{Signer: p.Recovery, Digest: itl.SHA512, Records: []itl.RecordSpec{
				{Role: itl.RoleTFTP, Cert: p.TFTP.Cert},
				{Role: itl.RoleTVS, Cert: p.TVS.Cert},
				{Role: itl.RoleCAPF, Cert: p.CAPF.Cert},
			}},
			wantRoles: []itl.Role{itl.RoleSAST, itl.RoleTFTP, itl.RoleTVS, itl.RoleCAPF},
			hashOnly:  []bool{false, false, false, false},
		},
		{
			name: "tokenless CTL with two SAST, DNS names and addresses",
			opts: itl.BuildOptions{Kind: itl.KindCTL, Signer: p.TFTP, Records: []itl.RecordSpec{
				{Role: itl.RoleSAST, Cert: p.TFTP.Cert, DNSName: "cucm-1051-a-pub"},
				{Role: itl.RoleSAST, Cert: p.Recovery.Cert},
				{Role: itl.RoleCCMTFTP, Cert: p.TFTP.Cert, DNSName: "cucm-1051-a-pub", IP: netip.MustParseAddr("10.48.47.153")},
				{Role: itl.RoleCAPF, Cert: p.CAPF.Cert, DNSName: "10.48.47.153"},
			}},
			wantRoles: []itl.Role{itl.RoleSAST, itl.RoleSAST, itl.RoleCCMTFTP, itl.RoleCAPF},
			hashOnly:  []bool{false, false, false, false},
		},
		{
			name: "rollback ITL: TFTP and TVS entries emptied",
			opts: itl.BuildOptions{Signer: p.Recovery, Blank: true, Records: []itl.RecordSpec{
				{Role: itl.RoleCCMTFTP, Cert: p.TFTP.Cert},
				{Role: itl.RoleTVS, Cert: p.TVS.Cert},
				{Role: itl.RoleCAPF, Cert: p.CAPF.Cert},
			}},
			wantRoles: []itl.Role{itl.RoleSAST, itl.RoleCCMTFTP, itl.RoleTVS, itl.RoleCAPF},
			hashOnly:  []bool{false, false, false, false},
			blank:     true,
		},
		{
			name:      "rollback ITL from a signer alone",
			opts:      itl.BuildOptions{Signer: p.CM1024, Blank: true},
			wantRoles: []itl.Role{itl.RoleSAST, itl.RoleTFTP, itl.RoleTVS},
			hashOnly:  []bool{false, false, false},
			blank:     true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Timestamp = buildTime
			b, err := itl.Build(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			name := "ITLFile.tlv"
			wantKind := itl.KindITL
			if tc.opts.Kind == itl.KindCTL {
				name, wantKind = "CTLFile.tlv", itl.KindCTL
			}
			f, err := itl.ParseNamed(name, b)
			if err != nil {
				t.Fatal(err)
			}
			if f.Kind != wantKind || f.Header.Filename != name {
				t.Errorf("kind %s filename %q, want %s %q", f.Kind, f.Header.Filename, wantKind, name)
			}
			if err := f.Verify(); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if f.IsBlank() != tc.blank {
				t.Errorf("IsBlank %v, want %v", f.IsBlank(), tc.blank)
			}
			if !f.Header.Timestamp.Equal(buildTime) {
				t.Errorf("timestamp %v", f.Header.Timestamp)
			}
			if len(f.Records) != len(tc.wantRoles) {
				t.Fatalf("%d records, want %d", len(f.Records), len(tc.wantRoles))
			}
			for i := range f.Records {
				r := &f.Records[i]
				if r.Role != tc.wantRoles[i] || r.HashOnly() != tc.hashOnly[i] {
					t.Errorf("record %d: %s hash-only %v, want %s %v", i+1, r.Role, r.HashOnly(), tc.wantRoles[i], tc.hashOnly[i])
				}
				if tc.blank && (r.Role == itl.RoleTFTP || r.Role == itl.RoleCCMTFTP || r.Role == itl.RoleTVS) && !r.Empty() {
					t.Errorf("record %d (%s) of a rollback list is not empty", i+1, r.Role)
				}
			}
			if tc.opts.Digest == itl.SHA512 && f.Header.Digest != itl.SHA512 {
				t.Errorf("digest %s", f.Header.Digest)
			}

			// The independent reader: certutils-style verification and
			// CUCM-style form.
			sf, err := specRead(b, true)
			if err != nil {
				t.Fatal(err)
			}
			if err := specVerify(sf, sf, 0); err != nil {
				t.Errorf("spec reader: %v", err)
			}
			if err := specCiscoStyle(sf); err != nil {
				t.Errorf("spec reader, Cisco form: %v", err)
			}
			if sf.headerLen != f.Header.Length || len(sf.records) != len(f.Records) {
				t.Errorf("spec reader sees HEADERLENGTH %d and %d records, codec %d and %d", sf.headerLen, len(sf.records), f.Header.Length, len(f.Records))
			}
			if want := strings.Count(sf.signerName, ";"); want < 1 && tc.opts.Signer == p.TFTP {
				t.Errorf("signer name %q not in ; form", sf.signerName)
			}
		})
	}
}

func TestSignRoundTrip(t *testing.T) {
	p := itl.LoadTestPKI(t)
	itlFile := mustBuildExt(t, itl.BuildOptions{Signer: p.Recovery, Records: []itl.RecordSpec{
		{Role: itl.RoleTFTP, Cert: p.TFTP.Cert},
		{Role: itl.RoleCAPF, Cert: p.Other.Cert},
	}})
	trust, err := itl.ParseNamed("ITLFile.tlv", itlFile)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`<?xml version="1.0"?><device><fullConfig>true</fullConfig></device>` + "\n")
	tests := []struct {
		name    string
		signer  *itl.Signer
		digest  itl.Digest
		wantErr error
	}{
		{"TFTP signer, SHA-1", p.TFTP, itl.SHA1, nil},
		{"TFTP signer, SHA-512", p.TFTP, itl.SHA512, nil},
		{"signer listed only as CAPF", p.Other, itl.SHA1, itl.ErrSignerNotFound},
		{"SAST signer is not a TFTP signer", p.Recovery, itl.SHA1, itl.ErrSignerNotFound},
		{"unknown signer", p.CM1024, itl.SHA1, itl.ErrSignerNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const name = "SEP0011215A1AE3.cnf.xml.sgn"
			b, err := itl.Sign(name, payload, tc.signer, tc.digest)
			if err != nil {
				t.Fatal(err)
			}
			f, err := itl.ParseNamed(name, b)
			if err != nil {
				t.Fatal(err)
			}
			if f.Kind != itl.KindSGN || !bytes.Equal(f.Payload, payload) || f.Header.Version != (itl.Version{Major: 1, Minor: 0}) {
				t.Fatalf("kind %s version %s payload %q", f.Kind, f.Header.Version, f.Payload)
			}
			if !errors.Is(f.Verify(), itl.ErrNeedTrustList) {
				t.Error("Verify of a .sgn did not ask for a trust list")
			}
			err = f.VerifyWith(trust)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("VerifyWith: %v, want %v", err, tc.wantErr)
			}
			sf, err := specRead(b, false)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := specRead(itlFile, true)
			if err := specVerify(sf, st, 2, 3); (err == nil) != (tc.wantErr == nil) {
				t.Errorf("spec reader: %v, want error %v", err, tc.wantErr)
			}
			if !bytes.Equal(b[sf.headerLen:], payload) {
				t.Error("spec reader: payload does not start at HEADERLENGTH")
			}
		})
	}
}

func TestEncryptRoundTrip(t *testing.T) {
	p := itl.LoadTestPKI(t)
	trust := mustParseExt(t, "ITLFile.tlv", mustBuildExt(t, itl.BuildOptions{Signer: p.TFTP, Records: []itl.RecordSpec{
		{Role: itl.RoleCCMTFTP, Cert: p.TFTP.Cert},
	}}))
	for _, size := range []int{0, 1, 15, 16, 17, 7652} {
		plain := bytes.Repeat([]byte("<device/>"), size/9+1)[:size]
		const name = "SEP0011215A1AE3.cnf.xml.enc.sgn"
		b, err := itl.SignEncrypted(name, plain, p.Phone.Cert, p.TFTP, itl.SHA512)
		if err != nil {
			t.Fatal(err)
		}
		f := mustParseExt(t, name, b)
		e := f.Encryption
		if f.Kind != itl.KindENCSGN || e == nil || f.Header.Version != (itl.Version{Major: 2, Minor: 0}) {
			t.Fatalf("size %d: kind %s encryption %v version %s", size, f.Kind, e, f.Header.Version)
		}
		if len(e.IV) != 16 || e.Padding < 1 || e.Padding > 16 || (size+e.Padding)%16 != 0 || e.KeySize != 2048 || len(e.Key) != 256 || e.HashAlgorithm != itl.SHA512 || len(e.Hash) != 64 {
			t.Errorf("size %d: metadata %+v", size, e)
		}
		if err := f.VerifyWith(trust); err != nil {
			t.Errorf("size %d: VerifyWith: %v", size, err)
		}
		got, err := f.Decrypt(p.Phone.Key.(*rsa.PrivateKey))
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("size %d: Decrypt = %d bytes, %v", size, len(got), err)
		}
		if _, err := f.Decrypt(p.Other.Key.(*rsa.PrivateKey)); !errors.Is(err, itl.ErrDecrypt) {
			t.Errorf("size %d: Decrypt with the wrong key: %v", size, err)
		}
		sf, err := specRead(b, false)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := specRead(trust.Bytes(), true)
		if err := specVerify(sf, st, 2, 3); err != nil {
			t.Errorf("size %d: spec reader: %v", size, err)
		}
	}
}

func mustBuildExt(t *testing.T, o itl.BuildOptions) []byte {
	t.Helper()
	o.Timestamp = buildTime
	b, err := itl.Build(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParseExt(t *testing.T, name string, b []byte) *itl.File {
	t.Helper()
	f, err := itl.ParseNamed(name, b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
