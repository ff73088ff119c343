package itl

import (
	"crypto"
	"fmt"
	"strconv"
	"strings"
)

// Header tags (itl-format.md §2.1). The numbers are the same in Cisco's
// dumps, SCFParser and certutils; 16–28 come from certutils alone.
const (
	tagVersion        = 1
	tagHeaderLength   = 2
	tagSignerID       = 3 // container: 4, 5, 6
	tagSignerName     = 4
	tagSerialNumber   = 5
	tagCAName         = 6
	tagSignatureInfo  = 7 // container: 8, 9
	tagDigestAlgo     = 8
	tagSigAlgoInfo    = 9 // container: 10, 11
	tagSigAlgo        = 10
	tagSigModulus     = 11
	tagSignature      = 12
	tagPadding        = 13 // one byte, no length and no value
	tagFilename       = 14
	tagTimestamp      = 15
	tagEncInfo        = 16 // container: 17, 21 (and 26, 27 in older certutils)
	tagEncIVInfo      = 17 // container: 18, 19, 20
	tagEncUnknown1    = 18
	tagEncIV          = 19
	tagEncPadding     = 20
	tagEncKeyInfo     = 21 // container: 22, 23, 24, 25
	tagEncUnknown2    = 22
	tagEncKeySize     = 23
	tagEncKeyAlgo     = 24
	tagEncKey         = 25
	tagEncHashAlgo    = 26
	tagEncHash        = 27
	tagSignerVersion  = 28
	maxHeaderTagKnown = 28
)

// Record tags (itl-format.md §3.1). They are a namespace of their own: tag 2
// is HEADERLENGTH in a header but DNSNAME in a record.
const (
	recLength      = 1
	recDNSName     = 2
	recSubjectName = 3
	recFunction    = 4
	recIssuerName  = 5
	recSerial      = 6
	recPublicKey   = 7
	recSignature   = 8
	recCertificate = 9
	recIPAddress   = 10
	recCertHash    = 11
	recHashAlgo    = 12
)

// isContainer reports whether a header tag groups child TLVs. Its length
// counts the children, and a parser steps into it instead of skipping it.
func isContainer(tag byte) bool {
	switch tag {
	case tagSignerID, tagSignatureInfo, tagSigAlgoInfo, tagEncInfo, tagEncIVInfo, tagEncKeyInfo:
		return true
	}
	return false
}

// HeaderTagName is the display name of a header tag: the names Cisco's
// `show itl` prints (typos included, so that output can be compared with a
// CUCM dump line by line); the encryption tags carry certutils' names, since
// Cisco never printed them. Tags no source documents are "UNKNOWN".
func HeaderTagName(tag byte) string {
	switch tag {
	case tagVersion:
		return "VERSION"
	case tagHeaderLength:
		return "HEADERLENGTH"
	case tagSignerID:
		return "SIGNERID"
	case tagSignerName:
		return "SIGNERNAME"
	case tagSerialNumber:
		return "SERIALNUMBER"
	case tagCAName:
		return "CANAME"
	case tagSignatureInfo:
		return "SIGNATUREINFO"
	case tagDigestAlgo:
		return "DIGESTALGORTITHM"
	case tagSigAlgoInfo:
		return "SIGNATUREALGOINFO"
	case tagSigAlgo:
		return "SIGNATUREALGORTITHM"
	case tagSigModulus:
		return "SIGNATUREMODULUS"
	case tagSignature:
		return "SIGNATURE"
	case tagPadding:
		return "PADDING"
	case tagFilename:
		return "FILENAME"
	case tagTimestamp:
		return "TIMESTAMP"
	case tagEncInfo:
		return "ENCRYPTIONINFO"
	case tagEncIVInfo:
		return "ENCRYPTIONIVINFO"
	case tagEncUnknown1:
		return "ENCRYPTIONUNKNOWN1"
	case tagEncIV:
		return "ENCRYPTIONIV"
	case tagEncPadding:
		return "ENCRYPTIONPADDING"
	case tagEncKeyInfo:
		return "ENCRYPTIONKEYINFO"
	case tagEncUnknown2:
		return "ENCRYPTIONUNKNOWN2"
	case tagEncKeySize:
		return "ENCRYPTIONKEYSIZE"
	case tagEncKeyAlgo:
		return "ENCRYPTIONKEYALGORITHM"
	case tagEncKey:
		return "ENCRYPTIONKEY"
	case tagEncHashAlgo:
		return "ENCRYPTIONHASHALGORITHM"
	case tagEncHash:
		return "ENCRYPTIONHASH"
	case tagSignerVersion:
		return "SIGNERVERSION"
	}
	return "UNKNOWN"
}

// RecordTagName is the display name of a record tag, as CUCM prints it;
// tags no source documents are "UNKNOWN".
func RecordTagName(tag byte) string {
	switch tag {
	case recLength:
		return "RECORDLENGTH"
	case recDNSName:
		return "DNSNAME"
	case recSubjectName:
		return "SUBJECTNAME"
	case recFunction:
		return "FUNCTION"
	case recIssuerName:
		return "ISSUERNAME"
	case recSerial:
		return "SERIALNUMBER"
	case recPublicKey:
		return "PUBLICKEY"
	case recSignature:
		return "SIGNATURE"
	case recCertificate:
		return "CERTIFICATE"
	case recIPAddress:
		return "IPADDRESS"
	case recCertHash:
		return "CERTHASH"
	case recHashAlgo:
		return "HASH ALGORITHM"
	}
	return "UNKNOWN"
}

// Kind is what a signed file carries after its header. Kind, Role, Digest
// and Version are plain values, safe to copy and compare.
type Kind int

// The kinds of file Parse recognises. The zero value means "not known".
const (
	KindUnknown Kind = iota
	KindITL          // Identity Trust List: ITLFile.tlv, ITLSEP<MAC>.tlv
	KindCTL          // Certificate Trust List: CTLFile.tlv, CTLSEP<MAC>.tlv
	KindSGN          // a signed envelope around a plain payload (*.sgn)
	KindENCSGN       // a signed envelope around an encrypted config (*.enc.sgn)
)

// String returns "ITL", "CTL", "SGN", "ENCSGN" or "unknown".
func (k Kind) String() string {
	switch k {
	case KindITL:
		return "ITL"
	case KindCTL:
		return "CTL"
	case KindSGN:
		return "SGN"
	case KindENCSGN:
		return "ENCSGN"
	}
	return "unknown"
}

// IsTrustList reports whether the kind holds certificate records.
func (k Kind) IsTrustList() bool { return k == KindITL || k == KindCTL }

// Role is a record's FUNCTION code: what the certificate is trusted for.
type Role uint16

// The FUNCTION codes (itl-format.md §3.2).
const (
	RoleSAST      Role = 0  // System Administrator Security Token: may sign the ITL/CTL
	RoleCCM       Role = 1  // CallManager (SIP/SCCP TLS)
	RoleCCMTFTP   Role = 2  // CallManager and TFTP signer
	RoleTFTP      Role = 3  // TFTP signer only
	RoleCAPF      Role = 4  // Certificate Authority Proxy Function
	RoleSRST      Role = 5  // only in the 2017 Perl certutils; low confidence
	RoleAppServer Role = 7  // HTTPS application servers
	RoleTVS       Role = 21 // Trust Verification Service (TCP 2445)
)

// roleNames gives a role's display name (as CUCM's `show itl` prints it)
// and its short name (as the CLI accepts it).
func roleNames(r Role) (display, short string, ok bool) {
	switch r {
	case RoleSAST:
		return "System Administrator Security Token", "sast", true
	case RoleCCM:
		return "CCM", "ccm", true
	case RoleCCMTFTP:
		return "CCM+TFTP", "ccm+tftp", true
	case RoleTFTP:
		return "TFTP", "tftp", true
	case RoleCAPF:
		return "CAPF", "capf", true
	case RoleSRST:
		return "SRST", "srst", true
	case RoleAppServer:
		return "APP-SERVER", "app-server", true
	case RoleTVS:
		return "TVS", "tvs", true
	}
	return "", "", false
}

// knownRoles lists the roles roleNames knows, for ParseRole.
func knownRoles() []Role {
	return []Role{RoleSAST, RoleCCM, RoleCCMTFTP, RoleTFTP, RoleCAPF, RoleSRST, RoleAppServer, RoleTVS}
}

// String returns the name CUCM's `show itl` prints for the role, or
// "UNKNOWN(n)".
func (r Role) String() string {
	if d, _, ok := roleNames(r); ok {
		return d
	}
	return "UNKNOWN(" + strconv.Itoa(int(r)) + ")"
}

// Short returns the role's short name ("sast", "ccm+tftp", "tvs", ...), the
// form ParseRole and the CLI accept, or the decimal code for unknown roles.
func (r Role) Short() string {
	if _, s, ok := roleNames(r); ok {
		return s
	}
	return strconv.Itoa(int(r))
}

// ParseRole reads a role by short name (case-insensitive: "sast",
// "ccm", "ccm+tftp", "tftp", "capf", "srst", "app-server", "tvs"), by the
// name CUCM prints, or as a decimal code.
func ParseRole(s string) (Role, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case "ccm-tftp", "ccmtftp":
		return RoleCCMTFTP, nil
	case "appserver", "https":
		return RoleAppServer, nil
	}
	for _, r := range knownRoles() {
		d, short, _ := roleNames(r)
		if t == short || strings.EqualFold(strings.TrimSpace(s), d) {
			return r, nil
		}
	}
	v, err := strconv.ParseUint(t, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("role %q: want sast, ccm, ccm+tftp, tftp, capf, srst, app-server, tvs or a number", s)
	}
	return Role(v), nil
}

// Digest is the header's DIGESTALGO code: the hash the RSA signature is
// computed with.
type Digest uint8

// The digest codes (itl-format.md §4.2).
const (
	SHA1   Digest = 1 // the default; certain
	SHA256 Digest = 2 // a certutils constant never seen in real files; read and verified only
	SHA512 Digest = 3 // current certutils and CUCM's "TFTP File Signature Algorithm" option
)

// Hash returns the crypto.Hash of a known code, or 0.
func (d Digest) Hash() crypto.Hash {
	switch d {
	case SHA1:
		return crypto.SHA1
	case SHA256:
		return crypto.SHA256
	case SHA512:
		return crypto.SHA512
	}
	return 0
}

// String returns "SHA-1", "SHA-256", "SHA-512" or "UNKNOWN(n)".
func (d Digest) String() string {
	switch d {
	case SHA1:
		return "SHA-1"
	case SHA256:
		return "SHA-256"
	case SHA512:
		return "SHA-512"
	}
	return "UNKNOWN(" + strconv.Itoa(int(d)) + ")"
}

// ParseDigest reads "sha1", "sha256" or "sha512" (also with a dash, any
// case).
func ParseDigest(s string) (Digest, error) {
	switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "") {
	case "sha1":
		return SHA1, nil
	case "sha256":
		return SHA256, nil
	case "sha512":
		return SHA512, nil
	}
	return 0, fmt.Errorf("digest %q: want sha1 or sha512", s)
}

// Version is a major.minor pair: the file VERSION (tag 1) or the signer
// version (tag 28).
type Version struct{ Major, Minor uint8 }

// String returns "major.minor".
func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// The VERSION values written by Build, Sign and SignEncrypted
// (itl-format.md §8): 1.2 is what every Cisco ITL/CTL dump shows; 1.0 and
// 2.0 are what certutils writes for .sgn and .enc.sgn (what CUCM writes
// there is not public).
func fileVersion(k Kind) Version {
	switch k {
	case KindSGN:
		return Version{1, 0}
	case KindENCSGN:
		return Version{2, 0}
	}
	return Version{1, 2}
}

// modulusCode maps an RSA size to the SIGNATUREMODULUS code.
func modulusCode(bits int) (byte, bool) {
	switch bits {
	case 512:
		return 0, true
	case 1024:
		return 1, true
	case 2048:
		return 2, true
	case 4096:
		return 3, true
	}
	return 0, false
}

// modulusBits maps a SIGNATUREMODULUS code to an RSA size, 0 if unknown.
func modulusBits(code byte) int {
	switch code {
	case 0:
		return 512
	case 1:
		return 1024
	case 2:
		return 2048
	case 3:
		return 4096
	}
	return 0
}
