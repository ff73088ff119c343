package itl

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// maxBuildSAST is usecallmanager's limit: a .tlv holds at most two SAST
// records. Build refuses more; Parse only warns.
const maxBuildSAST = 2

// RecordSpec is one record for Build: a certificate and what it is trusted
// for. Build only reads it, so one may be shared by concurrent Builds.
type RecordSpec struct {
	// Role is the FUNCTION code.
	Role Role
	// Cert is the certificate. Build writes its subject, issuer, serial,
	// public key and signature, then the certificate itself or its hash.
	Cert *x509.Certificate
	// HashOnly writes the certificate's SHA-1 (CERTHASH and HASH
	// ALGORITHM) instead of the certificate, as CUCM 8.x does for TVS and
	// CAPF. A phone cannot verify with such a record and asks TVS.
	HashOnly bool
	// DNSName, when set, is written as DNSNAME (CUCM writes one; certutils
	// does not, and phones accept both).
	DNSName string
	// IP, when valid, is written as IPADDRESS (4 bytes for IPv4, 16 for
	// IPv6).
	IP netip.Addr
}

// BuildOptions describe a trust list for Build, which only reads them (one
// may be shared by concurrent Builds). Build is safe for concurrent use.
type BuildOptions struct {
	// Kind is KindITL or KindCTL; zero means ITL.
	Kind Kind
	// Signer signs the file. It is written as the first record, with role
	// SAST, unless Records already hold its certificate as SAST.
	Signer *Signer
	// Records are the other records, in order.
	Records []RecordSpec
	// Digest is the signature hash: SHA1 (the default when zero) or
	// SHA512. SHA-256 (code 2) is refused: no phone is known to take it.
	Digest Digest
	// Blank builds a rollback ("Prepare Cluster for Rollback to pre 8.0")
	// list: TFTP, CCM+TFTP and TVS records keep only FUNCTION (and DNSNAME
	// and IPADDRESS when set), as the observed non-secure CTL does; when
	// there are none, an empty TFTP and an empty TVS record are added. The
	// SAST record stays whole, since the phone must still verify the file.
	// The byte form of Cisco's rollback ITL is not public; this is the form
	// itl-format.md §6 infers.
	Blank bool
	// Filename is the FILENAME written into the header; empty means
	// "ITLFile.tlv" or "CTLFile.tlv". Per-device files (ITLSEP<MAC>.tlv)
	// carry the generic name, as CUCM's do.
	Filename string
	// Timestamp is the TIMESTAMP; zero means now.
	Timestamp time.Time
	// SignerVersion, when set, writes tag 28 (certutils' signer version).
	// When nil it is written only if a record holds an EC key, as 1.1:
	// phones accept EC certificates only from a version 1.1 list.
	SignerVersion *Version
}

// Build writes and signs an ITL or CTL. The result parses, verifies
// against its own SAST record, and has a header padded to a multiple of 4.
func Build(o BuildOptions) ([]byte, error) {
	kind := o.Kind
	if kind == KindUnknown {
		kind = KindITL
	}
	if !kind.IsTrustList() {
		return nil, fmt.Errorf("itl: build: kind %s: want ITL or CTL: %w", kind, ErrUnsupported)
	}
	pub, err := o.Signer.rsaKey()
	if err != nil {
		return nil, fmt.Errorf("itl: build: %w", err)
	}
	specs := o.Records
	if !hasSAST(specs, o.Signer.Cert) {
		specs = append([]RecordSpec{{Role: RoleSAST, Cert: o.Signer.Cert}}, specs...)
	}
	var errs []error
	sast := 0
	for i, s := range specs {
		if s.Role == RoleSAST {
			sast++
		}
		if s.Cert == nil && !(o.Blank && blankRole(s.Role)) {
			errs = append(errs, fmt.Errorf("record %d (%s): no certificate", i+1, s.Role))
		}
	}
	if sast > maxBuildSAST {
		errs = append(errs, fmt.Errorf("%d SAST records, at most %d are allowed", sast, maxBuildSAST))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("itl: build: %w", err)
	}
	if o.Blank && !hasBlankRole(specs) {
		specs = append(specs, RecordSpec{Role: RoleTFTP}, RecordSpec{Role: RoleTVS})
	}

	var body []byte
	ec := false
	for i, s := range specs {
		empty := o.Blank && blankRole(s.Role)
		if !empty {
			if _, ok := s.Cert.PublicKey.(*ecdsa.PublicKey); ok {
				ec = true
			}
		}
		body, err = appendRecord(body, s, empty)
		if err != nil {
			return nil, fmt.Errorf("itl: build: record %d (%s): %w", i+1, s.Role, err)
		}
	}
	sv := o.SignerVersion
	if sv == nil && ec {
		sv = &Version{1, 1}
	}
	name := o.Filename
	if name == "" {
		name = "ITLFile.tlv"
		if kind == KindCTL {
			name = "CTLFile.tlv"
		}
	}
	h := headerFields{
		version:       fileVersion(kind),
		signerVersion: sv,
		signer:        o.Signer,
		pub:           pub,
		digest:        o.Digest,
		filename:      name,
		timestamp:     o.Timestamp,
	}
	out, err := h.sign(body)
	if err != nil {
		return nil, fmt.Errorf("itl: build: %w", err)
	}
	// Read back what was written, as the phone will: a bug here must
	// never reach a phone as a file it rejects.
	f, err := ParseNamed(name, out)
	if err == nil && f.Kind != kind {
		err = fmt.Errorf("reads back as %s", f.Kind)
	}
	if err == nil {
		err = f.Verify()
	}
	if err != nil {
		return nil, fmt.Errorf("itl: build: self-check: %w", err)
	}
	return out, nil
}

// Sign wraps payload in a signed envelope (.sgn): the signed header, then
// the payload unchanged. name is written as FILENAME: the name the file is
// published under, with its .sgn suffix and any sub-directory (e.g.
// "SEP0011215A1AE3.cnf.xml.sgn", "New_Zealand/g3-tones.xml.sgn").
func Sign(name string, payload []byte, signer *Signer, digest Digest) ([]byte, error) {
	if k := kindOfName(name); k != KindUnknown && k != KindSGN {
		return nil, fmt.Errorf("itl: sign %q: the name is that of an %s file, not a .sgn: %w", name, k, ErrUnsupported)
	}
	pub, err := signer.rsaKey()
	if err != nil {
		return nil, fmt.Errorf("itl: sign %q: %w", name, err)
	}
	h := headerFields{version: fileVersion(KindSGN), signer: signer, pub: pub, digest: digest, filename: name}
	out, err := h.sign(payload)
	if err != nil {
		return nil, fmt.Errorf("itl: sign %q: %w", name, err)
	}
	return selfCheck(name, out, KindSGN, pub)
}

// selfCheck reads back a signed envelope and checks its signature with the
// signer's own key.
func selfCheck(name string, out []byte, want Kind, pub *rsa.PublicKey) ([]byte, error) {
	f, err := ParseNamed(name, out)
	if err == nil && f.Kind != want {
		err = fmt.Errorf("reads back as %s", f.Kind)
	}
	if err == nil {
		err = f.CheckSignature(pub)
	}
	if err != nil {
		return nil, fmt.Errorf("itl: sign %q: self-check: %w", name, err)
	}
	return out, nil
}

func hasSAST(specs []RecordSpec, c *x509.Certificate) bool {
	for _, s := range specs {
		if s.Role == RoleSAST && s.Cert != nil && s.Cert.Equal(c) {
			return true
		}
	}
	return false
}

// blankRole is a role whose record a rollback list empties.
func blankRole(r Role) bool { return r == RoleTFTP || r == RoleCCMTFTP || r == RoleTVS }

func hasBlankRole(specs []RecordSpec) bool {
	for _, s := range specs {
		if blankRole(s.Role) {
			return true
		}
	}
	return false
}

// appendTLV appends tag, a big-endian u16 length and v.
func appendTLV(b []byte, tag byte, v []byte) ([]byte, error) {
	if len(v) > 0xFFFF {
		return nil, fmt.Errorf("tag %d: %d bytes do not fit a 16-bit length", tag, len(v))
	}
	b = append(b, tag, byte(len(v)>>8), byte(len(v)))
	return append(b, v...), nil
}

func appendU16(b []byte, tag byte, v int) []byte {
	return append(b, tag, 0, 2, byte(v>>8), byte(v))
}

// cstr is a NUL-terminated text value.
func cstr(s string) []byte { return append([]byte(s), 0) }

// serialBytes is the certificate serial as certutils writes it: the
// minimal unsigned big-endian magnitude.
func serialBytes(c *x509.Certificate) ([]byte, error) {
	if c.SerialNumber == nil || c.SerialNumber.Sign() < 0 {
		return nil, fmt.Errorf("certificate %q has a negative or no serial number", c.Subject)
	}
	if c.SerialNumber.Sign() == 0 {
		return []byte{0}, nil
	}
	return c.SerialNumber.Bytes(), nil
}

// recordKey is the PUBLICKEY value: PKCS#1 for RSA, the uncompressed X9.62
// point for EC (certutils' form).
func recordKey(c *x509.Certificate) ([]byte, error) {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return x509.MarshalPKCS1PublicKey(k), nil
	case *ecdsa.PublicKey:
		e, err := k.ECDH()
		if err != nil {
			return nil, err
		}
		return e.Bytes(), nil
	}
	return nil, fmt.Errorf("certificate %q has a %T key, want RSA or EC: %w", c.Subject, c.PublicKey, ErrUnsupported)
}

// appendRecord writes one record in Cisco's tag order (1, 2, 3, 4, 5, 6, 7,
// 8, 9 or 11+12, 10), or an empty one (1, 2, 4, 10) for a rollback list.
func appendRecord(out []byte, s RecordSpec, empty bool) ([]byte, error) {
	var r []byte
	var err error
	add := func(tag byte, v []byte) {
		if err == nil {
			r, err = appendTLV(r, tag, v)
		}
	}
	if s.DNSName != "" {
		add(recDNSName, cstr(s.DNSName))
	}
	if empty {
		r = appendU16(r, recFunction, int(s.Role))
	} else {
		subject, e1 := CiscoName(s.Cert.RawSubject)
		issuer, e2 := CiscoName(s.Cert.RawIssuer)
		serial, e3 := serialBytes(s.Cert)
		key, e4 := recordKey(s.Cert)
		if e := errors.Join(e1, e2, e3, e4); e != nil {
			return nil, e
		}
		add(recSubjectName, cstr(subject))
		if err == nil {
			r = appendU16(r, recFunction, int(s.Role))
		}
		add(recIssuerName, cstr(issuer))
		add(recSerial, serial)
		add(recPublicKey, key)
		add(recSignature, s.Cert.Signature)
		if s.HashOnly {
			sum := sha1.Sum(s.Cert.Raw)
			add(recCertHash, sum[:])
			// Cisco prints "SHA-1" for this byte; its raw value is not in
			// any dump. 1, the header's SHA-1 code, is the likely one.
			add(recHashAlgo, []byte{byte(SHA1)})
		} else {
			add(recCertificate, s.Cert.Raw)
		}
	}
	if s.IP.IsValid() {
		add(recIPAddress, s.IP.Unmap().AsSlice())
	}
	if err != nil {
		return nil, err
	}
	total := 5 + len(r)
	if total > 0xFFFF {
		return nil, fmt.Errorf("record is %d bytes, more than RECORDLENGTH can say", total)
	}
	out = appendU16(out, recLength, total)
	return append(out, r...), nil
}

// headerFields is what goes into a signed header.
type headerFields struct {
	version       Version
	signerVersion *Version
	signer        *Signer
	pub           *rsa.PublicKey
	digest        Digest
	filename      string
	timestamp     time.Time
	enc           []byte // encoded ENCRYPTION elements (.enc.sgn only)
}

// headerSize is the header length rule of itl-format.md §2.4: the sizes of
// SIGNERNAME, SERIALNUMBER and CANAME values, of the signature and of the
// FILENAME value, whether tag 28 is present and how many bytes of
// encryption elements follow TIMESTAMP. It returns the size before padding
// and HEADERLENGTH (padded to a multiple of 4).
func headerSize(subject, serial, issuer, sig, filename int, signerVersion bool, enc int) (raw, padded int) {
	raw = 5 + 5 // VERSION, HEADERLENGTH
	if signerVersion {
		raw += 5
	}
	raw += 3 + (3 + subject) + (3 + serial) + (3 + issuer) // SIGNERID
	raw += 3 + 4 + 3 + 4 + 4                               // SIGNATUREINFO{DIGEST, SIGNATUREALGOINFO{ALGO, MODULUS}}
	raw += 3 + sig                                         // SIGNATURE
	raw += 3 + filename                                    // FILENAME
	raw += 3 + 4                                           // TIMESTAMP
	raw += enc
	return raw, (raw + 3) &^ 3
}

// sign writes the header (without SIGNATURE), signs header and body
// together, and inserts the SIGNATURE element between SIGNATUREINFO and
// FILENAME (itl-format.md §4.1).
func (h headerFields) sign(body []byte) ([]byte, error) {
	digest := h.digest
	if digest == 0 {
		digest = SHA1
	}
	if digest != SHA1 && digest != SHA512 {
		return nil, fmt.Errorf("digest %s: want SHA-1 or SHA-512: %w", digest, ErrUnsupported)
	}
	bits := h.pub.N.BitLen()
	modCode, _ := modulusCode(bits) // rsaKey checked the size
	sigLen := h.pub.Size()
	ts := h.timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	if ts.Unix() < 0 || ts.Unix() > 0xFFFFFFFF {
		return nil, fmt.Errorf("timestamp %v does not fit 32-bit Unix seconds", ts)
	}
	subject, err := CiscoName(h.signer.Cert.RawSubject)
	if err != nil {
		return nil, err
	}
	issuer, err := CiscoName(h.signer.Cert.RawIssuer)
	if err != nil {
		return nil, err
	}
	serial, err := serialBytes(h.signer.Cert)
	if err != nil {
		return nil, err
	}
	sub, iss, fn := cstr(subject), cstr(issuer), cstr(h.filename)
	raw, hl := headerSize(len(sub), len(serial), len(iss), sigLen, len(fn), h.signerVersion != nil, len(h.enc))
	if hl > 0xFFFF {
		return nil, fmt.Errorf("header is %d bytes, more than HEADERLENGTH can say", hl)
	}

	pre := make([]byte, 0, hl-3-sigLen)
	pre = append(pre, tagVersion, 0, 2, h.version.Major, h.version.Minor)
	pre = appendU16(pre, tagHeaderLength, hl)
	if v := h.signerVersion; v != nil {
		pre = append(pre, tagSignerVersion, 0, 2, v.Major, v.Minor)
	}
	idLen := 3 + len(sub) + 3 + len(serial) + 3 + len(iss)
	pre = append(pre, tagSignerID, byte(idLen>>8), byte(idLen))
	for _, e := range []struct {
		tag byte
		v   []byte
	}{{tagSignerName, sub}, {tagSerialNumber, serial}, {tagCAName, iss}} {
		if pre, err = appendTLV(pre, e.tag, e.v); err != nil {
			return nil, err
		}
	}
	pre = append(pre,
		tagSignatureInfo, 0, 15,
		tagDigestAlgo, 0, 1, byte(digest),
		tagSigAlgoInfo, 0, 8,
		tagSigAlgo, 0, 1, 0,
		tagSigModulus, 0, 1, modCode)

	post := make([]byte, 0, hl-len(pre))
	if post, err = appendTLV(post, tagFilename, fn); err != nil {
		return nil, err
	}
	post = append(post, tagTimestamp, 0, 4)
	post = binary.BigEndian.AppendUint32(post, uint32(ts.Unix()))
	post = append(post, h.enc...)
	for range hl - raw {
		post = append(post, tagPadding)
	}
	if got := len(pre) + 3 + sigLen + len(post); got != hl {
		return nil, fmt.Errorf("internal: header is %d bytes, computed %d", got, hl)
	}

	hf := digest.Hash()
	hh := hf.New()
	hh.Write(pre)
	hh.Write(post)
	hh.Write(body)
	sig, err := h.signer.Key.Sign(rand.Reader, hh.Sum(nil), hf)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if len(sig) != sigLen {
		return nil, fmt.Errorf("sign: signature is %d bytes, want %d", len(sig), sigLen)
	}

	out := make([]byte, 0, hl+len(body))
	out = append(out, pre...)
	out = append(out, tagSignature, byte(sigLen>>8), byte(sigLen))
	out = append(out, sig...)
	out = append(out, post...)
	return append(out, body...), nil
}
