package itl

import (
	"crypto"
	"crypto/rsa"
	"fmt"
	"hash"
	"slices"
)

// Verify checks a trust list against itself: the header's signer must
// match a SAST record of the file (issuer and serial number), and the
// signature must verify with that record's key. This is what a phone does
// with a list it trusts on first use, and what `show itl` reports. For
// .sgn and .enc.sgn it returns ErrNeedTrustList: use VerifyWith.
func (f *File) Verify() error {
	if !f.Kind.IsTrustList() {
		return fmt.Errorf("itl: verify %s: %w", f.Kind, ErrNeedTrustList)
	}
	return f.verifyAgainst(f, RoleSAST)
}

// VerifyWith checks f against another trust list, as a phone holding trust
// does: a .sgn or .enc.sgn must be signed by a TFTP or CCM+TFTP record of
// trust; an ITL or CTL by a SAST, CCM+TFTP or TFTP record (a CTL's
// CCM+TFTP vouches for a CUCM 8.x ITL, a SAST for an ITLRecovery-signed
// one). The signer is matched by issuer and serial number.
func (f *File) VerifyWith(trust *File) error {
	if trust == nil || !trust.Kind.IsTrustList() {
		return fmt.Errorf("itl: verify %s: the trust file is not an ITL or CTL: %w", f.Kind, ErrNeedTrustList)
	}
	return f.verifyAgainst(trust, SignerRoles(f.Kind)...)
}

// SignerRoles are the record roles that may sign a file of kind k.
func SignerRoles(k Kind) []Role {
	if k.IsTrustList() {
		return []Role{RoleSAST, RoleCCMTFTP, RoleTFTP}
	}
	return []Role{RoleCCMTFTP, RoleTFTP}
}

func (f *File) verifyAgainst(trust *File, roles ...Role) error {
	i := trust.Find(f.Header.Signer, roles...)
	if i < 0 {
		return fmt.Errorf("itl: %s signer (%v) has no %s record in the %s: %w",
			f.Kind, f.Header.Signer, roleList(roles), trust.Kind, ErrSignerNotFound)
	}
	r := &trust.Records[i]
	key, err := r.Key()
	if err != nil {
		return fmt.Errorf("itl: %s signer is %s record %d of the %s: %w", f.Kind, r.Role, i+1, trust.Kind, err)
	}
	if err := f.CheckSignature(key); err != nil {
		return fmt.Errorf("%w (signer: %s record %d of the %s)", err, r.Role, i+1, trust.Kind)
	}
	return nil
}

func roleList(roles []Role) string {
	s := ""
	for i, r := range roles {
		if i > 0 {
			s += " or "
		}
		s += r.String()
	}
	return s
}

// Find returns the index of the record that best matches id among the
// records of the given roles (any role when none are given), or -1. A
// record matches when its serial number equals id's as an integer and its
// issuer (ISSUERNAME, or the certificate's issuer) equals id's in any of
// the ";" / "," spellings; when id has no issuer the subject is compared
// instead. Among several matches one whose subject also matches and that
// has a key wins.
func (f *File) Find(id Identity, roles ...Role) int {
	best, bestScore := -1, -1
	for i := range f.Records {
		r := &f.Records[i]
		if len(roles) > 0 && (!r.HasTag(recFunction) || !slices.Contains(roles, r.Role)) {
			continue
		}
		serial := r.Serial
		if len(serial) == 0 && r.cert != nil {
			serial = r.cert.SerialNumber.Bytes()
		}
		if len(serial) == 0 || !sameSerial(serial, id.Serial) {
			continue
		}
		subjectOK := r.matchesSubject(id.Subject)
		if id.Issuer != "" {
			if !r.matchesIssuer(id.Issuer) {
				continue
			}
		} else if !subjectOK {
			continue
		}
		score := 0
		if subjectOK {
			score += 2
		}
		if r.keyErr == nil {
			score++
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

func (r *Record) matchesIssuer(name string) bool {
	if sameName(r.Issuer, name) {
		return true
	}
	if r.cert != nil {
		if s, err := CiscoName(r.cert.RawIssuer); err == nil && sameName(s, name) {
			return true
		}
		return sameName(r.cert.Issuer.String(), name)
	}
	return false
}

func (r *Record) matchesSubject(name string) bool {
	if sameName(r.Subject, name) {
		return true
	}
	if r.cert != nil {
		if s, err := CiscoName(r.cert.RawSubject); err == nil && sameName(s, name) {
			return true
		}
		return sameName(r.cert.Subject.String(), name)
	}
	return false
}

// CheckSignature verifies the header's signature with key, over the file
// with the SIGNATURE element cut out (itl-format.md §4.1). Only RSA PKCS#1
// v1.5 exists in this format.
func (f *File) CheckSignature(key crypto.PublicKey) error {
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("itl: signer key is %T, only RSA signs trust lists and .sgn files: %w", key, ErrUnsupported)
	}
	if pub.N.BitLen() < 1024 {
		// crypto/rsa refuses such keys; say so instead of "bad signature".
		return fmt.Errorf("itl: %d-bit signer key: %w", pub.N.BitLen(), ErrUnsupported)
	}
	if f.Header.SignatureAlgorithm != 0 {
		return fmt.Errorf("itl: SIGNATUREALGO %d, only 0 (RSA) is known: %w", f.Header.SignatureAlgorithm, ErrUnsupported)
	}
	hf := f.Header.Digest.Hash()
	if hf == 0 || !hf.Available() {
		return fmt.Errorf("itl: digest code %d: %w", f.Header.Digest, ErrUnsupported)
	}
	h := hf.New()
	f.writeSigned(h)
	if err := rsa.VerifyPKCS1v15(pub, hf, h.Sum(nil), f.Header.Signature); err != nil {
		return fmt.Errorf("itl: %s signature (%s, %d-bit key): %w", f.Kind, f.Header.Digest, pub.N.BitLen(), ErrBadSignature)
	}
	return nil
}

// writeSigned feeds h the signed message: everything but the SIGNATURE TLV.
func (f *File) writeSigned(h hash.Hash) {
	h.Write(f.raw[:f.sigStart])
	h.Write(f.raw[f.sigEnd:])
}

// SignedMessage returns a copy of the bytes the signature covers.
func (f *File) SignedMessage() []byte {
	out := make([]byte, 0, len(f.raw)-(f.sigEnd-f.sigStart))
	out = append(out, f.raw[:f.sigStart]...)
	return append(out, f.raw[f.sigEnd:]...)
}
