package itl

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Name is the element's display name, as CUCM's `show itl` prints it.
func (e Element) Name() string {
	if e.InRecord {
		return RecordTagName(e.Tag)
	}
	return HeaderTagName(e.Tag)
}

// IsContainer reports a header element that groups others.
func (e Element) IsContainer() bool { return !e.InRecord && isContainer(e.Tag) }

// Text renders the value the way `show itl` does: the container length for
// groups, text for names, colon hex for serials, role names for FUNCTION,
// the SHA-1 of a CERTIFICATE, the size of a key; empty for signatures and
// pad bytes, which CUCM omits too.
func (e Element) Text() string {
	if e.IsContainer() {
		return strconv.Itoa(e.Length)
	}
	v := e.Value
	if e.InRecord {
		switch e.Tag {
		case recLength:
			return strconv.Itoa(u16(v))
		case recDNSName, recSubjectName, recIssuerName:
			s, _ := cstring(v)
			return s
		case recFunction:
			if len(v) == 2 {
				return Role(u16(v)).String()
			}
		case recSerial:
			return colonHex(v)
		case recPublicKey:
			if k, err := x509.ParsePKCS1PublicKey(v); err == nil {
				return fmt.Sprintf("RSA %d bits", k.N.BitLen())
			}
			if len(v) > 0 && v[0] == 4 {
				return fmt.Sprintf("EC point, %d bytes", len(v))
			}
			return ""
		case recSignature:
			return ""
		case recCertificate:
			s := sha1.Sum(v)
			return spacedHex(s[:]) + " (SHA1 Hash HEX)"
		case recIPAddress:
			if a, ok := netip.AddrFromSlice(v); ok {
				return a.String()
			}
		case recCertHash:
			return spacedHex(v)
		case recHashAlgo:
			if len(v) == 1 {
				return Digest(v[0]).String()
			}
		}
		return shortHex(v)
	}
	if n := fixedHeaderLen(e.Tag); n > 0 && len(v) != n {
		return shortHex(v)
	}
	switch e.Tag {
	case tagPadding, tagSignature:
		return ""
	case tagVersion, tagSignerVersion:
		return fmt.Sprintf("%d.%d", v[0], v[1])
	case tagHeaderLength, tagEncPadding, tagEncKeySize:
		return strconv.Itoa(u16(v))
	case tagSignerName, tagCAName, tagFilename:
		s, _ := cstring(v)
		return s
	case tagSerialNumber:
		return colonHex(v)
	case tagDigestAlgo, tagEncHashAlgo:
		return Digest(v[0]).String()
	case tagSigAlgo:
		if v[0] == 0 {
			return "RSA"
		}
		return fmt.Sprintf("UNKNOWN(%d)", v[0])
	case tagSigModulus:
		if b := modulusBits(v[0]); b != 0 {
			return fmt.Sprintf("%d bits", b)
		}
		return fmt.Sprintf("UNKNOWN(%d)", v[0])
	case tagTimestamp:
		return time.Unix(int64(binary.BigEndian.Uint32(v)), 0).UTC().Format(time.UnixDate)
	case tagEncUnknown1, tagEncUnknown2, tagEncKeyAlgo:
		return strconv.Itoa(int(v[0]))
	case tagEncIV, tagEncHash:
		return spacedHex(v)
	case tagEncKey:
		return fmt.Sprintf("(%d bytes)", len(v))
	}
	return shortHex(v)
}

func spacedHex(b []byte) string {
	var s strings.Builder
	for i, c := range b {
		if i > 0 {
			s.WriteByte(' ')
		}
		fmt.Fprintf(&s, "%02X", c)
	}
	return s.String()
}

// shortHex shows at most 32 bytes of an undocumented value.
func shortHex(b []byte) string {
	if len(b) > 32 {
		return spacedHex(b[:32]) + " ..."
	}
	return spacedHex(b)
}
