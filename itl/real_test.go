package itl

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"
)

// readFixture reads the certutils ITL copied from shared/fixtures/real (see
// testdata/README.md for its provenance).
func readFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/ITLFile-certutils.tlv")
	if err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != "17156172182b66cbb4f8a4c51463702c8fa62ebea47ffe86ad66543c20d744eb" {
		t.Fatal("testdata/ITLFile-certutils.tlv is not the published fixture")
	}
	return b
}

func TestRealCertutilsITL(t *testing.T) {
	b := readFixture(t)
	f, err := ParseNamed("ITLFile.tlv", b)
	if err != nil {
		t.Fatal(err)
	}
	h := f.Header
	if f.Kind != KindITL {
		t.Errorf("kind %s, want ITL", f.Kind)
	}
	if h.Length != 388 || h.Padding != 0 {
		t.Errorf("HEADERLENGTH %d padding %d, want 388 and 0", h.Length, h.Padding)
	}
	if h.Version != (Version{1, 2}) {
		t.Errorf("version %s, want 1.2", h.Version)
	}
	if h.SignerVersion == nil || *h.SignerVersion != (Version{1, 0}) {
		t.Errorf("signer version %v, want 1.0", h.SignerVersion)
	}
	if h.Digest != SHA1 || h.ModulusCode != 2 || len(h.Signature) != 256 {
		t.Errorf("digest %s modulus code %d signature %d bytes, want SHA-1, 2, 256", h.Digest, h.ModulusCode, len(h.Signature))
	}
	if h.Signer.Subject != "CN=SAST,O=SAST,OU=SAST" || h.Signer.Issuer != "CN=SAST,O=SAST,OU=SAST" {
		t.Errorf("signer %v", h.Signer)
	}
	if h.Filename != "ITLFile.tlv" {
		t.Errorf("filename %q", h.Filename)
	}
	wantLen := []int{1484, 1675, 1692, 2585, 2546}
	wantRole := []Role{RoleSAST, RoleCCM, RoleCCM, RoleAppServer, RoleAppServer}
	if len(f.Records) != len(wantLen) {
		t.Fatalf("%d records, want %d", len(f.Records), len(wantLen))
	}
	sum := h.Length
	for i, r := range f.Records {
		if r.Length != wantLen[i] || r.Role != wantRole[i] {
			t.Errorf("record %d: length %d role %s, want %d %s", i+1, r.Length, r.Role, wantLen[i], wantRole[i])
		}
		if r.Cert() == nil {
			t.Errorf("record %d: certificate did not parse", i+1)
		}
		sum += r.Length
	}
	if sum != len(b) || len(b) != 10370 {
		t.Errorf("header + records = %d, file is %d, want 10370", sum, len(b))
	}
	if err := f.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if i := f.Find(h.Signer, RoleSAST); i != 0 {
		t.Errorf("signer record index %d, want 0", i)
	}
	if f.IsBlank() {
		t.Error("IsBlank on a list without empty entries")
	}
	if m := f.SignedMessage(); len(m) != len(b)-3-256 || m[0] != 1 || !bytes.Equal(m[len(m)-100:], b[len(b)-100:]) {
		t.Errorf("signed message is %d bytes, want %d", len(m), len(b)-259)
	}
	t.Logf("warnings: %q", f.Warnings())
}
