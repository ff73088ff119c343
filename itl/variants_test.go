package itl

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"strings"
	"testing"
)

// Variants real writers produce (or could): each must parse and verify.
func TestParseVariants(t *testing.T) {
	p := LoadTestPKI(t)
	s := p.Recovery
	sast := certRecord(t, s.Cert, RoleSAST, "23456789")
	tftp := certRecord(t, p.TFTP.Cert, RoleCCMTFTP, "23456789")
	subj, _ := CiscoName(s.Cert.RawSubject)
	serial := s.Cert.SerialNumber.Bytes()
	hdr := func(id []byte) [][]byte {
		return [][]byte{id, sigInfo(SHA1, 2048), sigHere, fileName("ITLFile.tlv"), stamp()}
	}
	tests := []struct {
		name  string
		c     craft
		check func(t *testing.T, f *File)
	}{
		{
			name: "Cisco order",
			c:    craft{elems: ciscoHeader(t, s, "ITLFile.tlv"), body: join(sast, tftp)},
		},
		{
			name: "SIGNERID children 4, 6, 5 (certutils since Aug 2024)",
			c:    craft{elems: hdr(signerID(t, s, "465")), body: join(sast, tftp)},
		},
		{
			name: "signer version tag 28 after HEADERLENGTH",
			c:    craft{elems: append([][]byte{tlv(tagSignerVersion, 1, 1)}, ciscoHeader(t, s, "ITLFile.tlv")...), body: sast},
			check: func(t *testing.T, f *File) {
				if f.Header.SignerVersion == nil || *f.Header.SignerVersion != (Version{1, 1}) {
					t.Errorf("signer version %v", f.Header.SignerVersion)
				}
			},
		},
		{
			name: "unknown header leaf tags at top level and inside a container",
			c: craft{elems: [][]byte{signerID(t, s, "456"),
				cont(tagSignatureInfo, tlv(tagDigestAlgo, 1), tlv(40, 1, 2, 3), cont(tagSigAlgoInfo, tlv(tagSigAlgo, 0), tlv(tagSigModulus, 2))),
				sigHere, tlv(99, 7, 7), fileName("ITLFile.tlv"), stamp()}, body: sast},
			check: func(t *testing.T, f *File) {
				if n := len(f.Warnings()); n < 2 {
					t.Errorf("unknown tags not reported: %q", f.Warnings())
				}
			},
		},
		{
			name: "signer names in certutils' comma form",
			c: craft{elems: hdr(signerIDNamed(serial, strings.ReplaceAll(subj, ";", ","), strings.ReplaceAll(subj, ";", ","), "465")),
				body: join(sast, tftp)},
		},
		{
			name: "signer serial with a leading zero byte",
			c:    craft{elems: hdr(signerIDNamed(append([]byte{0}, serial...), subj, subj, "456")), body: sast},
		},
		{
			name: "header without CANAME: subject and serial identify the signer",
			c:    craft{elems: hdr(signerID(t, s, "45")), body: sast},
		},
		{
			// The signed bytes are the file minus the SIGNATURE element,
			// wherever it sits in the header, so this verifies (itl-format
			// §10 lists "move the SIGNATURE" among the failures; that holds
			// only when it moves out of the header, see the negative tests).
			name: "SIGNATURE moved before SIGNERID",
			c:    craft{elems: [][]byte{sigHere, signerID(t, s, "456"), sigInfo(SHA1, 2048), fileName("ITLFile.tlv"), stamp()}, body: sast},
		},
		{
			name: "records in certutils' order, no DNSNAME",
			c:    craft{elems: ciscoHeader(t, s, "ITLFile.tlv"), body: join(certRecord(t, s.Cert, RoleSAST, "3564789"), certRecord(t, p.TFTP.Cert, RoleTFTP, "3564789"))},
		},
		{
			name: "SAST record without CERTIFICATE: key from PUBLICKEY",
			c:    craft{elems: ciscoHeader(t, s, "ITLFile.tlv"), body: certRecord(t, s.Cert, RoleSAST, "345678")},
			check: func(t *testing.T, f *File) {
				if f.Records[0].Cert() != nil || f.Records[0].KeyDescription() != "RSA 2048 bits" {
					t.Errorf("record key %s", f.Records[0].KeyDescription())
				}
			},
		},
		{
			name: "unknown record tag and an empty non-secure record",
			c: craft{elems: ciscoHeader(t, s, "ITLFile.tlv"), body: join(sast,
				record(tlv(recDNSName, text("10.48.47.153")...), tlv(recFunction, 0, 2), tlv(recIPAddress, 10, 48, 47, 153)),
				record(tlv(recFunction, 0, 21), tlv(30, 1)))},
			check: func(t *testing.T, f *File) {
				if !f.Records[1].Empty() || f.Records[1].DNSName != "10.48.47.153" || !f.IsBlank() {
					t.Errorf("empty record not read: %+v blank=%v", f.Records[1], f.IsBlank())
				}
			},
		},
		{
			name: "SHA-512 digest",
			c:    craft{elems: [][]byte{signerID(t, s, "456"), sigInfo(SHA512, 2048), sigHere, fileName("ITLFile.tlv"), stamp()}, body: sast, hash: crypto.SHA512},
		},
		{
			name: "SHA-256 digest (code 2, verified with a warning)",
			c:    craft{elems: [][]byte{signerID(t, s, "456"), sigInfo(SHA256, 2048), sigHere, fileName("ITLFile.tlv"), stamp()}, body: sast, hash: crypto.SHA256},
			check: func(t *testing.T, f *File) {
				if !strings.Contains(strings.Join(f.Warnings(), "\n"), "SHA-256") {
					t.Errorf("no SHA-256 warning: %q", f.Warnings())
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.signer = s
			b := tc.c.bytes(t)
			f, err := ParseNamed("ITLFile.tlv", b)
			if err != nil {
				t.Fatal(err)
			}
			if f.Header.Length%4 != 0 {
				t.Errorf("HEADERLENGTH %d", f.Header.Length)
			}
			if err := f.Verify(); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

// The .enc.sgn layout of certutils before July 2024, where ENCRYPTIONINFO
// also covers the digest tags 26 and 27, reads and decrypts like the
// current one.
func TestEncSGNOldLayout(t *testing.T) {
	p := LoadTestPKI(t)
	plain := []byte("<device><fullConfig>true</fullConfig></device>")
	const name = "SEP0011215A1AE3.cnf.xml.enc.sgn"
	cur, err := SignEncrypted(name, plain, p.Phone.Cert, p.TFTP, SHA1)
	if err != nil {
		t.Fatal(err)
	}
	cf := mustParse(t, name, cur)
	e := cf.Encryption
	ivInfo := cont(tagEncIVInfo, tlv(tagEncUnknown1, 0), tlv(tagEncIV, e.IV...), tlv(tagEncPadding, 0, byte(e.Padding)))
	keyInfo := cont(tagEncKeyInfo, tlv(tagEncUnknown2, 0), tlv(tagEncKeySize, 0, 128), tlv(tagEncKeyAlgo, 1), tlv(tagEncKey, e.Key...))
	old := cont(tagEncInfo, ivInfo, keyInfo, tlv(tagEncHashAlgo, byte(e.HashAlgorithm)), tlv(tagEncHash, e.Hash...))
	c := craft{version: [2]byte{2, 0}, signer: p.TFTP,
		elems: [][]byte{signerID(t, p.TFTP, "456"), sigInfo(SHA1, 2048), sigHere, fileName(name), stamp(), old},
		body:  cf.Payload}
	f := mustParse(t, name, c.bytes(t))
	if f.Kind != KindENCSGN || f.Encryption.KeySize != 128 || !bytes.Equal(f.Encryption.Hash, e.Hash) {
		t.Fatalf("kind %s encryption %+v", f.Kind, f.Encryption)
	}
	trust := mustParse(t, "ITLFile.tlv", mustBuild(t, BuildOptions{Signer: p.TFTP, Records: []RecordSpec{{Role: RoleCCMTFTP, Cert: p.TFTP.Cert}}}))
	if err := f.VerifyWith(trust); err != nil {
		t.Errorf("VerifyWith: %v", err)
	}
	got, err := f.Decrypt(p.Phone.Key.(*rsa.PrivateKey))
	if err != nil || !bytes.Equal(got, plain) {
		t.Errorf("Decrypt: %q, %v", got, err)
	}
}
