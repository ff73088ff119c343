package cache

import (
	"fmt"
	"path"
	"strings"

	"github.com/ctftp/ctftp"
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
	// ClassDevice is a per-device file, one phone's own: CTLSEP<MAC>.tlv,
	// ITLSEP<MAC>.tlv, SEP<MAC>.cnf.xml[.sgn|.enc.sgn], SIP<MAC>.cnf and
	// the other names ctftp.DeviceMAC reads a MAC from. One phone asks for
	// it once per boot, and an admin's change to that phone must reach it
	// at its next boot, so it is kept only for a burst window.
	ClassDevice

	// numClasses counts the classes above: Class(0) to numClasses-1.
	numClasses = iota
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
	case ClassDevice:
		return "device"
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

// parseClass reads a class name as config writes it.
func parseClass(s string) (Class, error) {
	for k := range Class(numClasses) {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%q: want device, trust, config, firmware or other", s)
}

// ClassOf classifies a request name by its base name, ignoring ASCII case
// (phones and admins do not agree on it: CP7925G-1.4.7.3.LOADS). A name
// that carries a MAC (ctftp.DeviceMAC) is a device file, whatever its
// extension. Otherwise a signed (.sgn) or encrypted-and-signed (.enc.sgn)
// wrapper is classified by the file it wraps; a signed file that is
// neither a trust list nor a load is a config. ClassOf is pure and safe
// for concurrent use.
func ClassOf(name string) Class {
	if _, ok := ctftp.DeviceMAC(name); ok {
		return ClassDevice
	}
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

// ClassRule puts the names matching Glob in Class, before ClassOf's
// built-in classification: e.g. a shared XMLDefault.cnf.xml an admin
// edits often into device, to get it fresh like a phone's own file.
type ClassRule struct {
	// Glob is matched against the whole requested name with path.Match
	// (case-sensitive, as phones ask: "SEP*.cnf.xml", "Desktops/*").
	Glob string `mapstructure:"glob"`
	// Class is device, trust, config, firmware or other.
	Class string `mapstructure:"class"`
}

// classifier is ClassOf behind the configured rules.
type classifier []compiledRule

type compiledRule struct {
	glob  string
	class Class
}

// newClassifier compiles rules; every problem names its key relative to
// the cache section.
func newClassifier(rules []ClassRule) (classifier, []error) {
	var out classifier
	var errs []error
	for i, r := range rules {
		key := fmt.Sprintf("classes[%d]", i)
		if r.Glob == "" {
			errs = append(errs, fmt.Errorf("%s.glob: missing", key))
		} else if _, err := path.Match(r.Glob, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s.glob: %q: %w", key, r.Glob, err))
		}
		k, err := parseClass(r.Class)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.class: %w", key, err))
		}
		out = append(out, compiledRule{glob: r.Glob, class: k})
	}
	return out, errs
}

// of returns the class of name: the first rule whose glob matches, else
// ClassOf.
func (c classifier) of(name string) Class {
	for _, r := range c {
		if ok, _ := path.Match(r.glob, name); ok {
			return r.class
		}
	}
	return ClassOf(name)
}
