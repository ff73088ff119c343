package cache

import (
	"path"
	"strings"
)

// Class is the kind of file a name denotes, which decides its TTL.
type Class uint8

// The file classes, from the file name alone.
const (
	// ClassOther is anything not recognised below.
	ClassOther Class = iota
	// ClassTrust is an ITL or CTL trust list (*.tlv).
	ClassTrust
	// ClassConfig is a device configuration, dial plan, ring list or
	// other signed file (*.cnf, *.cnf.xml, *.xml, *.cfg, *.txt, *.sgn).
	ClassConfig
	// ClassFirmware is a phone load (*.loads, *.sbn, *.sebn, *.sb2, *.sbin,
	// *.bin, *.zz, *.zup, *.pkg, *.tar, *.img).
	ClassFirmware
)

// String returns the class name used in logs and in config keys.
func (k Class) String() string {
	switch k {
	case ClassTrust:
		return "trust"
	case ClassConfig:
		return "config"
	case ClassFirmware:
		return "firmware"
	default:
		return "other"
	}
}

// isFirmwareExt reports the extensions of Cisco phone loads as they ship
// in cmterm-*.zip archives: SCCP41.9-4-2SR3-1S.loads, jar41sccp.9-4-2ES26.sbn,
// kern9971.9-4-2.sebn (89xx/99xx), P00308010200.sb2 and .bin (7940/7960),
// CP7912...sbin and .zup (7905/7912), plus the archive and image formats
// some models fetch (.zz, .pkg, .tar, .img). Loads carry their version in
// the name, so a name never changes content: they can live long.
func isFirmwareExt(ext string) bool {
	switch ext {
	case ".loads", ".sbn", ".sebn", ".sb2", ".sbin", ".bin", ".zz", ".zup", ".pkg", ".tar", ".img":
		return true
	}
	return false
}

// isConfigExt reports extensions of files an admin edits in CUCM: device
// configs (SEP<MAC>.cnf.xml, SIPDefault.cnf), dial plans and ring lists
// (*.xml), and the 7940/7960 OS79XX.TXT pointer to the current load.
func isConfigExt(ext string) bool {
	switch ext {
	case ".cnf", ".xml", ".cfg", ".txt":
		return true
	}
	return false
}

// ClassOf classifies a request name by its base name, ignoring ASCII case
// (phones and admins do not agree on it: CP7925G-1.4.7.3.LOADS). A signed
// (.sgn) or encrypted-and-signed (.enc.sgn) wrapper is classified by the
// file it wraps; a signed file that is neither a trust list nor a load is
// a config. ClassOf is pure and safe for concurrent use.
func ClassOf(name string) Class {
	base := lowerASCII(path.Base(name))
	signed := false
	if b, ok := strings.CutSuffix(base, ".sgn"); ok {
		base, signed = b, true
		base = strings.TrimSuffix(base, ".enc")
	}
	ext := path.Ext(base)
	switch {
	case ext == ".tlv":
		return ClassTrust
	case isFirmwareExt(ext):
		return ClassFirmware
	case isConfigExt(ext) || signed:
		return ClassConfig
	}
	return ClassOther
}

// lowerASCII folds only A-Z, so that classification cannot depend on
// Unicode case rules (strings.ToLower maps the Kelvin sign to "k").
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
