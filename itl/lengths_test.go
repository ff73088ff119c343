package itl

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
)

// recordSize is §3.4: RECORDLENGTH = 5 + Σ(3 + len) over the other TLVs.
func recordSize(valueLens ...int) int {
	n := 5
	for _, l := range valueLens {
		n += 3 + l
	}
	return n
}

// The length sums of itl-format.md §9, re-added from Cisco's dumps with the
// codec's header rule (headerSize, which Build uses) and §3.4.
func TestCiscoDumpLengths(t *testing.T) {
	tests := []struct {
		name                                  string
		subject, serial, issuer, sig, fileLen int
		tag28                                 bool
		signerID                              int
		wantRaw, wantHL                       int
		records                               []int
		wantFile                              int
	}{
		{
			name:    "CUCM 8.x ITL (TAC 116232, the seed's show itl)",
			subject: 76, serial: 10, issuer: 15, sig: 128, fileLen: 12,
			signerID: 110, wantRaw: 294, wantHL: 296,
			records:  []int{1972, 1972, 743, 455},
			wantFile: 5438,
		},
		{
			name:    "CUCM 10.5 tokenless CTL (TAC 118893)",
			subject: 62, serial: 16, issuer: 62, sig: 128, fileLen: 12,
			signerID: 149, wantRaw: 333, wantHL: 336,
			records:  []int{1156, 1156, 1138, 1161},
			wantFile: 4947,
		},
		{
			name:    "CUCM 10.0 non-secure CTL (TAC 118892)",
			subject: 56, serial: 10, issuer: 42, sig: 128, fileLen: 12,
			signerID: 117, wantRaw: 301, wantHL: 304,
			records:  []int{1186, 1186, 33, 1004, 33},
			wantFile: 3746,
		},
		{
			name:    "SCFParser CTL sample",
			subject: 55, serial: 8, issuer: 55, sig: 128, fileLen: 12,
			signerID: 127, wantRaw: 311, wantHL: 312,
		},
		{
			name:    "public certutils ITL (testdata)",
			subject: 23, serial: 16, issuer: 23, sig: 256, fileLen: 12, tag28: true,
			signerID: 71, wantRaw: 388, wantHL: 388,
			records:  []int{1484, 1675, 1692, 2585, 2546},
			wantFile: 10370,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := (3 + tc.subject) + (3 + tc.serial) + (3 + tc.issuer); got != tc.signerID {
				t.Errorf("SIGNERID children add to %d, dump says %d", got, tc.signerID)
			}
			raw, hl := headerSize(tc.subject, tc.serial, tc.issuer, tc.sig, tc.fileLen, tc.tag28, 0)
			if raw != tc.wantRaw || hl != tc.wantHL {
				t.Errorf("header %d raw, %d padded; want %d and HEADERLENGTH %d", raw, hl, tc.wantRaw, tc.wantHL)
			}
			if tc.records == nil {
				return
			}
			sum := hl
			for _, r := range tc.records {
				sum += r
			}
			if sum != tc.wantFile {
				t.Errorf("header + records = %d, file length %d", sum, tc.wantFile)
			}
		})
	}
}

func TestCiscoDumpRecordLengths(t *testing.T) {
	tests := []struct {
		name string
		lens []int
		want int
	}{
		// DNSNAME 2, SUBJECT 76, FUNCTION 2, ISSUER 15, SERIAL 10,
		// PUBLICKEY 140, SIGNATURE 256, CERTIFICATE 1442.
		{"8.x ITL SAST / CCM+TFTP record", []int{2, 76, 2, 15, 10, 140, 256, 1442}, 1972},
		// ... CERTHASH 20 and HASH ALGORITHM 1 instead of the certificate.
		{"8.x ITL TVS record (hash-only)", []int{2, 76, 2, 76, 8, 270, 256, 20, 1}, 743},
		{"8.x ITL CAPF record (hash-only)", []int{2, 61, 2, 61, 8, 140, 128, 20, 1}, 455},
		// DNSNAME "10.48.47.153"+NUL, FUNCTION, IPADDRESS.
		{"non-secure CTL empty CCM+TFTP record", []int{13, 2, 4}, 33},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := recordSize(tc.lens...); got != tc.want {
				t.Errorf("RECORDLENGTH %d, dump says %d", got, tc.want)
			}
		})
	}
}

// The Cisco name of TAC 118893's signer is 61 characters plus a NUL: the
// dump's 62, which only holds with ";" and no spaces.
func TestCiscoNameLength(t *testing.T) {
	name := ciscoSubject("cucm-1051-a-pub")
	der, err := asn1.Marshal(name.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	got, err := CiscoName(der)
	if err != nil {
		t.Fatal(err)
	}
	const want = "CN=cucm-1051-a-pub;OU=TAC;O=Cisco;L=Krakow;ST=Malopolska;C=PL"
	if got != want || len(got)+1 != 62 {
		t.Errorf("CiscoName = %q (%d+1 bytes), want %q (62)", got, len(got), want)
	}
	multi := pkix.RDNSequence{
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "a"}, {Type: asn1.ObjectIdentifier{2, 5, 4, 11}, Value: "b"}},
		{{Type: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, Value: "x@example.com"}},
		{{Type: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99}, Value: "z"}},
	}
	der, _ = asn1.Marshal(multi)
	if got, _ := CiscoName(der); got != "CN=a+OU=b;emailAddress=x@example.com;1.3.6.1.4.1.99=z" {
		t.Errorf("CiscoName(multi-valued) = %q", got)
	}
	if _, err := CiscoName([]byte{0x30, 0x05}); err == nil {
		t.Error("CiscoName accepted truncated DER")
	}
}

func TestSameName(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"identical", "CN=a;O=b", "CN=a;O=b", true},
		{"comma vs semicolon", "CN=SAST;O=SAST;OU=SAST", "CN=SAST,O=SAST,OU=SAST", true},
		{"space after separator (HTML dump)", "CN=x; OU=TAC;O=Cisco", "CN=x;OU=TAC;O=Cisco", true},
		{"key case (eToken dump)", "cn=Cisco Manufacturing CA;o=Cisco Systems", "CN=Cisco Manufacturing CA;O=Cisco Systems", true},
		{"escaped comma", `CN=a\,b;O=c`, "CN=a,b;O=c", true},
		{"different value", "CN=a;O=b", "CN=a;O=c", false},
		{"different order", "CN=a;O=b", "O=b;CN=a", false},
		{"empty never matches", "", "", false},
		{"space inside a value counts", "CN=a b", "CN=ab", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameName(tc.a, tc.b); got != tc.want {
				t.Errorf("sameName(%q, %q) = %v", tc.a, tc.b, got)
			}
		})
	}
}

// Build writes exactly the header size the §2.4 rule predicts, for every
// key size and with and without tag 28.
func TestBuildHeaderMatchesRule(t *testing.T) {
	p := LoadTestPKI(t)
	for _, tc := range []struct {
		name string
		s    *Signer
		sv   *Version
	}{
		{"1024-bit", p.CM1024, nil},
		{"2048-bit", p.TFTP, nil},
		{"2048-bit with signer version", p.Recovery, &Version{1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mustBuild(t, BuildOptions{Signer: tc.s, SignerVersion: tc.sv})
			f := mustParse(t, "ITLFile.tlv", b)
			subj, _ := CiscoName(tc.s.Cert.RawSubject)
			iss, _ := CiscoName(tc.s.Cert.RawIssuer)
			_, hl := headerSize(len(subj)+1, len(tc.s.Cert.SerialNumber.Bytes()), len(iss)+1, tc.s.Cert.PublicKey.(interface{ Size() int }).Size(), len("ITLFile.tlv")+1, tc.sv != nil, 0)
			if f.Header.Length != hl || hl%4 != 0 {
				t.Errorf("HEADERLENGTH %d, rule says %d", f.Header.Length, hl)
			}
			if (f.Header.SignerVersion != nil) != (tc.sv != nil) {
				t.Errorf("signer version %v", f.Header.SignerVersion)
			}
			for i, r := range f.Records {
				var lens []int
				for _, e := range r.Elements[1:] {
					lens = append(lens, e.Length)
				}
				if recordSize(lens...) != r.Length {
					t.Errorf("record %d: RECORDLENGTH %d, TLVs add to %d", i+1, r.Length, recordSize(lens...))
				}
			}
		})
	}
}
