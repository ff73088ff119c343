package itl

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"sync"
	"testing"
	"time"
)

// TestPKI is a small CUCM-like PKI, generated once per test binary (RSA
// key generation is the slow part of these tests, more so under -race).
// It is exported to the package's external tests (package itl_test), which
// hold the independent spec reader.
type TestPKI struct {
	CA       *Signer // an AD-style issuing CA (2048)
	CM1024   *Signer // a CUCM 8.x CallManager.pem, 1024-bit, issued by CA
	TFTP     *Signer // a CallManager.pem, 2048-bit, issued by CA
	Recovery *Signer // ITLRecovery, 2048-bit, self-signed
	TVS      *Signer // TVS.pem, 1024-bit, self-signed
	CAPF     *Signer // CAPF, 1024-bit, self-signed
	Other    *Signer // another cluster's CallManager.pem, 2048-bit, self-signed
	Phone    *Signer // a phone LSC, 2048-bit: the .enc.sgn recipient
}

// ciscoSubject is a name in CUCM's attribute order (CN first), which
// pkix.Name's own fields cannot express.
func ciscoSubject(cn string) pkix.Name {
	atv := func(oid int, v string) pkix.AttributeTypeAndValue {
		return pkix.AttributeTypeAndValue{Type: asn1.ObjectIdentifier{2, 5, 4, oid}, Value: v}
	}
	return pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
		atv(3, cn), atv(11, "TAC"), atv(10, "Cisco"), atv(7, "Krakow"), atv(8, "Malopolska"), atv(6, "PL"),
	}}
}

var pkiOnce = sync.OnceValues(func() (*TestPKI, error) {
	var p TestPKI
	from := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	valid := ValidFrom(from, 20*365*24*time.Hour)
	steps := []struct {
		dst  **Signer
		cn   string
		bits int
		opts func() []SignerOption
	}{
		{&p.CA, "JASBURNS-AD", 2048, func() []SignerOption { return []SignerOption{AsCA()} }},
		{&p.CM1024, "CUCM8-Publisher.example", 1024, func() []SignerOption { return []SignerOption{IssuedBy(p.CA)} }},
		{&p.TFTP, "cucm-1051-a-pub", 2048, func() []SignerOption {
			return []SignerOption{IssuedBy(p.CA), WithSubject(ciscoSubject("cucm-1051-a-pub"))}
		}},
		{&p.Recovery, "ITLRECOVERY_cucm-1051-a-pub", 2048, func() []SignerOption { return nil }},
		{&p.TVS, "cucm-1051-a-pub-tvs", 1024, func() []SignerOption { return nil }},
		{&p.CAPF, "CAPF-9c4cba7d", 1024, func() []SignerOption { return []SignerOption{WithSubject(ciscoSubject("CAPF-9c4cba7d"))} }},
		{&p.Other, "other-cluster-pub", 2048, func() []SignerOption { return nil }},
		{&p.Phone, "SEP0011215A1AE3", 2048, func() []SignerOption { return nil }},
	}
	for _, s := range steps {
		sg, err := NewSigner(s.cn, s.bits, append(s.opts(), valid)...)
		if err != nil {
			return nil, err
		}
		*s.dst = sg
	}
	return &p, nil
})

// LoadTestPKI returns the shared test PKI.
func LoadTestPKI(t testing.TB) *TestPKI {
	t.Helper()
	p, err := pkiOnce()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fixedTime is the TIMESTAMP of every test-built file, so that a build
// reproduces byte for byte (PKCS#1 v1.5 signatures are deterministic).
var fixedTime = time.Date(2011, 7, 27, 14, 16, 24, 0, time.UTC)

// mustBuild builds a trust list or fails the test.
func mustBuild(t testing.TB, o BuildOptions) []byte {
	t.Helper()
	if o.Timestamp.IsZero() {
		o.Timestamp = fixedTime
	}
	b, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t testing.TB, name string, b []byte) *File {
	t.Helper()
	f, err := ParseNamed(name, b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
