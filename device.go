package ctftp

import "strings"

// MACLen is the number of hex digits in a MAC address as Cisco device
// names write it (SEP0011215A1AE3).
const MACLen = 12

// macName is one family of per-device file names: a fixed prefix, exactly
// twelve hex digits, then one of a closed list of suffixes.
type macName struct {
	prefix   string
	suffixes []string
}

// macNames lists the per-device files phones ask for, with the source
// that shows each one. Matching is ASCII case-insensitive: CUCM writes
// upper-case hex, the 7902G/7905G/7912G and the ATA 186/188 ask in lower
// case, and the Windows TFTP servers of CallManager 3.x/4.x never cared.
// A name that merely starts like these ("SEPDEFAULT.cnf.xml",
// "XMLDefault.cnf.xml", "SEP0011215A1AE3.cnf.xml.bak") is not a device
// file: the MAC must be exactly twelve hex digits and the suffix one of
// those listed.
//
// Not listed, on purpose:
//   - "CIP<MAC>": no such file name appears in any source; Cisco IP
//     Communicator registers under a SEP<MAC> device name and asks for
//     SEP<MAC>.cnf.xml like a hardware phone.
//   - Jabber and other soft clients (CSF<user>, BOT…, TCT…, TAB…): their
//     device names carry a user id, not a MAC.
//   - "ITLATA…"/"CTLATA…": plausible but not seen in any source.
//   - 3PCC/MPP firmware profiles (spa$PSN.cfg, $MA.xml): not CUCM files.
var macNames = []macName{
	// Security By Default trust lists (Cisco technote 116232;
	// usecallmanager.nz itl-file-tlv; wazo-provd's cisco plugin).
	{"CTLSEP", []string{".tlv"}},
	{"ITLSEP", []string{".tlv"}},
	// The phone's own configuration: XML, signed, signed+encrypted
	// (technote 116232), and the pre-XML ".cnf" that "Build CNF Files"
	// still produces for old SCCP loads (9.1 system guide).
	{"SEP", []string{".cnf.xml", ".cnf.xml.sgn", ".cnf.xml.enc.sgn", ".cnf"}},
	// 7940/7960 SIP firmware (uoverip.com look-up order; "SIPDefault.cnf"
	// is the shared default and has no MAC).
	{"SIP", []string{".cnf"}},
	// ATA 190/191 register as ATA<MAC> and ask for ATA<MAC>.cnf.xml
	// (wazo-provd cisco plugin: "Only the ATA190 requests this file"; its
	// second port uses the MAC shifted left one byte with 01 appended,
	// still twelve hex digits and still the device name CUCM knows).
	// The ATA 186/188 ask for "ata<mac>" with no extension (ATA 186/188
	// SIP administrator's guide, ch. 3).
	{"ATA", []string{".cnf.xml", ".cnf.xml.sgn", ".cnf.xml.enc.sgn", ""}},
	// 7905G and 7912G profile files "ld<mac>"/"gk<mac>", optionally ".x";
	// 7902G "ff<mac>" (7902G/7905G/7912G administration guide for
	// CallManager 3.3, OL-6313-01; 5.0 SIP guide OL-8131-01).
	{"LD", []string{"", ".x"}},
	{"GK", []string{"", ".x"}},
	{"FF", []string{""}},
}

// DeviceMAC returns the MAC address a per-device file name carries, as
// twelve upper-case hex digits, and whether there was one: the one
// grammar of per-device names that routing (MAC rules, learned routes,
// prefetch) and the cache (the device class) share. Only the last path
// element is looked at. See macNames for the names recognised and where
// each comes from. DeviceMAC is pure and safe for concurrent use.
func DeviceMAC(name string) (mac string, ok bool) {
	base := name[strings.LastIndexByte(name, '/')+1:]
	for _, n := range macNames {
		if len(base) < len(n.prefix)+MACLen || !asciiEqualFold(base[:len(n.prefix)], n.prefix) {
			continue
		}
		digits := base[len(n.prefix) : len(n.prefix)+MACLen]
		if !isHexString(digits) {
			continue
		}
		rest := base[len(n.prefix)+MACLen:]
		for _, s := range n.suffixes {
			if asciiEqualFold(rest, s) {
				return strings.ToUpper(digits), true
			}
		}
	}
	return "", false
}

// asciiEqualFold is strings.EqualFold for ASCII only: EqualFold also folds
// Unicode, so it would take "ſ" (U+017F) for "s" and the Kelvin sign for
// "k", and a file name is bytes, not text.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCIIByte(a[i]) != lowerASCIIByte(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCIIByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isHexString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
