package itl

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"testing"
)

// Helpers that write files by hand, element by element, so tests can make
// every variant and every defect the codec's own writer never produces.

func tlv(tag byte, v ...byte) []byte {
	return append([]byte{tag, byte(len(v) >> 8), byte(len(v))}, v...)
}

func cont(tag byte, children ...[]byte) []byte {
	var body []byte
	for _, c := range children {
		body = append(body, c...)
	}
	return append([]byte{tag, byte(len(body) >> 8), byte(len(body))}, body...)
}

func text(s string) []byte { return append([]byte(s), 0) }

func join(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// sigHere marks where craft puts the SIGNATURE element.
var sigHere = []byte{}

// craft is a hand-made signed file: header elements (after VERSION and
// HEADERLENGTH) in the given order, one of which may be sigHere, then body.
type craft struct {
	version  [2]byte
	elems    [][]byte
	body     []byte
	signer   *Signer
	hash     crypto.Hash
	noPad    bool // leave HEADERLENGTH unaligned
	hlDelta  int  // add to the HEADERLENGTH written
	zeroSign bool // sign with the SIGNATURE in place and zeroed (a builder bug)
}

// bytes lays the file out, pads the header to 4 bytes, and signs it the
// way §4.1 says (or the broken way zeroSign asks for).
func (c craft) bytes(t testing.TB) []byte {
	t.Helper()
	sigLen := 0
	if c.signer != nil {
		sigLen = c.signer.Cert.PublicKey.(interface{ Size() int }).Size()
	}
	ver := c.version
	if ver == [2]byte{} {
		ver = [2]byte{1, 2}
	}
	size := 10
	hasSig := false
	for _, e := range c.elems {
		if isSigHere(e) {
			size += 3 + sigLen
			hasSig = true
		} else {
			size += len(e)
		}
	}
	pad := 0
	if !c.noPad {
		pad = (4 - size%4) % 4
	}
	hl := size + pad + c.hlDelta
	head := []byte{tagVersion, 0, 2, ver[0], ver[1], tagHeaderLength, 0, 2, byte(hl >> 8), byte(hl)}
	assemble := func(sig []byte, withSig bool) []byte {
		out := append([]byte{}, head...)
		for _, e := range c.elems {
			if isSigHere(e) {
				if withSig {
					out = append(out, tlv(tagSignature, sig...)...)
				}
				continue
			}
			out = append(out, e...)
		}
		for range pad {
			out = append(out, tagPadding)
		}
		return append(out, c.body...)
	}
	if !hasSig || c.signer == nil {
		return assemble(nil, false)
	}
	msg := assemble(nil, false)
	if c.zeroSign {
		msg = assemble(make([]byte, sigLen), true)
	}
	hf := c.hash
	if hf == 0 {
		hf = crypto.SHA1
	}
	h := hf.New()
	h.Write(msg)
	sig, err := c.signer.Key.Sign(rand.Reader, h.Sum(nil), hf)
	if err != nil {
		t.Fatal(err)
	}
	return assemble(sig, true)
}

func isSigHere(e []byte) bool { return e != nil && len(e) == 0 }

// signerID is SIGNERID with children in the given order ("456" is Cisco's,
// "465" certutils' since Aug 2024), names in Cisco form unless given.
func signerID(t testing.TB, s *Signer, order string) []byte {
	t.Helper()
	subj, _ := CiscoName(s.Cert.RawSubject)
	iss, _ := CiscoName(s.Cert.RawIssuer)
	return signerIDNamed(s.Cert.SerialNumber.Bytes(), subj, iss, order)
}

func signerIDNamed(serial []byte, subj, iss, order string) []byte {
	var kids [][]byte
	for _, c := range order {
		switch c {
		case '4':
			kids = append(kids, tlv(tagSignerName, text(subj)...))
		case '5':
			kids = append(kids, tlv(tagSerialNumber, serial...))
		case '6':
			kids = append(kids, tlv(tagCAName, text(iss)...))
		}
	}
	return cont(tagSignerID, kids...)
}

// sigInfo is SIGNATUREINFO for an RSA key of the given size.
func sigInfo(d Digest, bits int) []byte {
	code, _ := modulusCode(bits)
	return cont(tagSignatureInfo, tlv(tagDigestAlgo, byte(d)),
		cont(tagSigAlgoInfo, tlv(tagSigAlgo, 0), tlv(tagSigModulus, code)))
}

func fileName(s string) []byte { return tlv(tagFilename, text(s)...) }

func stamp() []byte { return tlv(tagTimestamp, 0x4e, 0x30, 0x5a, 0x48) }

// ciscoHeader is the header of §2.2 for signer s, in Cisco's order.
func ciscoHeader(t testing.TB, s *Signer, name string) [][]byte {
	return [][]byte{signerID(t, s, "456"), sigInfo(SHA1, s.Cert.PublicKey.(interface{ Size() int }).Size()*8), sigHere, fileName(name), stamp()}
}

// record writes one record from its TLVs (RECORDLENGTH is added).
func record(tlvs ...[]byte) []byte {
	body := join(tlvs...)
	n := 5 + len(body)
	return append([]byte{recLength, 0, 2, byte(n >> 8), byte(n)}, body...)
}

// certRecord is a full record in the given tag order, from a certificate.
func certRecord(t testing.TB, c *x509.Certificate, role Role, order string) []byte {
	t.Helper()
	subj, _ := CiscoName(c.RawSubject)
	iss, _ := CiscoName(c.RawIssuer)
	key, err := recordKey(c)
	if err != nil {
		t.Fatal(err)
	}
	var tlvs [][]byte
	for _, ch := range order {
		switch ch {
		case '2':
			tlvs = append(tlvs, tlv(recDNSName, 0))
		case '3':
			tlvs = append(tlvs, tlv(recSubjectName, text(subj)...))
		case '4':
			tlvs = append(tlvs, tlv(recFunction, byte(role>>8), byte(role)))
		case '5':
			tlvs = append(tlvs, tlv(recIssuerName, text(iss)...))
		case '6':
			tlvs = append(tlvs, tlv(recSerial, c.SerialNumber.Bytes()...))
		case '7':
			tlvs = append(tlvs, tlv(recPublicKey, key...))
		case '8':
			tlvs = append(tlvs, tlv(recSignature, c.Signature...))
		case '9':
			tlvs = append(tlvs, tlv(recCertificate, c.Raw...))
		}
	}
	return record(tlvs...)
}
