package itl

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// Malformed files (itl-format.md §10 and §11): each must fail to parse with
// a *FormatError at the right offset, never panic.
func TestParseMalformed(t *testing.T) {
	p := LoadTestPKI(t)
	s := p.Recovery
	good := mustBuild(t, BuildOptions{Signer: s, Records: []RecordSpec{{Role: RoleTFTP, Cert: p.TFTP.Cert}}})
	gf := mustParse(t, "ITLFile.tlv", good)
	hl := gf.Header.Length
	rec1 := gf.Records[0].Offset
	sast := certRecord(t, s.Cert, RoleSAST, "3456789")
	elemOffset := func(tag byte) int {
		for _, e := range gf.Header.Elements {
			if e.Tag == tag {
				return e.Offset
			}
		}
		t.Fatalf("no tag %d", tag)
		return 0
	}
	patch := func(off int, v ...byte) []byte {
		b := bytes.Clone(good)
		copy(b[off:], v)
		return b
	}
	u16 := func(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
	signed := func(c craft) func() []byte {
		return func() []byte { c.signer = s; return c.bytes(t) }
	}
	std := func(extra ...[]byte) [][]byte {
		return append([][]byte{signerID(t, s, "456"), sigInfo(SHA1, 2048), sigHere, fileName("ITLFile.tlv"), stamp()}, extra...)
	}

	tests := []struct {
		name    string
		file    func() []byte
		wantOff int // -1: do not check
		wantRec int
		wantMsg string
	}{
		{"empty file", func() []byte { return nil }, 0, 0, "too short"},
		{"four bytes", func() []byte { return []byte{1, 0, 2, 1} }, 0, 0, "too short"},
		{"plain XML, not signed", func() []byte { return []byte("<?xml version=\"1.0\"?><device/>") }, 0, 0, "want VERSION"},
		{"VERSION of length 3", func() []byte { return []byte{1, 0, 3, 1, 2, 0, 2, 0, 0, 0} }, 0, 0, "VERSION has length 3"},
		{"no HEADERLENGTH before FILENAME", func() []byte { return join([]byte{1, 0, 2, 1, 2}, fileName("x")) }, 5, 0, "comes before HEADERLENGTH"},
		{"file ends before HEADERLENGTH", func() []byte { return []byte{1, 0, 2, 1, 2, 2, 0} }, 5, 0, "no HEADERLENGTH"},
		{"HEADERLENGTH not a multiple of 4", func() []byte { return patch(8, u16(hl+2)...) }, 5, 0, "not a multiple of 4"},
		{"HEADERLENGTH past the end of the file", func() []byte { return patch(8, u16(len(good)+4-len(good)%4)...) }, 5, 0, "past the end"},
		{"HEADERLENGTH inside its own element", func() []byte { return patch(8, 0, 8) }, 5, 0, "ends inside"},
		{"HEADERLENGTH cuts the header short", func() []byte { return patch(8, u16(hl-4)...) }, -1, 0, "overruns the header"},
		{"RECORDLENGTH overruns the end of the file", func() []byte { return patch(rec1+3, u16(len(good)-rec1+1)...) }, rec1, 1, "overruns the end of the file"},
		{"RECORDLENGTH less than 5", func() []byte { return patch(rec1+3, 0, 4) }, rec1, 1, "less than 5"},
		{"file truncated inside the last record", func() []byte { return good[:len(good)-10] }, gf.Records[1].Offset, 2, "overruns the end"},
		{"first record tag is not RECORDLENGTH", func() []byte { return patch(rec1, 3) }, rec1, 1, "want RECORDLENGTH"},
		{"RECORDLENGTH of length 4", func() []byte { return patch(rec1+1, 0, 4) }, rec1, 1, "RECORDLENGTH has length 4"},
		{"three stray bytes after the last record", func() []byte { return append(bytes.Clone(good), 1, 0, 2) }, len(good), 3, "truncated"},
		{"FILENAME length past HEADERLENGTH", func() []byte { return patch(elemOffset(tagFilename)+1, 0x01, 0x00) }, elemOffset(tagFilename), 0, "overruns the header"},
		{"SIGNERID child overruns its container", func() []byte {
			off := elemOffset(tagSignerID)
			return patch(off+1, u16(int(binary.BigEndian.Uint16(good[off+1:]))-5)...)
		}, -1, 0, "overruns its container SIGNERID"},
		{"record TLV head cut by RECORDLENGTH", signed(craft{elems: std(), body: join(sast, record(tlv(recFunction, 0, 0), []byte{recPublicKey, 0}))}), -1, 2, "truncated TLV"},
		{"record TLV overruns its record", signed(craft{elems: std(), body: join(sast, record([]byte{recCertificate, 0xFF, 0xFF}))}), -1, 2, "overruns the record"},
		{"SIGNATURE missing", signed(craft{elems: [][]byte{signerID(t, s, "456"), sigInfo(SHA1, 2048), fileName("ITLFile.tlv"), stamp()}, body: sast}), -1, 0, "no SIGNATURE"},
		{"SIGNATURE moved after the header", func() []byte {
			f := mustParse(t, "ITLFile.tlv", good)
			c := craft{elems: [][]byte{signerID(t, s, "456"), sigInfo(SHA1, 2048), fileName("ITLFile.tlv"), stamp()},
				body: join(tlv(tagSignature, f.Header.Signature...), good[hl:])}
			return c.bytes(t)
		}, -1, 0, "no SIGNATURE"},
		{"duplicate SIGNATURE", signed(craft{elems: std(tlv(tagSignature, make([]byte, 256)...)), body: sast}), -1, 0, "duplicate SIGNATURE"},
		{"empty SIGNATURE", func() []byte {
			c := craft{elems: [][]byte{signerID(t, s, "456"), sigInfo(SHA1, 2048), tlv(tagSignature), fileName("x.tlv"), stamp()}, body: sast}
			return c.bytes(t)
		}, -1, 0, "SIGNATURE (tag 12) is empty"},
		{"no DIGESTALGO", signed(craft{elems: [][]byte{signerID(t, s, "456"), cont(tagSignatureInfo, cont(tagSigAlgoInfo, tlv(tagSigAlgo, 0), tlv(tagSigModulus, 2))), sigHere, fileName("x.tlv"), stamp()}, body: sast}), -1, 0, "no DIGESTALGO"},
		{"no SERIALNUMBER", signed(craft{elems: [][]byte{signerIDNamed(nil, "CN=a", "CN=a", "46"), sigInfo(SHA1, 2048), sigHere, fileName("x.tlv"), stamp()}, body: sast}), -1, 0, "no SERIALNUMBER"},
		{"empty SERIALNUMBER", signed(craft{elems: [][]byte{signerIDNamed(nil, "CN=a", "CN=a", "456"), sigInfo(SHA1, 2048), sigHere, fileName("x.tlv"), stamp()}, body: sast}), -1, 0, "SERIALNUMBER (tag 5) is empty"},
		{"no signer name at all", signed(craft{elems: [][]byte{signerIDNamed([]byte{1}, "", "", "5"), sigInfo(SHA1, 2048), sigHere, fileName("x.tlv"), stamp()}, body: sast}), -1, 0, "neither CANAME"},
		{"TIMESTAMP of length 3", signed(craft{elems: [][]byte{signerID(t, s, "456"), sigInfo(SHA1, 2048), sigHere, fileName("x.tlv"), tlv(tagTimestamp, 1, 2, 3)}, body: sast}), -1, 0, "has length 3, want 4"},
		{"containers nested too deep", signed(craft{elems: [][]byte{cont(tagEncInfo, cont(tagEncIVInfo, cont(tagEncKeyInfo, cont(tagSignerID, cont(tagSignatureInfo))))), sigHere}, body: sast}), -1, 0, "nested deeper than 4"},
		{"truncated TLV at the end of a container", signed(craft{elems: [][]byte{signerID(t, s, "456"), cont(tagSignatureInfo, tlv(tagDigestAlgo, 1), []byte{40, 0}), sigHere, fileName("x.tlv"), stamp()}, body: sast}), -1, 0, "truncated TLV: 2 bytes left in its container SIGNATUREINFO"},
		{"FUNCTION of length 3", signed(craft{elems: std(), body: join(sast, record(tlv(recFunction, 0, 0, 2)))}), -1, 2, "FUNCTION (tag 4) has length 3"},
		{"duplicate FUNCTION in a record", signed(craft{elems: std(), body: join(sast, record(tlv(recFunction, 0, 2), tlv(recFunction, 0, 3)))}), -1, 2, "duplicate FUNCTION"},
		{"encrypted header without a key", signed(craft{elems: std(cont(tagEncInfo, cont(tagEncIVInfo, tlv(tagEncIV, make([]byte, 16)...), tlv(tagEncPadding, 0, 1)))), body: make([]byte, 16)}), -1, 0, "without ENCRYPTIONKEY"},
		{".enc.sgn name on a plain header", signed(craft{elems: [][]byte{signerID(t, s, "456"), sigInfo(SHA1, 2048), sigHere, fileName("SEP1.cnf.xml.enc.sgn"), stamp()}, body: make([]byte, 16)}), -1, 0, "no ENCRYPTION tags"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.file()
			f, err := ParseNamed("ITLFile.tlv", b)
			if err == nil {
				t.Fatalf("parsed: %d records, warnings %q", len(f.Records), f.Warnings())
			}
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not a *FormatError wrapping ErrMalformed", err)
			}
			if tc.wantOff >= 0 && fe.Offset != tc.wantOff {
				t.Errorf("offset %d, want %d (%v)", fe.Offset, tc.wantOff, err)
			}
			if fe.Offset < 0 || fe.Offset > len(b) {
				t.Errorf("offset %d outside the %d-byte file", fe.Offset, len(b))
			}
			if tc.wantRec >= 0 && fe.Record != tc.wantRec {
				t.Errorf("record %d, want %d (%v)", fe.Record, tc.wantRec, err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
		})
	}
}

// Well-formed files whose signature check must fail, each for its reason.
func TestVerifyFailures(t *testing.T) {
	p := LoadTestPKI(t)
	s := p.Recovery
	good := mustBuild(t, BuildOptions{Signer: s, Records: []RecordSpec{{Role: RoleTFTP, Cert: p.TFTP.Cert}}})
	gf := mustParse(t, "ITLFile.tlv", good)
	flip := func(off int) func() []byte {
		return func() []byte { b := bytes.Clone(good); b[off] ^= 0x01; return b }
	}
	sast := certRecord(t, s.Cert, RoleSAST, "3456789")
	signedBy := func(signer *Signer, c craft) func() []byte {
		return func() []byte { c.signer = signer; return c.bytes(t) }
	}
	hdr := func(d Digest) [][]byte {
		return [][]byte{signerID(t, s, "456"), sigInfo(d, 2048), sigHere, fileName("ITLFile.tlv"), stamp()}
	}
	tests := []struct {
		name string
		file func() []byte
		want error
	}{
		{"one byte flipped in a record's certificate", flip(gf.Records[1].Offset + gf.Records[1].Length - 40), ErrBadSignature},
		{"one byte flipped in FILENAME", flip(gf.Header.Elements[len(gf.Header.Elements)-3].Offset + 4), ErrBadSignature},
		{"one byte flipped in the signature", flip(gf.sigStart + 10), ErrBadSignature},
		{"signed with the SIGNATURE zeroed in place instead of removed", signedBy(s, craft{elems: hdr(SHA1), body: sast, zeroSign: true}), ErrBadSignature},
		{"DIGESTALGO says SHA-512, signed with SHA-1", signedBy(s, craft{elems: hdr(SHA512), body: sast, hash: crypto.SHA1}), ErrBadSignature},
		{"signed by another key than the SAST record's", signedBy(p.Other, craft{elems: hdr(SHA1), body: sast}), ErrBadSignature},
		{"unknown digest code", signedBy(s, craft{elems: hdr(9), body: sast}), ErrUnsupported},
		{"signer not among the records", signedBy(s, craft{elems: hdr(SHA1), body: certRecord(t, p.Other.Cert, RoleSAST, "3456789")}), ErrSignerNotFound},
		{"signer listed, but not as SAST", signedBy(s, craft{elems: hdr(SHA1), body: certRecord(t, s.Cert, RoleCCMTFTP, "3456789")}), ErrSignerNotFound},
		{"same serial, other issuer", signedBy(s, craft{elems: [][]byte{signerIDNamed(s.Cert.SerialNumber.Bytes(), "CN=x", "CN=someone-else", "456"), sigInfo(SHA1, 2048), sigHere, fileName("ITLFile.tlv"), stamp()}, body: sast}), ErrSignerNotFound},
		{"SAST record hash-only", signedBy(s, craft{elems: hdr(SHA1), body: record(tlv(recFunction, 0, 0), tlv(recIssuerName, text(mustName(t, s.Cert.RawIssuer))...), tlv(recSerial, s.Cert.SerialNumber.Bytes()...), tlv(recCertHash, make([]byte, 20)...), tlv(recHashAlgo, 1))}), ErrNoKey},
		{"signature algorithm not RSA", signedBy(s, craft{elems: [][]byte{signerID(t, s, "456"), cont(tagSignatureInfo, tlv(tagDigestAlgo, 1), cont(tagSigAlgoInfo, tlv(tagSigAlgo, 1), tlv(tagSigModulus, 2))), sigHere, fileName("ITLFile.tlv"), stamp()}, body: sast}), ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseNamed("ITLFile.tlv", tc.file())
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if err := f.Verify(); !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func mustName(t testing.TB, der []byte) string {
	t.Helper()
	s, err := CiscoName(der)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
