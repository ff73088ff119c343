package itl

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"strings"
)

// CiscoName renders a DER-encoded X.509 Name (a certificate's RawSubject
// or RawIssuer) the way CUCM writes it into trust lists: attributes in
// certificate order, KEY=value, joined by ";" with no spaces, e.g.
// "CN=cucm-1051-a-pub;OU=TAC;O=Cisco;L=Krakow;ST=Malopolska;C=PL". Values
// are not escaped, because the lengths in Cisco's dumps only add up without
// escapes. Attributes of one multi-valued RDN are joined by "+".
func CiscoName(der []byte) (string, error) {
	var rdns pkix.RDNSequence
	rest, err := asn1.Unmarshal(der, &rdns)
	if err != nil {
		return "", fmt.Errorf("itl: decode name: %w", err)
	}
	if len(rest) > 0 {
		return "", fmt.Errorf("itl: decode name: %d trailing bytes", len(rest))
	}
	var b strings.Builder
	for i, rdn := range rdns {
		if i > 0 {
			b.WriteByte(';')
		}
		for j, atv := range rdn {
			if j > 0 {
				b.WriteByte('+')
			}
			b.WriteString(attrKey(atv.Type))
			b.WriteByte('=')
			if s, ok := atv.Value.(string); ok {
				b.WriteString(s)
			} else {
				fmt.Fprint(&b, atv.Value)
			}
		}
	}
	return b.String(), nil
}

// attrKey names an attribute type the way OpenSSL and CUCM do, or gives
// its dotted OID.
func attrKey(oid asn1.ObjectIdentifier) string {
	if len(oid) == 4 && oid[0] == 2 && oid[1] == 5 && oid[2] == 4 {
		switch oid[3] {
		case 3:
			return "CN"
		case 4:
			return "SN"
		case 5:
			return "SERIALNUMBER"
		case 6:
			return "C"
		case 7:
			return "L"
		case 8:
			return "ST"
		case 9:
			return "STREET"
		case 10:
			return "O"
		case 11:
			return "OU"
		case 12:
			return "title"
		case 17:
			return "POSTALCODE"
		case 42:
			return "GN"
		}
	}
	switch oid.String() {
	case "1.2.840.113549.1.9.1":
		return "emailAddress"
	case "0.9.2342.19200300.100.1.25":
		return "DC"
	case "0.9.2342.19200300.100.1.1":
		return "UID"
	}
	return oid.String()
}

// sameName compares two names as trust-list readers must: the separator
// may be ";" (Cisco, certutils before Aug 2024) or "," (certutils since),
// spaces may follow a separator, keys may differ in case (a CUCM eToken
// dump shows "cn=") and a backslash may escape a separator (RFC 4514).
// Both names get the same treatment, so a value that itself holds a comma
// compares equal as long as both sides carry the same characters.
func sameName(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	return a == b || strings.EqualFold(normName(a), normName(b))
}

func normName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	afterSep := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && (s[i+1] == ',' || s[i+1] == ';'):
			continue
		case c == ';' || c == ',':
			b.WriteByte(',')
			afterSep = true
			continue
		case c == ' ' && afterSep:
			continue
		}
		afterSep = false
		b.WriteByte(c)
	}
	return b.String()
}
