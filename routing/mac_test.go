package routing

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMAC(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		wantMAC string
		wantOK  bool
	}{
		{"ctl per device", "CTLSEP0011215A1AE3.tlv", "0011215A1AE3", true},
		{"itl per device", "ITLSEP0011215A1AE3.tlv", "0011215A1AE3", true},
		{"xml config", "SEP0011215A1AE3.cnf.xml", "0011215A1AE3", true},
		{"signed config", "SEP0011215A1AE3.cnf.xml.sgn", "0011215A1AE3", true},
		{"encrypted config", "SEP0011215A1AE3.cnf.xml.enc.sgn", "0011215A1AE3", true},
		{"old sccp cnf", "SEP0011215A1AE3.cnf", "0011215A1AE3", true},
		{"sip 7940", "SIP0011215A1AE3.cnf", "0011215A1AE3", true},
		{"ata190", "ATA0C1167A54221.cnf.xml", "0C1167A54221", true},
		{"ata190 signed", "ATA0C1167A54221.cnf.xml.sgn", "0C1167A54221", true},
		{"ata186 lower case", "ata0a141e28323c", "0A141E28323C", true},
		{"7905 profile", "ld0011215a1ae3", "0011215A1AE3", true},
		{"7905 profile .x", "ld0011215a1ae3.x", "0011215A1AE3", true},
		{"7912 profile", "gk0011215a1ae3.x", "0011215A1AE3", true},
		{"7902 profile", "ff0011215a1ae3", "0011215A1AE3", true},
		{"7902 lower-case sep", "SEP0011215a1ae3.cnf.xml", "0011215A1AE3", true},
		{"all lower case", "sep0011215a1ae3.cnf.xml.sgn", "0011215A1AE3", true},
		{"mixed-case suffix", "SEP0011215A1AE3.CNF.XML", "0011215A1AE3", true},
		{"in a directory", "phones/SEP0011215A1AE3.cnf.xml", "0011215A1AE3", true},

		{"sep default", "SEPDEFAULT.cnf.xml", "", false},
		{"xml default", "XMLDefault.cnf.xml", "", false},
		{"sip default", "SIPDefault.cnf", "", false},
		{"shared itl", "ITLFile.tlv", "", false},
		{"shared ctl", "CTLFile.tlv", "", false},
		{"firmware load", "SIP88xx.12-8-1-0001-455.loads", "", false},
		{"7905 default profile", "lddefault.cfg", "", false},
		{"ata default", "atadefault.cfg", "", false},
		{"11 digits", "SEP0011215A1AE.cnf.xml", "", false},
		{"13 digits", "SEP0011215A1AE30.cnf.xml", "", false},
		{"non-hex digit", "SEP0011215A1AEG.cnf.xml", "", false},
		{"separators not allowed in names", "SEP00:11:21:5A:1A:E3.cnf.xml", "", false},
		{"unknown suffix", "SEP0011215A1AE3.cnf.xml.bak", "", false},
		{"no suffix for sep", "SEP0011215A1AE3", "", false},
		{"tlv needs ctl or itl", "SEP0011215A1AE3.tlv", "", false},
		{"sip has no xml", "SIP0011215A1AE3.cnf.xml", "", false},
		{"ctl needs tlv", "CTLSEP0011215A1AE3.cnf.xml", "", false},
		{"cip is not a cisco name", "CIP0011215A1AE3.cnf.xml", "", false},
		{"jabber csf", "CSFJSMITH.cnf.xml", "", false},
		{"empty", "", "", false},
		{"prefix only", "SEP", "", false},
		{"trailing slash", "SEP0011215A1AE3.cnf.xml/", "", false},
		// A name shorter than prefix+12 must not be sliced out of range.
		{"short ctl", "CTLSEP0", "", false},
		{"multibyte", "SEP0011215A1AE\u00e9.cnf.xml", "", false},
		// Unicode case folding would take U+017F (long s) for "s".
		{"long s in suffix", "SEP0011215A1AE3.cnf.xml.\u017fgn", "", false},
		{"kelvin sign in prefix", "g\u212a0011215a1ae3.x", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mac, ok := ParseMAC(tt.file)
			if mac != tt.wantMAC || ok != tt.wantOK {
				t.Errorf("ParseMAC(%q) = %q, %v; want %q, %v", tt.file, mac, ok, tt.wantMAC, tt.wantOK)
			}
		})
	}
}

func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{
		"SEP0011215A1AE3.cnf.xml.sgn", "CTLSEP0011215A1AE3.tlv", "ITLSEP0011215A1AE3.tlv",
		"SIP0011215A1AE3.cnf", "ata0a141e28323c", "gk0011215a1ae3.x", "SEPDEFAULT.cnf.xml",
		"a/b/SEP0011215A1AE3.cnf", "", "SEP",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		mac, ok := ParseMAC(name)
		if !ok {
			if mac != "" {
				t.Fatalf("ParseMAC(%q) = %q, false; want an empty MAC", name, mac)
			}
			return
		}
		if len(mac) != macLen || strings.ToUpper(mac) != mac || !isHex(mac) {
			t.Fatalf("ParseMAC(%q) = %q: not 12 upper-case hex digits", name, mac)
		}
		base := name[strings.LastIndexByte(name, '/')+1:]
		if !strings.Contains(strings.ToUpper(base), mac) {
			t.Fatalf("ParseMAC(%q) = %q: not taken from the name", name, mac)
		}
		// Case-insensitive: the same name in either case names the same MAC.
		for _, v := range []string{strings.ToLower(name), strings.ToUpper(name)} {
			if m2, ok2 := ParseMAC(v); !ok2 || m2 != mac {
				t.Fatalf("ParseMAC(%q) = %q, %v; ParseMAC(%q) = %q, true", v, m2, ok2, name, mac)
			}
		}
		// Only the last path element counts.
		if m2, ok2 := ParseMAC("dir/" + name); !ok2 || m2 != mac {
			t.Fatalf("ParseMAC(dir/%q) = %q, %v; want %q, true", name, m2, ok2, mac)
		}
	})
}

func TestParseMACConfig(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantMAC    string
		wantMACErr error
		wantPrefix string
		wantPfxErr error
	}{
		{"plain", "0011215A1AE3", "0011215A1AE3", nil, "0011215A1AE3", nil},
		{"lower case", "0011215a1ae3", "0011215A1AE3", nil, "0011215A1AE3", nil},
		{"colons", "00:11:21:5a:1a:e3", "0011215A1AE3", nil, "0011215A1AE3", nil},
		{"dashes", "00-11-21-5A-1A-E3", "0011215A1AE3", nil, "0011215A1AE3", nil},
		{"cisco dots", "0011.215a.1ae3", "0011215A1AE3", nil, "0011215A1AE3", nil},
		{"oui", "00AABB", "", errMACTooShort, "00AABB", nil},
		{"oui with colons", "00:aa:bb", "", errMACTooShort, "00AABB", nil},
		{"one digit", "0", "", errMACTooShort, "0", nil},
		{"odd length", "00AAB", "", errMACTooShort, "00AAB", nil},
		{"13 digits", "0011215A1AE30", "", errMACTooLong, "", errMACTooLong},
		{"empty", "", "", errMACEmpty, "", errMACEmpty},
		{"only separators", ":-.", "", errMACEmpty, "", errMACEmpty},
		{"bad digit", "0011215A1AEG", "", errMACDigit, "", errMACDigit},
		{"space", "00 11 21 5A 1A E3", "", errMACDigit, "", errMACDigit},
		{"sep prefix is not a mac", "SEP0011215A1AE3", "", errMACDigit, "", errMACDigit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mac, err := parseMAC(tt.in)
			if mac != tt.wantMAC || !errors.Is(err, tt.wantMACErr) || (err == nil) != (tt.wantMACErr == nil) {
				t.Errorf("parseMAC(%q) = %q, %v; want %q, %v", tt.in, mac, err, tt.wantMAC, tt.wantMACErr)
			}
			p, err := parseMACPrefix(tt.in)
			if p != tt.wantPrefix || !errors.Is(err, tt.wantPfxErr) || (err == nil) != (tt.wantPfxErr == nil) {
				t.Errorf("parseMACPrefix(%q) = %q, %v; want %q, %v", tt.in, p, err, tt.wantPrefix, tt.wantPfxErr)
			}
		})
	}
}
