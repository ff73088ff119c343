package trust

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/itl"
)

// ITLFileName is the trust list every CUCM 8.0 or later TFTP server
// publishes (Security By Default) and no earlier one does: its presence is
// what tells the two eras apart.
const ITLFileName = "ITLFile.tlv"

// Class is a side's ITL era, the only thing ITL homogeneity depends on.
// It is a plain value.
type Class int

// The classes. The zero value is ClassUnknown.
const (
	// ClassUnknown: not classified (version "auto" not probed yet, or the
	// probe got no answer or an ITL that does not verify).
	ClassUnknown Class = iota
	// ClassPre80: before CUCM 8.0: no ITL, phones accept unsigned configs.
	ClassPre80
	// ClassSBD: CUCM 8.0 or later with a real ITL (Security By Default).
	// A declared 8.x version that was not probed is also ClassSBD: only a
	// probe can show it to be in rollback.
	ClassSBD
	// ClassRollback: CUCM 8.0 or later publishing a blank ITL ("Prepare
	// Cluster for Rollback to pre 8.0"): phones holding it accept any
	// config, whoever signed it.
	ClassRollback
)

// String returns "unknown", "pre-8.0", "8.x+" or "8.x+ rollback".
func (c Class) String() string {
	switch c {
	case ClassUnknown:
		return "unknown"
	case ClassPre80:
		return "pre-8.0"
	case ClassSBD:
		return "8.x+"
	case ClassRollback:
		return "8.x+ rollback"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// MarshalText writes String, for /status.
func (c Class) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Is8x reports an 8.0-or-later class, rollback included.
func (c Class) Is8x() bool { return c == ClassSBD || c == ClassRollback }

// VersionAuto is the version that has a sub-cluster probed instead of
// declared.
const VersionAuto = "auto"

// ParseVersion reads a sub-cluster's declared version: "auto" gives
// ClassUnknown with auto set; a dotted release below 8 ("7.1", "6.1.5")
// ClassPre80; 8.0 and later ("8.0", "12.5", "14") ClassSBD. Anything else
// is an error. Leading zeros and any number of components are accepted,
// as SubclusterConfig.Validate does.
func ParseVersion(v string) (class Class, auto bool, err error) {
	if v == VersionAuto {
		return ClassUnknown, true, nil
	}
	if !cluster.ValidRelease(v) {
		return ClassUnknown, false, fmt.Errorf("version %q: want %q or a dotted release number such as \"12.5\"", v, VersionAuto)
	}
	major, _, _ := strings.Cut(v, ".")
	// Compared as text so that no release number can overflow: after
	// the leading zeros, two digits or more is 10 or later.
	major = strings.TrimLeft(major, "0")
	if len(major) > 1 || (len(major) == 1 && major[0] >= '8') {
		return ClassSBD, false, nil
	}
	return ClassPre80, false, nil
}

// ClassifyITL classifies a side from the answer to a request for its
// ITLFile.tlv: fetchErr wrapping ctftp.ErrNotFound is ClassPre80; any other
// fetchErr is ClassUnknown and returned (no answer: nothing can be said);
// bytes that parse as an ITL and verify against their own SAST record
// are ClassRollback when the ITL is blank, else ClassSBD; bytes that do
// not are ClassUnknown with an error wrapping ErrBadITL. The returned
// *itl.File refers to data, which must not change afterwards.
func ClassifyITL(data []byte, fetchErr error) (Class, *itl.File, error) {
	if fetchErr != nil {
		if errors.Is(fetchErr, ctftp.ErrNotFound) {
			return ClassPre80, nil, nil
		}
		return ClassUnknown, nil, fetchErr
	}
	f, err := itl.ParseNamed(ITLFileName, data)
	if err != nil {
		return ClassUnknown, nil, fmt.Errorf("%w: %w", ErrBadITL, err)
	}
	if f.Kind != itl.KindITL {
		return ClassUnknown, nil, fmt.Errorf("%w: it holds an %s, not an ITL", ErrBadITL, f.Kind)
	}
	if err := f.Verify(); err != nil {
		return ClassUnknown, nil, fmt.Errorf("%w: %w", ErrBadITL, err)
	}
	if f.IsBlank() {
		return ClassRollback, f, nil
	}
	return ClassSBD, f, nil
}

// CentralName names the gateway's own side (its root's ITLFile.tlv) in
// reports. Sub-cluster names cannot contain parentheses, so it never
// collides with one.
const CentralName = "(central)"

// Classification is what is known about one side's ITL era: the declared
// version and what the last probe found. It is a value; ITL is immutable
// and may be shared.
type Classification struct {
	// Name is the sub-cluster's name, or CentralName.
	Name string `json:"name"`
	// Index is the sub-cluster's position in `subclusters:` (for key
	// paths in messages); -1 for the central side.
	Index int `json:"-"`
	// Declared is the configured version ("12.5", "auto"); "" for the
	// central side, which is always probed (read from the root).
	Declared string `json:"declared,omitempty"`
	// DeclaredClass is what Declared means; ClassUnknown for "auto" and
	// for the central side.
	DeclaredClass Class `json:"declared_class"`
	// Probed says ProbedClass holds a probe's finding.
	Probed bool `json:"probed"`
	// ProbedClass is what a probe found (ClassPre80, ClassSBD or
	// ClassRollback).
	ProbedClass Class `json:"probed_class"`
	// ITL is the verified ITL found by the probe, nil when none.
	ITL *itl.File `json:"-"`
	// Signer identifies who signed ITL.
	Signer string `json:"signer,omitempty"`
	// MD5 is the hex MD5 of ITL, what a phone shows under Settings >
	// Security > Trust List.
	MD5 string `json:"md5,omitempty"`
	// Err is why the last probe did not classify the side (no answer, or
	// ErrBadITL). With Probed still set, the finding is from an earlier
	// probe (Stale).
	Err error `json:"-"`
	// Stale: the last probe failed and ProbedClass, ITL and Signer come
	// from the probe before it.
	Stale bool `json:"stale,omitempty"`
	// At is when the finding was made (zero when never probed).
	At time.Time `json:"at,omitzero"`
}

// Class is the class homogeneity is judged on: the probe's finding when
// there is one, else the declared class.
func (c Classification) Class() Class {
	if c.Probed {
		return c.ProbedClass
	}
	return c.DeclaredClass
}

// Contradicts reports a declared version that the probe disproved: a
// declared pre-8.0 cluster that serves an ITL, or a declared 8.x one that
// serves none.
func (c Classification) Contradicts() bool {
	if !c.Probed || c.DeclaredClass == ClassUnknown {
		return false
	}
	return c.DeclaredClass.Is8x() != c.ProbedClass.Is8x()
}

// key is the config key path a message about c starts with.
func (c Classification) key(field string) string {
	if c.Index < 0 {
		return "root"
	}
	return fmt.Sprintf("subclusters[%d].%s", c.Index, field)
}

// label is how messages name the side.
func (c Classification) label() string {
	if c.Index < 0 {
		return "the gateway's root"
	}
	return fmt.Sprintf("sub-cluster %q", c.Name)
}

// newClassification starts a side's classification from its
// configuration; index -1 is the central side.
func newClassification(name string, index int, declared string) Classification {
	c := Classification{Name: name, Index: index, Declared: declared}
	if index >= 0 {
		c.DeclaredClass, _, _ = ParseVersion(declared) // Validate accepted it
	}
	return c
}

// record puts a probe's outcome into c. A probe that did not classify
// keeps the previous finding, marked stale, so one lost packet does not
// flip a sub-cluster's era.
func (c *Classification) record(class Class, f *itl.File, err error, at time.Time) {
	c.Err = err
	if class == ClassUnknown {
		c.Stale = c.Probed
		return
	}
	c.Probed, c.ProbedClass, c.Stale, c.At = true, class, false, at
	c.ITL, c.Signer, c.MD5 = f, "", ""
	if f != nil {
		c.Signer = signerText(f.Header.Signer)
		sum := md5.Sum(f.Bytes())
		c.MD5 = hex.EncodeToString(sum[:])
	}
}

// signerText names an ITL signer the way the table prints it.
func signerText(id itl.Identity) string {
	return fmt.Sprintf("%s (serial %s)", id.Subject, id.SerialHex())
}

// sameSigner compares two signers the way phones find them: issuer and
// serial number, the serial as an integer (with or without a leading
// zero byte).
func sameSigner(a, b itl.Identity) bool {
	if a.Issuer != b.Issuer {
		return false
	}
	if bytes.Equal(a.Serial, b.Serial) {
		return true
	}
	return new(big.Int).SetBytes(a.Serial).Cmp(new(big.Int).SetBytes(b.Serial)) == 0
}

// Declared returns one Classification per sub-cluster of cfg, in order,
// from its declared version alone: what `ctftp validate --offline`
// judges, no packet sent.
func Declared(cfg cluster.Config) []Classification {
	out := make([]Classification, len(cfg.Subclusters))
	for i, sc := range cfg.Subclusters {
		out[i] = newClassification(sc.Name, i, sc.Version)
	}
	return out
}

// Central classifies the gateway's own side from its root's ITLFile.tlv:
// data, or the error reading it (wrapping ctftp.ErrNotFound when there is
// none), as ClassifyITL does.
func Central(data []byte, readErr error, at time.Time) Classification {
	c := newClassification(CentralName, -1, "")
	class, f, err := ClassifyITL(data, readErr)
	c.record(class, f, err, at)
	return c
}
