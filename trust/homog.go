package trust

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Verdict is the homogeneity of the whole setup: the gateway's own side
// and every sub-cluster. A plain value.
type Verdict int

// The verdicts. The zero value is VerdictUndecided.
const (
	// VerdictUndecided: eras are mixed, and whether that is safe depends
	// on sub-clusters declared 8.x+ that were not probed (they might be
	// in rollback); or nothing could be classified at all.
	VerdictUndecided Verdict = iota
	// VerdictAll8x: every classified side is 8.0 or later (rollback
	// included): each phone's ITLSEP file comes from its own cluster.
	VerdictAll8x
	// VerdictAllPre80: every classified side is before 8.0: no ITLs.
	VerdictAllPre80
	// VerdictMixedRollback: both eras, but every 8.x+ side, the central
	// one included, publishes a verified blank ITL. It runs, with a
	// warning: ITL security is off.
	VerdictMixedRollback
	// VerdictMixed: both eras with a real ITL on some 8.x+ side. Phones
	// given one side's ITL distrust the other side's files: refused.
	VerdictMixed
)

// String names the verdict for logs and tables.
func (v Verdict) String() string {
	switch v {
	case VerdictUndecided:
		return "undecided"
	case VerdictAll8x:
		return "homogeneous 8.x+"
	case VerdictAllPre80:
		return "homogeneous pre-8.0"
	case VerdictMixedRollback:
		return "mixed, every 8.x+ side in rollback"
	case VerdictMixed:
		return "mixed"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// MarshalText writes String, for /status.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// ProblemKind sorts what Check found by who must act and how hard the
// gateway pushes back: `ctftp validate` maps them to its exit codes.
type ProblemKind int

// The kinds of problem.
const (
	// ProblemMixed: the eras are mixed and some 8.x+ side has a real ITL.
	// serve refuses to start, a reload is refused, validate exits 2.
	ProblemMixed ProblemKind = iota + 1
	// ProblemRoot: the gateway's own ITLFile.tlv does not verify or
	// cannot be read; it would be served to every phone that falls back
	// to it. Refused like ProblemMixed.
	ProblemRoot
	// ProblemVersion: a declared version the probe disproved. validate
	// exits 2 (the configuration is wrong); serve and reloads judge
	// homogeneity on the probe, log it as an error and show it in
	// /status, because a wrong label alone breaks no phone.
	ProblemVersion
	// ProblemITL: a sub-cluster serves an ITLFile.tlv that does not
	// verify (a verification that ran and failed; validate exits 3).
	ProblemITL
	// ProblemUnreachable: a sub-cluster could not be probed, so its era
	// (or its declared version) is unconfirmed (validate exits 1; serve
	// runs, not ready for it, and keeps probing).
	ProblemUnreachable
)

// String names the kind for logs: mixed, root, version, itl,
// unreachable.
func (k ProblemKind) String() string {
	switch k {
	case ProblemMixed:
		return "mixed"
	case ProblemRoot:
		return "root"
	case ProblemVersion:
		return "version"
	case ProblemITL:
		return "itl"
	case ProblemUnreachable:
		return "unreachable"
	}
	return fmt.Sprintf("ProblemKind(%d)", int(k))
}

// Problem is one finding of Check. Msg starts with the config key it is
// about ("subclusters[1].version: ...", "root: ...").
type Problem struct {
	Kind ProblemKind
	Msg  string
}

func (p Problem) String() string { return p.Msg }

// Report is Check's answer: the verdict, every side, and every problem.
// A plain value; its Classifications share their immutable ITLs.
type Report struct {
	Verdict  Verdict
	Central  Classification
	Subs     []Classification
	Problems []Problem
}

// Homogeneous reports a setup whose eras agree: what ctftp_homogeneous
// is 1 for.
func (r Report) Homogeneous() bool {
	return r.Verdict == VerdictAll8x || r.Verdict == VerdictAllPre80
}

// Refused reports a setup the gateway must not serve: mixed eras
// (ProblemMixed) or a broken ITL of its own (ProblemRoot).
func (r Report) Refused() bool { return r.Has(ProblemMixed) || r.Has(ProblemRoot) }

// Has reports whether some problem is of kind k.
func (r Report) Has(k ProblemKind) bool {
	for _, p := range r.Problems {
		if p.Kind == k {
			return true
		}
	}
	return false
}

// Messages lists the problems' messages.
func (r Report) Messages() []string {
	out := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		out[i] = p.Msg
	}
	return out
}

// Sides lists the central side, then the sub-clusters in configured order.
func (r Report) Sides() []Classification {
	return append([]Classification{r.Central}, r.Subs...)
}

// Check judges ITL homogeneity (domain.md, "Centralized TFTP"): every
// side 8.0 or later, or every side before 8.0, runs; both eras run only
// when every 8.x+ side, the central one included, publishes a verified
// blank ITL. Each side counts with Classification.Class: the probe's
// finding, else its declared version; unclassified sides are left out of
// the verdict and reported. Check is a pure function.
func Check(central Classification, subs []Classification) Report {
	r := Report{Central: central, Subs: subs}
	var pre, real, rollback, unprobed8x []string
	for _, c := range r.Sides() {
		switch {
		case c.Class() == ClassPre80:
			pre = append(pre, c.Name)
		case c.Class() == ClassRollback:
			rollback = append(rollback, c.Name)
		case c.Class() == ClassSBD && !c.Probed:
			unprobed8x = append(unprobed8x, c.Name)
		case c.Class() == ClassSBD:
			real = append(real, c.Name)
		}
		r.Problems = append(r.Problems, sideProblems(c)...)
	}
	n8x := len(real) + len(rollback) + len(unprobed8x)
	switch {
	case n8x == 0 && len(pre) == 0:
		r.Verdict = VerdictUndecided
	case len(pre) == 0:
		r.Verdict = VerdictAll8x
	case n8x == 0:
		r.Verdict = VerdictAllPre80
	case len(real) > 0:
		r.Verdict = VerdictMixed
	case len(unprobed8x) > 0:
		r.Verdict = VerdictUndecided
	default:
		r.Verdict = VerdictMixedRollback
	}
	if r.Verdict == VerdictMixed {
		// First: it is the reason the rest matters.
		r.Problems = append([]Problem{{ProblemMixed, fmt.Sprintf(
			"subclusters: mixed ITL eras: 8.x+ with a real ITL: %s; pre-8.0: %s; "+
				"phones that hold one side's ITL would reject the other side's files (Trust List Verification Failed)",
			strings.Join(real, ", "), strings.Join(pre, ", "))}}, r.Problems...)
	}
	return r
}

// sideProblems lists what is wrong with one side on its own.
func sideProblems(c Classification) []Problem {
	var out []Problem
	if c.Contradicts() {
		what := "serves a verified ITLFile.tlv"
		if c.ProbedClass == ClassPre80 {
			what = "has no ITLFile.tlv"
		}
		out = append(out, Problem{ProblemVersion, fmt.Sprintf("%s: %q declares %s, but %s %s (%s); fix the version or use \"auto\"",
			c.key("version"), c.Declared, c.DeclaredClass, c.label(), what, c.ProbedClass)})
	}
	if c.Err == nil {
		return out
	}
	switch {
	case c.Index < 0:
		// The gateway would serve its own broken or unreadable ITL to
		// every phone that falls back to ITLFile.tlv.
		msg := fmt.Sprintf("root: %s: %v", ITLFileName, c.Err)
		if errors.Is(c.Err, ErrBadITL) {
			msg = fmt.Sprintf("root: %v", c.Err) // the error names the file
		}
		out = append(out, Problem{ProblemRoot, msg})
	case errors.Is(c.Err, ErrBadITL):
		out = append(out, Problem{ProblemITL, fmt.Sprintf("%s (%s): %v", c.key("backends"), c.Name, c.Err)})
	case !c.Stale:
		what := "its era is unknown"
		if c.DeclaredClass != ClassUnknown {
			what = fmt.Sprintf("declared %q (%s) is unconfirmed", c.Declared, c.DeclaredClass)
		}
		out = append(out, Problem{ProblemUnreachable, fmt.Sprintf("%s (%s): %s could not be fetched, %s: %v",
			c.key("backends"), c.Name, ITLFileName, what, c.Err)})
	}
	return out
}

// WriteTable writes one row per side (declared and probed era, ITL
// signer and MD5), the verdict, every problem, and for mixed setups the
// two ways out. serve and validate print it.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SIDE\tDECLARED\tPROBED\tCLASS\tITL SIGNER\tITL MD5")
	for _, c := range r.Sides() {
		declared := c.Declared
		if c.Index < 0 {
			declared = "(root)"
		}
		probed := "-"
		switch {
		case c.Probed && c.Stale:
			probed = c.ProbedClass.String() + " (stale)"
		case c.Probed:
			probed = c.ProbedClass.String()
		case c.Err != nil:
			probed = "failed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, declared, probed, c.Class(), orDash(c.Signer), orDash(c.MD5))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "verdict: %s\n", r.Verdict)
	for _, p := range r.Problems {
		fmt.Fprintf(w, "problem: %s\n", p.Msg)
	}
	switch r.Verdict {
	case VerdictMixedRollback:
		fmt.Fprintln(w, "warning: pre-8.0 and 8.x+ clusters are mixed; it works only because every 8.x+ side publishes a blank (rollback) ITL: ITL security is off, and secured phone URLs must use HTTP, not HTTPS")
	case VerdictMixed:
		r.writeWaysOut(w)
	case VerdictUndecided:
		var unprobed []string
		for _, c := range r.Sides() {
			if c.Class() == ClassSBD && !c.Probed {
				unprobed = append(unprobed, c.Name)
			}
		}
		if len(unprobed) > 0 {
			fmt.Fprintf(w, "note: pre-8.0 and 8.x+ clusters are mixed; it can only run if %s, declared 8.x+ but not probed, publish a blank (rollback) ITL: probe them (ctftp validate without --offline)\n",
				strings.Join(unprobed, ", "))
		}
	}
	return nil
}

// writeWaysOut says what makes a mixed setup homogeneous, side by side.
func (r Report) writeWaysOut(w io.Writer) {
	var pre, real []string
	centralPre, centralReal := false, false
	for _, c := range r.Sides() {
		switch {
		case c.Class() == ClassPre80 && c.Index < 0:
			centralPre = true
		case c.Class() == ClassPre80:
			pre = append(pre, c.Name)
		case c.Class() == ClassSBD && c.Index < 0:
			centralReal = true
		case c.Class() == ClassSBD:
			real = append(real, c.Name)
		}
	}
	var up, back []string
	if len(pre) > 0 {
		up = append(up, "upgrade "+strings.Join(pre, ", ")+" to CUCM 8.0 or later")
	}
	if centralPre {
		up = append(up, "put in the gateway's root the ITLFile.tlv the 8.x+ clusters' phones trust")
	}
	if len(real) > 0 {
		back = append(back, "on "+strings.Join(real, ", ")+` set the enterprise parameter "Prepare Cluster for Rollback to pre 8.0" to True`)
	}
	if centralReal {
		back = append(back, "replace the root's ITLFile.tlv with a blank one (ctftp itl build --blank)")
	}
	if len(up) == 0 && len(back) == 0 {
		return
	}
	fmt.Fprintln(w, "ways out:")
	if len(up) > 0 {
		fmt.Fprintf(w, "  1. upgrade: %s;\n", strings.Join(up, "; "))
	}
	if len(back) > 0 {
		fmt.Fprintf(w, "  2. roll back: %s; and make the phones' secured URLs HTTP, not HTTPS (ITL security is then off).\n", strings.Join(back, "; "))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
