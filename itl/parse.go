package itl

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// maxDepth bounds container nesting. The deepest real nesting is 3
// (ENCRYPTIONINFO > ENCRYPTIONIVINFO > leaf); one spare level tolerates a
// variant without letting a hostile file build a deep stack.
const maxDepth = 4

// File is a parsed ITL, CTL, .sgn or .enc.sgn.
//
// A File refers into the byte slice it was parsed from (it does not copy
// it), so that slice must not change while the File is in use. A File is
// never modified after Parse returns, so it is safe for concurrent use.
type File struct {
	// Kind is what the file carries after its header.
	Kind Kind
	// Header is the signed header every kind starts with.
	Header Header
	// Records are the certificate records of an ITL or CTL, in file order.
	Records []Record
	// Payload is what follows the header of a .sgn (the signed bytes, e.g.
	// the XML) or an .enc.sgn (the ciphertext). Nil for trust lists.
	Payload []byte
	// Encryption is the key and cipher metadata of an .enc.sgn, nil for
	// every other kind.
	Encryption *Encryption

	raw              []byte
	sigStart, sigEnd int // the SIGNATURE TLV, tag byte to last value byte + 1
	warnings         []string
}

// Header is the signed header (itl-format.md §2). Like the rest of a File
// it is read-only after Parse and safe for concurrent reads.
type Header struct {
	// Version is the file VERSION (tag 1): 1.2 for ITL/CTL.
	Version Version
	// Length is HEADERLENGTH (tag 2): where the records or payload start.
	Length int
	// SignerVersion is tag 28 (certutils' "signer version"), nil when the
	// file has none (every Cisco dump seen so far).
	SignerVersion *Version
	// Signer names the signing certificate: SIGNERNAME, CANAME and
	// SERIALNUMBER.
	Signer Identity
	// Digest is the hash the signature uses (DIGESTALGO, tag 8).
	Digest Digest
	// SignatureAlgorithm is tag 10: 0 means RSA.
	SignatureAlgorithm byte
	// ModulusCode is tag 11: 0=512, 1=1024, 2=2048, 3=4096 bit.
	ModulusCode byte
	// Signature is the raw RSA PKCS#1 v1.5 signature (tag 12).
	Signature []byte
	// Filename is the name the file was published under (tag 14).
	Filename string
	// Timestamp is tag 15, zero when absent.
	Timestamp time.Time
	// Padding is the number of one-byte pad tags (13).
	Padding int
	// Elements lists every header element in file order, containers and
	// padding included, for dumps.
	Elements []Element
}

// Identity names a certificate the way trust lists do. It is a value;
// its slices point into the parsed file and must not be modified.
type Identity struct {
	// Subject is the certificate subject in the file's text form
	// (SIGNERNAME or SUBJECTNAME), without its NUL.
	Subject string
	// Issuer is the issuer name (CANAME or ISSUERNAME), without its NUL.
	Issuer string
	// Serial is the serial number as big-endian bytes, as stored.
	Serial []byte
}

// SerialHex formats the serial as CUCM does: upper-case hex bytes joined by
// colons.
func (id Identity) SerialHex() string { return colonHex(id.Serial) }

// String describes the identity for messages.
func (id Identity) String() string {
	return fmt.Sprintf("subject %q issuer %q serial %s", id.Subject, id.Issuer, id.SerialHex())
}

// Element is one TLV of a header or record, kept for dumps. It is a value;
// Value points into the parsed file and must not be modified.
type Element struct {
	// Tag is the element's tag number.
	Tag byte
	// Offset is where the tag byte sits in the file.
	Offset int
	// Length is the length field; for a container, the size of its
	// children; 0 for a pad byte.
	Length int
	// Value is the element's value; nil for containers and pad bytes.
	Value []byte
	// Depth is 0 at top level, 1 inside a container, and so on.
	Depth int
	// InRecord says the tag is from the record namespace (§3.1), not the
	// header one (§2.1).
	InRecord bool
}

// Record is one certificate entry of an ITL or CTL. Every field except
// Offset and Length is optional: HasTag says which tags were present. Part
// of a File: read-only after Parse and safe for concurrent reads.
type Record struct {
	// Offset is where the record starts in the file.
	Offset int
	// Length is RECORDLENGTH: the record's size including that element.
	Length int
	// Role is FUNCTION (tag 4); check HasTag(4) before trusting a zero.
	Role Role
	// DNSName is tag 2: a host name or IP string, often empty.
	DNSName string
	// Subject is SUBJECTNAME (3), Issuer ISSUERNAME (5) and Serial
	// SERIALNUMBER (6).
	Subject, Issuer string
	Serial          []byte
	// PublicKey is tag 7: a DER PKCS#1 RSAPublicKey (or an X9.62 point for
	// EC certificates).
	PublicKey []byte
	// Signature is tag 8: the certificate's own signatureValue.
	Signature []byte
	// Certificate is tag 9: the DER certificate.
	Certificate []byte
	// IPAddress is tag 10, raw (4 bytes for IPv4).
	IPAddress []byte
	// CertHash is tag 11 (SHA-1 of the certificate in CUCM 8.x hash-only
	// records) and HashAlgorithm tag 12.
	CertHash      []byte
	HashAlgorithm byte
	// Elements lists the record's TLVs in file order, for dumps.
	Elements []Element

	tags   uint16 // bit n set when tag n was present
	cert   *x509.Certificate
	key    crypto.PublicKey
	keyErr error
}

// HasTag reports whether the record carried the given record tag.
func (r *Record) HasTag(tag byte) bool { return tag < 16 && r.tags&(1<<tag) != 0 }

// Identity returns the record's subject, issuer and serial.
func (r *Record) Identity() Identity {
	return Identity{Subject: r.Subject, Issuer: r.Issuer, Serial: r.Serial}
}

// Cert returns the parsed certificate, or nil when the record has none or
// it did not parse (Warnings says why).
func (r *Record) Cert() *x509.Certificate { return r.cert }

// Key returns the key that checks signatures made by the record's
// certificate: from the certificate when there is one (as certutils does),
// else from PUBLICKEY. It fails with ErrNoKey for empty records and for
// hash-only ones, which phones take to TVS instead.
func (r *Record) Key() (crypto.PublicKey, error) {
	if r.keyErr != nil {
		return nil, r.keyErr
	}
	return r.key, nil
}

// KeyDescription says "RSA 2048 bits", "ECDSA P-256" or "none".
func (r *Record) KeyDescription() string {
	switch k := r.key.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d bits", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case nil:
		if len(r.PublicKey) > 0 {
			return fmt.Sprintf("unparsed (%d bytes)", len(r.PublicKey))
		}
		return "none"
	}
	return fmt.Sprintf("%T", r.key)
}

// CertSHA1 returns the SHA-1 of the record's certificate (what `show itl`
// prints), or of nothing: for hash-only records it returns CertHash, and
// nil when there is neither.
func (r *Record) CertSHA1() []byte {
	if len(r.Certificate) > 0 {
		s := sha1.Sum(r.Certificate)
		return s[:]
	}
	return r.CertHash
}

// HashOnly reports a record that names a certificate by hash instead of
// carrying it (TVS and CAPF in CUCM 8.x ITLs).
func (r *Record) HashOnly() bool { return len(r.Certificate) == 0 && len(r.CertHash) > 0 }

// Empty reports a record without certificate, hash or key: the blank
// entries of a rollback ITL and of a non-secure CTL.
func (r *Record) Empty() bool {
	return len(r.Certificate) == 0 && len(r.CertHash) == 0 && len(r.PublicKey) == 0
}

// Bytes returns the file's bytes (the slice given to Parse).
func (f *File) Bytes() []byte { return f.raw }

// Warnings lists what is legal but suspect: the 64 KiB phone limit, more
// than two SAST records, a blank list, a FILENAME that does not match the
// name the file was fetched by, unknown tags, certificates that do not
// parse. The caller owns the returned slice.
func (f *File) Warnings() []string { return slices.Clone(f.warnings) }

// IsBlank reports a rollback ("Prepare Cluster for Rollback to pre 8.0")
// list: it has at least one empty TFTP, CCM+TFTP or TVS entry, and no TFTP
// or CCM+TFTP record that carries a certificate or a certificate hash.
//
// The first condition is ours: itl-format.md §6 recommends only the
// second, but that alone would call blank every list that simply has no
// TFTP role (the certutils ITL in testdata, for instance), while Cisco
// describes the rollback ITL as showing empty entries where TVS and TFTP
// used to be. The exact bytes of a rollback ITL are not public.
func (f *File) IsBlank() bool {
	if !f.Kind.IsTrustList() {
		return false
	}
	emptyEntry := false
	for i := range f.Records {
		r := &f.Records[i]
		if !r.HasTag(recFunction) {
			continue
		}
		switch r.Role {
		case RoleTFTP, RoleCCMTFTP:
			if len(r.Certificate) > 0 || len(r.CertHash) > 0 {
				return false
			}
			if r.Empty() {
				emptyEntry = true
			}
		case RoleTVS:
			if r.Empty() {
				emptyEntry = true
			}
		}
	}
	return emptyEntry
}

// Parse reads any of the four kinds, detecting the kind from the content.
// Use ParseNamed when the file name is known. It checks every length
// against the bounds of its container, record and file and returns a
// *FormatError (wrapping ErrMalformed) with the byte offset of the first
// fault. Values are sub-slices of b, never copies sized by a length field,
// so memory stays proportional to len(b).
func Parse(b []byte) (*File, error) { return DefaultConfig().ParseNamed("", b) }

// ParseNamed is Parse with the name the file was fetched or stored under,
// which decides the kind when the content cannot (a header without
// FILENAME) and is compared with FILENAME (a mismatch is a warning).
func ParseNamed(name string, b []byte) (*File, error) { return DefaultConfig().ParseNamed(name, b) }

// ParseNamed is the package's ParseNamed with c's limits for the warnings
// (a zero limit turns its warning off).
func (c Config) ParseNamed(name string, b []byte) (*File, error) {
	f := &File{raw: b}
	enc, err := f.parseHeader(b)
	if err != nil {
		return nil, err
	}
	body := b[f.Header.Length:]
	f.Kind = f.detectKind(name, enc != nil, body)
	switch f.Kind {
	case KindITL, KindCTL:
		if err := f.parseRecords(b, f.Header.Length); err != nil {
			return nil, err
		}
		f.checkRecords()
	case KindENCSGN:
		if enc == nil {
			return nil, formatErr(f.Header.Length, "the name says encrypted config (.enc.sgn) but the header has no ENCRYPTION tags")
		}
		f.Encryption = enc
		f.Payload = body
		if len(body)%16 != 0 {
			f.warn("ciphertext is %d bytes, not a multiple of the AES block size", len(body))
		}
	default:
		f.Payload = body
	}
	f.checkFile(c, name)
	return f, nil
}

// maxWarnings caps the list, so that a hostile file made of thousands of
// unknown tags cannot turn into thousands of strings.
const maxWarnings = 32

func (f *File) warn(format string, args ...any) {
	switch {
	case len(f.warnings) < maxWarnings:
		f.warnings = append(f.warnings, fmt.Sprintf(format, args...))
	case len(f.warnings) == maxWarnings:
		f.warnings = append(f.warnings, "further warnings suppressed")
	}
}

func u16(b []byte) int { return int(binary.BigEndian.Uint16(b)) }

// cstring reads a NUL-terminated text field. ok is false when the value
// does not end in exactly one NUL.
func cstring(v []byte) (s string, ok bool) {
	i := bytes.IndexByte(v, 0)
	if i < 0 {
		return string(v), false
	}
	return string(v[:i]), i == len(v)-1
}

// findHeaderLength locates HEADERLENGTH, which must be known before the
// header can be walked with bounds. VERSION must come first (every source
// agrees); unknown leaf tags may sit between the two.
func findHeaderLength(b []byte) (hl, at int, err error) {
	if len(b) < 5 {
		return 0, 0, formatErr(0, "file is %d bytes, too short for a VERSION element", len(b))
	}
	if b[0] != tagVersion {
		return 0, 0, formatErr(0, "first tag is %d, want VERSION (1): not a signed Cisco file", b[0])
	}
	if n := u16(b[1:]); n != 2 {
		return 0, 0, formatErr(0, "VERSION has length %d, want 2", n)
	}
	off := 5
	for {
		if off+3 > len(b) {
			return 0, 0, formatErr(off, "truncated header: no HEADERLENGTH (tag 2) before the end of the file")
		}
		tag, n := b[off], u16(b[off+1:])
		if tag == tagHeaderLength {
			if n != 2 {
				return 0, 0, formatErr(off, "HEADERLENGTH has length %d, want 2", n)
			}
			if off+5 > len(b) {
				return 0, 0, formatErr(off, "truncated HEADERLENGTH: %d bytes left, want 5", len(b)-off)
			}
			return u16(b[off+3:]), off, nil
		}
		if tag == tagPadding || isContainer(tag) || tag <= tagTimestamp {
			return 0, 0, formatErr(off, "tag %d (%s) comes before HEADERLENGTH (tag 2)", tag, HeaderTagName(tag))
		}
		if off+3+n > len(b) {
			return 0, 0, formatErr(off, "tag %d length %d overruns the end of the file before HEADERLENGTH", tag, n)
		}
		off += 3 + n
	}
}

// parseHeader walks the header by tag (§11 steps 1–3): containers are
// entered, pad bytes skipped, unknown leaves skipped by length, and every
// element must end inside its container and inside HEADERLENGTH.
func (f *File) parseHeader(b []byte) (*Encryption, error) {
	hl, hlAt, err := findHeaderLength(b)
	if err != nil {
		return nil, err
	}
	switch {
	case hl > len(b):
		return nil, formatErr(hlAt, "HEADERLENGTH %d is past the end of the file (%d bytes)", hl, len(b))
	case hl%4 != 0:
		return nil, formatErr(hlAt, "HEADERLENGTH %d is not a multiple of 4", hl)
	case hl < hlAt+5:
		return nil, formatErr(hlAt, "HEADERLENGTH %d ends inside the HEADERLENGTH element", hl)
	}
	h := &f.Header
	h.Length = hl
	f.sigStart = -1

	type frame struct{ tag, off, end int }
	var (
		stack [maxDepth]frame
		depth int
		seen  [maxHeaderTagKnown + 1]bool
		enc   Encryption
		isEnc bool
	)
	off := 0
	for {
		for depth > 0 && off == stack[depth-1].end {
			depth--
		}
		if off >= hl {
			break
		}
		limit, where := hl, "the header"
		if depth > 0 {
			limit = stack[depth-1].end
			where = fmt.Sprintf("its container %s (tag %d) at offset %d", HeaderTagName(byte(stack[depth-1].tag)), stack[depth-1].tag, stack[depth-1].off)
		}
		if b[off] == tagPadding {
			h.Elements = append(h.Elements, Element{Tag: tagPadding, Offset: off, Depth: depth})
			h.Padding++
			off++
			continue
		}
		if off+3 > limit {
			return nil, formatErr(off, "truncated TLV: %d bytes left in %s, a tag and length need 3", limit-off, where)
		}
		tag, n := b[off], u16(b[off+1:])
		end := off + 3 + n
		if end > limit {
			return nil, formatErr(off, "%s (tag %d) length %d overruns %s, which ends at offset %d", HeaderTagName(tag), tag, n, where, limit)
		}
		if int(tag) < len(seen) {
			if seen[tag] {
				return nil, formatErr(off, "duplicate %s (tag %d)", HeaderTagName(tag), tag)
			}
			seen[tag] = true
		}
		if isContainer(tag) {
			if depth == maxDepth {
				return nil, formatErr(off, "containers nested deeper than %d", maxDepth)
			}
			h.Elements = append(h.Elements, Element{Tag: tag, Offset: off, Length: n, Depth: depth})
			stack[depth] = frame{int(tag), off, end}
			depth++
			off += 3
			continue
		}
		v := b[off+3 : end]
		h.Elements = append(h.Elements, Element{Tag: tag, Offset: off, Length: n, Value: v, Depth: depth})
		if want := fixedHeaderLen(tag); want > 0 && n != want {
			return nil, formatErr(off, "%s (tag %d) has length %d, want %d", HeaderTagName(tag), tag, n, want)
		}
		switch tag {
		case tagVersion:
			h.Version = Version{v[0], v[1]}
		case tagSignerName:
			h.Signer.Subject = f.headerString(tag, off, v)
		case tagCAName:
			h.Signer.Issuer = f.headerString(tag, off, v)
		case tagSerialNumber:
			if n == 0 {
				return nil, formatErr(off, "SERIALNUMBER (tag 5) is empty")
			}
			h.Signer.Serial = v
		case tagDigestAlgo:
			h.Digest = Digest(v[0])
		case tagSigAlgo:
			h.SignatureAlgorithm = v[0]
		case tagSigModulus:
			h.ModulusCode = v[0]
		case tagSignature:
			if n == 0 {
				return nil, formatErr(off, "SIGNATURE (tag 12) is empty")
			}
			h.Signature = v
			f.sigStart, f.sigEnd = off, end
		case tagFilename:
			h.Filename = f.headerString(tag, off, v)
		case tagTimestamp:
			h.Timestamp = time.Unix(int64(binary.BigEndian.Uint32(v)), 0).UTC()
		case tagSignerVersion:
			h.SignerVersion = &Version{v[0], v[1]}
		case tagEncUnknown1, tagEncUnknown2:
			isEnc = true
		case tagEncIV:
			isEnc, enc.IV = true, v
		case tagEncPadding:
			isEnc, enc.Padding = true, u16(v)
		case tagEncKeySize:
			isEnc, enc.KeySize = true, u16(v)
		case tagEncKeyAlgo:
			isEnc, enc.KeyAlgorithm = true, v[0]
		case tagEncKey:
			isEnc, enc.Key = true, v
		case tagEncHashAlgo:
			isEnc, enc.HashAlgorithm = true, Digest(v[0])
		case tagEncHash:
			isEnc, enc.Hash = true, v
		case tagHeaderLength: // read by findHeaderLength
		default:
			f.warn("unknown header tag %d (%d bytes) at offset %d skipped", tag, n, off)
		}
		off = end
	}

	switch {
	case f.sigStart < 0:
		return nil, formatErr(hl, "the header has no SIGNATURE (tag 12): the file is not signed")
	case !seen[tagDigestAlgo]:
		return nil, formatErr(hl, "the header has no DIGESTALGO (tag 8)")
	case len(h.Signer.Serial) == 0:
		return nil, formatErr(hl, "the header has no SERIALNUMBER (tag 5) to identify the signer")
	case !seen[tagCAName] && !seen[tagSignerName]:
		return nil, formatErr(hl, "the header has neither CANAME (tag 6) nor SIGNERNAME (tag 4) to identify the signer")
	}
	if bits := modulusBits(h.ModulusCode); seen[tagSigModulus] && bits != 0 && bits/8 != len(h.Signature) {
		f.warn("SIGNATUREMODULUS says %d bits but the signature is %d bytes", bits, len(h.Signature))
	}
	if h.Digest == SHA256 {
		f.warn("digest code 2 (SHA-256) is not confirmed on any phone")
	}
	if !isEnc {
		return nil, nil
	}
	switch {
	case !seen[tagEncIV]:
		return nil, formatErr(hl, "encrypted file without ENCRYPTIONIV (tag 19)")
	case !seen[tagEncPadding]:
		return nil, formatErr(hl, "encrypted file without ENCRYPTIONPADDING (tag 20)")
	case !seen[tagEncKey]:
		return nil, formatErr(hl, "encrypted file without ENCRYPTIONKEY (tag 25)")
	}
	return &enc, nil
}

// fixedHeaderLen is the only valid length of a header leaf, 0 if it varies.
func fixedHeaderLen(tag byte) int {
	switch tag {
	case tagVersion, tagHeaderLength, tagSignerVersion, tagEncPadding, tagEncKeySize:
		return 2
	case tagDigestAlgo, tagSigAlgo, tagSigModulus, tagEncUnknown1, tagEncUnknown2, tagEncKeyAlgo, tagEncHashAlgo:
		return 1
	case tagTimestamp:
		return 4
	case tagEncIV:
		return 16
	}
	return 0
}

func (f *File) headerString(tag byte, off int, v []byte) string {
	s, ok := cstring(v)
	if !ok {
		f.warn("%s at offset %d is not a NUL-terminated string", HeaderTagName(tag), off)
	}
	return s
}

// detectKind decides what follows the header. The signed FILENAME wins over
// the name the caller gives; the body's first bytes decide when neither
// name says.
func (f *File) detectKind(name string, encrypted bool, body []byte) Kind {
	if encrypted {
		return KindENCSGN
	}
	if k := kindOfName(f.Header.Filename); k != KindUnknown {
		return k
	}
	if k := kindOfName(name); k != KindUnknown {
		return k
	}
	if len(body) >= 5 && body[0] == recLength && body[1] == 0 && body[2] == 2 {
		// Nothing but the name tells an ITL from a CTL (both may hold
		// SAST, CCM+TFTP and CAPF records), so say ITL and warn.
		f.warn("kind not named by FILENAME or file name; the body holds records, read as an ITL")
		return KindITL
	}
	return KindSGN
}

// kindOfName classifies a published file name.
func kindOfName(name string) Kind {
	base := strings.ToUpper(path.Base(name))
	switch {
	case name == "":
		return KindUnknown
	case strings.HasSuffix(base, ".ENC.SGN"):
		return KindENCSGN
	case strings.HasSuffix(base, ".TLV") && strings.HasPrefix(base, "CTL"):
		return KindCTL
	case strings.HasSuffix(base, ".TLV") && strings.HasPrefix(base, "ITL"):
		return KindITL
	case strings.HasSuffix(base, ".SGN"), strings.HasSuffix(base, ".SHA512"):
		return KindSGN
	}
	return KindUnknown
}

// parseRecords walks the records from start to the end of the file (§11
// step 4).
func (f *File) parseRecords(b []byte, start int) error {
	for off, n := start, 1; off < len(b); n++ {
		fail := func(at int, format string, args ...any) error {
			e := formatErr(at, format, args...)
			e.Record = n
			return e
		}
		if len(b)-off < 5 {
			return fail(off, "truncated: %d bytes left, a record needs at least 5", len(b)-off)
		}
		if b[off] != recLength {
			return fail(off, "first tag is %d, want RECORDLENGTH (1)", b[off])
		}
		if l := u16(b[off+1:]); l != 2 {
			return fail(off, "RECORDLENGTH has length %d, want 2", l)
		}
		rl := u16(b[off+3:])
		if rl < 5 {
			return fail(off, "RECORDLENGTH %d is less than 5", rl)
		}
		if off+rl > len(b) {
			return fail(off, "RECORDLENGTH %d overruns the end of the file (%d bytes left)", rl, len(b)-off)
		}
		r := Record{Offset: off, Length: rl, tags: 1 << recLength}
		r.Elements = append(r.Elements, Element{Tag: recLength, Offset: off, Length: 2, Value: b[off+3 : off+5], InRecord: true})
		end := off + rl
		for p := off + 5; p < end; {
			if end-p < 3 {
				return fail(p, "truncated TLV: %d bytes left in the record, a tag and length need 3", end-p)
			}
			tag, l := b[p], u16(b[p+1:])
			if p+3+l > end {
				return fail(p, "%s (tag %d) length %d overruns the record, which ends at offset %d", RecordTagName(tag), tag, l, end)
			}
			v := b[p+3 : p+3+l]
			if tag < 16 {
				if r.tags&(1<<tag) != 0 {
					return fail(p, "duplicate %s (tag %d)", RecordTagName(tag), tag)
				}
				r.tags |= 1 << tag
			}
			r.Elements = append(r.Elements, Element{Tag: tag, Offset: p, Length: l, Value: v, InRecord: true})
			switch tag {
			case recDNSName:
				r.DNSName, _ = cstring(v)
			case recSubjectName:
				r.Subject = f.recordString(n, tag, p, v)
			case recIssuerName:
				r.Issuer = f.recordString(n, tag, p, v)
			case recFunction:
				if l != 2 {
					return fail(p, "FUNCTION (tag 4) has length %d, want 2", l)
				}
				r.Role = Role(u16(v))
			case recSerial:
				r.Serial = v
			case recPublicKey:
				r.PublicKey = v
			case recSignature:
				r.Signature = v
			case recCertificate:
				r.Certificate = v
			case recIPAddress:
				r.IPAddress = v
			case recCertHash:
				r.CertHash = v
			case recHashAlgo:
				if l != 1 {
					return fail(p, "HASH ALGORITHM (tag 12) has length %d, want 1", l)
				}
				r.HashAlgorithm = v[0]
			default:
				f.warn("record %d: unknown tag %d (%d bytes) at offset %d skipped", n, tag, l, p)
			}
			p += 3 + l
		}
		f.Records = append(f.Records, r)
		off = end
	}
	return nil
}

func (f *File) recordString(n int, tag byte, off int, v []byte) string {
	s, ok := cstring(v)
	if !ok {
		f.warn("record %d: %s at offset %d is not a NUL-terminated string", n, RecordTagName(tag), off)
	}
	return s
}

// checkRecords parses certificates and keys and cross-checks what a record
// says twice (key, serial, hash). Problems are warnings: a phone reads a
// record by tag, and a record is only used if it is the one a signature
// needs, at which point Key reports the problem.
func (f *File) checkRecords() {
	for i := range f.Records {
		r := &f.Records[i]
		n := i + 1
		if !r.HasTag(recFunction) {
			f.warn("record %d has no FUNCTION", n)
		}
		var pkcs1 *rsa.PublicKey
		if len(r.PublicKey) > 0 {
			pkcs1, _ = x509.ParsePKCS1PublicKey(r.PublicKey)
		}
		if len(r.Certificate) > 0 {
			c, err := x509.ParseCertificate(r.Certificate)
			if err != nil {
				f.warn("record %d: CERTIFICATE does not parse: %v", n, err)
			} else {
				r.cert, r.key = c, c.PublicKey
				if pkcs1 != nil && !pkcs1.Equal(c.PublicKey) {
					f.warn("record %d: PUBLICKEY does not match the CERTIFICATE's key", n)
				}
				if len(r.Serial) > 0 && !sameSerial(r.Serial, c.SerialNumber.Bytes()) {
					f.warn("record %d: SERIALNUMBER %s does not match the CERTIFICATE's %s", n, colonHex(r.Serial), colonHex(c.SerialNumber.Bytes()))
				}
				if len(r.CertHash) == sha1.Size {
					if s := sha1.Sum(r.Certificate); !bytes.Equal(s[:], r.CertHash) {
						f.warn("record %d: CERTHASH is not the SHA-1 of the CERTIFICATE", n)
					}
				}
			}
		}
		if r.key == nil && pkcs1 != nil {
			r.key = pkcs1
		}
		switch {
		case r.HashOnly():
			// CUCM's hash-only records do carry PUBLICKEY, but a phone
			// does not check signatures with them: it goes to TVS
			// (itl-format.md §11 step 5). The key stays for dumps.
			r.keyErr = fmt.Errorf("itl: record %d is hash-only: %w", n, ErrNoKey)
		case r.key == nil && len(r.PublicKey) > 0:
			r.keyErr = fmt.Errorf("itl: record %d: PUBLICKEY is not a PKCS#1 RSA key and there is no certificate: %w", n, ErrNoKey)
		case r.key == nil:
			r.keyErr = fmt.Errorf("itl: record %d carries no key: %w", n, ErrNoKey)
		}
	}
}

// checkFile adds the file-level warnings.
func (f *File) checkFile(c Config, name string) {
	if name != "" && f.Header.Filename != "" && !sameFileName(name, f.Header.Filename) {
		f.warn("FILENAME %q does not match the name %q (whether phones check it is not known)", f.Header.Filename, name)
	}
	if !f.Kind.IsTrustList() {
		return
	}
	if len(f.Records) == 0 {
		f.warn("the %s has no records", f.Kind)
	}
	if f.Kind == KindITL && c.PhoneSizeLimit > 0 && int64(len(f.raw)) > int64(c.PhoneSizeLimit) {
		f.warn("the ITL is %d bytes; phones fail to load an ITL larger than about %s", len(f.raw), c.PhoneSizeLimit)
	}
	sast := 0
	for i := range f.Records {
		if f.Records[i].HasTag(recFunction) && f.Records[i].Role == RoleSAST {
			sast++
		}
	}
	if c.MaxSAST > 0 && sast > c.MaxSAST {
		f.warn("%d SAST records; a trust list may hold at most %d", sast, c.MaxSAST)
	}
	switch {
	case f.IsBlank() && f.Kind == KindITL:
		f.warn("blank (rollback) ITL: a phone that loads it accepts any config file and the next trust list")
	case f.IsBlank():
		f.warn("blank CTL (as CUCM leaves it after leaving mixed mode): its TFTP entries carry no certificate")
	case f.Kind == KindITL && !f.hasRole(RoleTFTP, RoleCCMTFTP):
		f.warn("no TFTP or CCM+TFTP record: a phone holding this ITL cannot verify signed config files")
	}
}

func (f *File) hasRole(roles ...Role) bool {
	for i := range f.Records {
		r := &f.Records[i]
		if r.HasTag(recFunction) && slices.Contains(roles, r.Role) && !r.Empty() {
			return true
		}
	}
	return false
}

// sameFileName compares the name a file was fetched by with its FILENAME.
// CUCM serves ITLSEP<MAC>.tlv with the bytes of ITLFile.tlv (and CTLSEP
// likewise), so those pairs match.
func sameFileName(name, filename string) bool {
	if name == filename || path.Base(name) == path.Base(filename) {
		return true
	}
	family := func(s string) string {
		b := strings.ToUpper(path.Base(s))
		for _, p := range []string{"ITL", "CTL"} {
			if strings.HasSuffix(b, ".TLV") && (b == p+"FILE.TLV" || strings.HasPrefix(b, p+"SEP")) {
				return p
			}
		}
		return ""
	}
	fa := family(name)
	return fa != "" && fa == family(filename)
}

// sameSerial compares serial numbers as unsigned integers: leading zero
// bytes do not count (CUCM's encoding of a serial with the top bit set is
// not known, so either form must match).
func sameSerial(a, b []byte) bool {
	return bytes.Equal(bytes.TrimLeft(a, "\x00"), bytes.TrimLeft(b, "\x00"))
}

func colonHex(b []byte) string {
	const digits = "0123456789ABCDEF"
	if len(b) == 0 {
		return ""
	}
	out := make([]byte, 0, 3*len(b)-1)
	for i, c := range b {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
