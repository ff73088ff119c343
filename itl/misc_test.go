package itl

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func ecCert(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x4242), Subject: pkix.Name{CommonName: "ec-app"},
		NotBefore: time.Unix(1e9, 0), NotAfter: time.Unix(2e9, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func TestSignerPEM(t *testing.T) {
	p := LoadTestPKI(t)
	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, blk := range blocks {
			b = append(b, pem.EncodeToMemory(blk)...)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	certBlk := func(s *Signer) *pem.Block { return &pem.Block{Type: "CERTIFICATE", Bytes: s.Cert.Raw} }
	pkcs1 := func(s *Signer) *pem.Block {
		return &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(s.Key.(*rsa.PrivateKey))}
	}
	pkcs8 := func(k any) *pem.Block {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	own, err := p.TFTP.PEM()
	if err != nil {
		t.Fatal(err)
	}
	ownPath := filepath.Join(dir, "own.pem")
	if err := os.WriteFile(ownPath, own, 0o600); err != nil {
		t.Fatal(err)
	}
	_, ecKey := ecCert(t)
	tests := []struct {
		name    string
		path    string
		want    *Signer
		wantErr error
	}{
		{"Signer.PEM output", ownPath, p.TFTP, nil},
		{"PKCS#1 key first, then a chain", write("k1.pem", pkcs1(p.TVS), certBlk(p.TVS), certBlk(p.CA)), p.TVS, nil},
		{"PKCS#8 key", write("k8.pem", certBlk(p.CAPF), pkcs8(p.CAPF.Key)), p.CAPF, nil},
		{"certificate alone", write("c.pem", certBlk(p.TVS)), nil, ErrInvalidPEM},
		{"key alone", write("k.pem", pkcs1(p.TVS)), nil, ErrInvalidPEM},
		{"key of another certificate", write("x.pem", certBlk(p.TVS), pkcs1(p.CAPF)), nil, ErrInvalidPEM},
		{"EC key", write("ec.pem", certBlk(p.TVS), pkcs8(ecKey)), nil, ErrUnsupported},
		{"not PEM", write("junk.pem"), nil, ErrInvalidPEM},
		{"missing file", filepath.Join(dir, "absent.pem"), nil, os.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadSignerPEM(tc.path)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !s.Cert.Equal(tc.want.Cert) {
				t.Errorf("loaded %q, want %q", s.Cert.Subject, tc.want.Cert.Subject)
			}
		})
	}

	derPath := filepath.Join(dir, "c.der")
	if err := os.WriteFile(derPath, p.TVS.Cert.Raw, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{ownPath, derPath} {
		c, err := LoadCertPEM(path)
		if err != nil || c == nil {
			t.Errorf("LoadCertPEM(%s): %v", filepath.Base(path), err)
		}
	}
	if _, err := LoadCertPEM(write("nocert.pem", pkcs1(p.TVS))); !errors.Is(err, ErrInvalidPEM) {
		t.Errorf("LoadCertPEM of a key file: %v", err)
	}
}

func TestNewSignerRefusals(t *testing.T) {
	for _, bits := range []int{512, 1000, 3072} {
		if _, err := NewSigner("x", bits); !errors.Is(err, ErrUnsupported) {
			t.Errorf("NewSigner(%d bits): %v", bits, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config (checks off): %v", err)
	}
	err := Config{PhoneSizeLimit: -1, MaxSAST: -2}.Validate()
	if err == nil {
		t.Fatal("negative limits validated")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "phone_size_limit: ") || !strings.HasPrefix(lines[1], "max_sast: ") {
		t.Errorf("Validate = %q, want one line per key", err)
	}
	if err := (Config{PhoneSizeLimit: 100}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "phone_size_limit: ") {
		t.Errorf("100-byte limit: %v", err)
	}
}

func TestHashes(t *testing.T) {
	got := Hashes([]byte("abc"))
	want := Sums{
		MD5:    "900150983cd24fb0d6963f7d28e17f72",
		SHA1:   "a9993e364706816aba3e25717850c26c9cd0d89d",
		SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	}
	if got != want {
		t.Errorf("Hashes(abc) = %+v", got)
	}
}

func TestParseRoleAndDigest(t *testing.T) {
	roles := []struct {
		in   string
		want Role
		ok   bool
	}{
		{"sast", RoleSAST, true}, {"SAST", RoleSAST, true}, {"ccm", RoleCCM, true},
		{"ccm+tftp", RoleCCMTFTP, true}, {"ccm-tftp", RoleCCMTFTP, true}, {"tftp", RoleTFTP, true},
		{"capf", RoleCAPF, true}, {"app-server", RoleAppServer, true}, {"tvs", RoleTVS, true},
		{"System Administrator Security Token", RoleSAST, true}, {"21", RoleTVS, true}, {"99", 99, true},
		{"tftp2", 0, false}, {"", 0, false}, {"70000", 0, false},
	}
	for _, tc := range roles {
		got, err := ParseRole(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseRole(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok {
			if back, err := ParseRole(got.Short()); err != nil || back != got {
				t.Errorf("ParseRole(%q.Short()) = %v, %v", tc.in, back, err)
			}
		}
	}
	if Role(99).String() != "UNKNOWN(99)" || RoleCCMTFTP.String() != "CCM+TFTP" {
		t.Errorf("role names: %s %s", Role(99), RoleCCMTFTP)
	}
	for in, want := range map[string]Digest{"sha1": SHA1, "SHA-512": SHA512, "sha256": SHA256} {
		if got, err := ParseDigest(in); err != nil || got != want {
			t.Errorf("ParseDigest(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseDigest("md5"); err == nil {
		t.Error("ParseDigest(md5) succeeded")
	}
}

func TestBuildErrors(t *testing.T) {
	p := LoadTestPKI(t)
	ec, _ := ecCert(t)
	mixed := &Signer{Cert: p.TVS.Cert, Key: p.CAPF.Key}
	tests := []struct {
		name    string
		opts    BuildOptions
		wantErr error
		wantMsg string
	}{
		{"no signer", BuildOptions{}, ErrUnsupported, "no signer"},
		{"key of another certificate", BuildOptions{Signer: mixed}, ErrInvalidPEM, "does not belong"},
		{"three SAST", BuildOptions{Signer: p.TFTP, Records: []RecordSpec{{Role: RoleSAST, Cert: p.TVS.Cert}, {Role: RoleSAST, Cert: p.CAPF.Cert}}}, nil, "3 SAST records"},
		{"record without certificate", BuildOptions{Signer: p.TFTP, Records: []RecordSpec{{Role: RoleCAPF}}}, nil, "record 2 (CAPF): no certificate"},
		{"SHA-256", BuildOptions{Signer: p.TFTP, Digest: SHA256}, ErrUnsupported, "SHA-256"},
		{"a .sgn is not built", BuildOptions{Kind: KindSGN, Signer: p.TFTP}, ErrUnsupported, "want ITL or CTL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(tc.opts)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Build = %v, want %v saying %q", err, tc.wantErr, tc.wantMsg)
			}
		})
	}
	if _, err := Sign("ITLFile.tlv", []byte("x"), p.TFTP, SHA1); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Sign with a .tlv name: %v", err)
	}
	if _, err := SignEncrypted("x.enc.sgn", []byte("x"), ec, p.TFTP, SHA1); !errors.Is(err, ErrUnsupported) {
		t.Errorf("SignEncrypted to an EC phone: %v", err)
	}

	// EC records are allowed and switch the signer version to 1.1.
	b := mustBuild(t, BuildOptions{Signer: p.TFTP, Records: []RecordSpec{{Role: RoleAppServer, Cert: ec}}})
	f := mustParse(t, "ITLFile.tlv", b)
	if f.Header.SignerVersion == nil || *f.Header.SignerVersion != (Version{1, 1}) {
		t.Errorf("EC record: signer version %v, want 1.1", f.Header.SignerVersion)
	}
	if r := f.Records[1]; len(r.PublicKey) != 65 || r.KeyDescription() != "ECDSA P-256" {
		t.Errorf("EC record key %d bytes, %s", len(r.PublicKey), r.KeyDescription())
	}
}

func TestKindAndWarnings(t *testing.T) {
	p := LoadTestPKI(t)
	itlBytes := mustBuild(t, BuildOptions{Signer: p.Recovery, Records: []RecordSpec{{Role: RoleTFTP, Cert: p.TFTP.Cert}}})
	odd := mustBuild(t, BuildOptions{Signer: p.Recovery, Filename: "trust.bin", Records: []RecordSpec{{Role: RoleTFTP, Cert: p.TFTP.Cert}}})
	sgn, err := Sign("SEP0011215A1AE3.cnf.xml.sgn", []byte("<device/>"), p.TFTP, SHA1)
	if err != nil {
		t.Fatal(err)
	}
	blankCTL := mustBuild(t, BuildOptions{Kind: KindCTL, Signer: p.Recovery, Blank: true, Records: []RecordSpec{{Role: RoleCCMTFTP, Cert: p.TFTP.Cert}}})
	blankITL := mustBuild(t, BuildOptions{Signer: p.Recovery, Blank: true})
	threeSAST := craft{signer: p.Recovery, elems: ciscoHeader(t, p.Recovery, "ITLFile.tlv"), body: join(
		certRecord(t, p.Recovery.Cert, RoleSAST, "3456789"), certRecord(t, p.TVS.Cert, RoleSAST, "3456789"), certRecord(t, p.CAPF.Cert, RoleSAST, "3456789"))}
	tests := []struct {
		name     string
		cfg      Config
		fetched  string
		file     []byte
		wantKind Kind
		warn     string // "" means no warning at all
	}{
		{"ITL by its own name", DefaultConfig(), "ITLFile.tlv", itlBytes, KindITL, ""},
		{"per-device name of the same bytes", DefaultConfig(), "ITLSEP0011215A1AE3.tlv", itlBytes, KindITL, ""},
		{"ITL fetched as CTLFile.tlv: FILENAME wins", DefaultConfig(), "CTLFile.tlv", itlBytes, KindITL, "does not match"},
		{"no telling FILENAME, CTL by the fetched name", DefaultConfig(), "CTLSEP0011215A1AE3.tlv", odd, KindCTL, "does not match"},
		{"no name anywhere: records make it an ITL", DefaultConfig(), "", odd, KindITL, "read as an ITL"},
		{"signed config", DefaultConfig(), "SEP0011215A1AE3.cnf.xml.sgn", sgn, KindSGN, ""},
		{"blank ITL", DefaultConfig(), "ITLFile.tlv", blankITL, KindITL, "blank (rollback) ITL"},
		{"blank CTL", DefaultConfig(), "CTLFile.tlv", blankCTL, KindCTL, "blank CTL"},
		{"ITL above the phone size limit", Config{PhoneSizeLimit: 2 << 10}, "ITLFile.tlv", itlBytes, KindITL, "phones fail to load"},
		{"three SAST records", DefaultConfig(), "ITLFile.tlv", threeSAST.bytes(t), KindITL, "3 SAST records"},
		{"three SAST with the check off", Config{}, "ITLFile.tlv", threeSAST.bytes(t), KindITL, "no TFTP or CCM+TFTP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := tc.cfg.ParseNamed(tc.fetched, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if f.Kind != tc.wantKind {
				t.Errorf("kind %s, want %s", f.Kind, tc.wantKind)
			}
			w := strings.Join(f.Warnings(), "\n")
			if tc.warn == "" && w != "" || !strings.Contains(w, tc.warn) {
				t.Errorf("warnings %q, want %q", w, tc.warn)
			}
		})
	}
}

func TestElementText(t *testing.T) {
	f := mustParse(t, "ITLFile.tlv", readFixture(t))
	got := map[string]string{}
	for _, e := range f.Header.Elements {
		got[e.Name()] = e.Text()
	}
	want := map[string]string{
		"VERSION":           "1.2",
		"SIGNERVERSION":     "1.0",
		"HEADERLENGTH":      "388",
		"SIGNERID":          "71",
		"SIGNERNAME":        "CN=SAST,O=SAST,OU=SAST",
		"SERIALNUMBER":      "6B:A5:DE:3A:26:0B:06:93:37:C7:5B:38:BE:3C:2D:74",
		"SIGNATUREINFO":     "15",
		"DIGESTALGORTITHM":  "SHA-1",
		"SIGNATUREALGOINFO": "8",
		"SIGNATUREMODULUS":  "2048 bits",
		"SIGNATURE":         "",
		"FILENAME":          "ITLFile.tlv",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	r := f.Records[0]
	texts := map[string]string{}
	for _, e := range r.Elements {
		texts[e.Name()] = e.Text()
	}
	if texts["FUNCTION"] != "System Administrator Security Token" || texts["PUBLICKEY"] != "RSA 2048 bits" ||
		!strings.HasSuffix(texts["CERTIFICATE"], "(SHA1 Hash HEX)") || texts["RECORDLENGTH"] != "1484" {
		t.Errorf("record 1 texts %q", texts)
	}
}

func TestWarningsCapped(t *testing.T) {
	p := LoadTestPKI(t)
	var unknown [][]byte
	for i := 0; i < 100; i++ {
		unknown = append(unknown, tlv(40, byte(i)))
	}
	c := craft{signer: p.Recovery, elems: ciscoHeader(t, p.Recovery, "ITLFile.tlv"),
		body: join(certRecord(t, p.Recovery.Cert, RoleSAST, "3456789"), record(unknown...))}
	f := mustParse(t, "ITLFile.tlv", c.bytes(t))
	w := f.Warnings()
	if len(w) != maxWarnings+1 || w[maxWarnings] != "further warnings suppressed" {
		t.Errorf("%d warnings, last %q", len(w), w[len(w)-1])
	}
	if err := f.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
}
