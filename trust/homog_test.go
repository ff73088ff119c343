package trust

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/itl"
)

// side builders for Check: declared is the configured version ("" for
// the central side); probed is ClassUnknown for "not probed".
func side(t *testing.T, name string, index int, declared string, probed Class) Classification {
	t.Helper()
	c := newClassification(name, index, declared)
	if probed != ClassUnknown {
		c.Probed, c.ProbedClass = true, probed
		if probed.Is8x() {
			c.Signer = "ITLRecovery_" + name + " (serial 01)"
			c.MD5 = "00112233445566778899aabbccddeeff"
		}
	}
	return c
}

func central(t *testing.T, probed Class) Classification { return side(t, CentralName, -1, "", probed) }

func failed(c Classification, err error) Classification {
	c.Err = err
	c.Stale = c.Probed
	return c
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name        string
		central     Classification
		subs        []Classification
		verdict     Verdict
		homogeneous bool
		refused     bool
		problems    []ProblemKind
		mention     []string // substrings of the problems
	}{
		{
			name:    "every side 8.x+, one in rollback",
			central: central(t, ClassSBD),
			subs:    []Classification{side(t, "east", 0, "auto", ClassSBD), side(t, "west", 1, "14", ClassRollback)},
			verdict: VerdictAll8x, homogeneous: true,
		},
		{
			name:    "every side pre-8.0",
			central: central(t, ClassPre80),
			subs:    []Classification{side(t, "east", 0, "auto", ClassPre80), side(t, "west", 1, "7.1", ClassPre80)},
			verdict: VerdictAllPre80, homogeneous: true,
		},
		{
			name:    "one verified ITL, one without: refused",
			central: central(t, ClassPre80),
			subs:    []Classification{side(t, "east", 0, "auto", ClassSBD), side(t, "west", 1, "auto", ClassPre80)},
			verdict: VerdictMixed, refused: true,
			problems: []ProblemKind{ProblemMixed},
			mention:  []string{"8.x+ with a real ITL: east", "pre-8.0: (central), west"},
		},
		{
			name:    "rollback ITL on every 8.x side, the central one included: runs",
			central: central(t, ClassRollback),
			subs:    []Classification{side(t, "east", 0, "auto", ClassRollback), side(t, "west", 1, "7.1", ClassPre80)},
			verdict: VerdictMixedRollback,
		},
		{
			name:    "rollback everywhere but the central ITL: refused",
			central: central(t, ClassSBD),
			subs:    []Classification{side(t, "east", 0, "auto", ClassRollback), side(t, "west", 1, "7.1", ClassPre80)},
			verdict: VerdictMixed, refused: true,
			problems: []ProblemKind{ProblemMixed},
			mention:  []string{"real ITL: (central)"},
		},
		{
			name:    "declared 7.1 serving an ITL: the probe wins, the label is wrong",
			central: central(t, ClassSBD),
			subs:    []Classification{side(t, "east", 0, "7.1", ClassSBD)},
			verdict: VerdictAll8x, homogeneous: true,
			problems: []ProblemKind{ProblemVersion},
			mention:  []string{`subclusters[0].version: "7.1" declares pre-8.0, but sub-cluster "east" serves a verified ITLFile.tlv (8.x+)`},
		},
		{
			name:    "declared 12.5 without an ITL",
			central: central(t, ClassPre80),
			subs:    []Classification{side(t, "east", 0, "12.5", ClassPre80)},
			verdict: VerdictAllPre80, homogeneous: true,
			problems: []ProblemKind{ProblemVersion},
			mention:  []string{`subclusters[0].version: "12.5" declares 8.x+, but sub-cluster "east" has no ITLFile.tlv`},
		},
		{
			name:    "auto sub-cluster unreachable: left out and reported",
			central: central(t, ClassSBD),
			subs:    []Classification{side(t, "east", 0, "auto", ClassSBD), failed(side(t, "west", 1, "auto", ClassUnknown), cluster.ErrBackendUnavailable)},
			verdict: VerdictAll8x, homogeneous: true,
			problems: []ProblemKind{ProblemUnreachable},
			mention:  []string{"subclusters[1].backends (west): ITLFile.tlv could not be fetched, its era is unknown"},
		},
		{
			name:    "declared sub-cluster unreachable: counts as declared, unconfirmed",
			central: central(t, ClassSBD),
			subs:    []Classification{failed(side(t, "east", 0, "12.5", ClassUnknown), cluster.ErrBackendUnavailable)},
			verdict: VerdictAll8x, homogeneous: true,
			problems: []ProblemKind{ProblemUnreachable},
			mention:  []string{`declared "12.5" (8.x+) is unconfirmed`},
		},
		{
			name:    "a failed probe after a good one keeps the finding quietly",
			central: central(t, ClassSBD),
			subs:    []Classification{failed(side(t, "east", 0, "auto", ClassSBD), cluster.ErrBackendUnavailable)},
			verdict: VerdictAll8x, homogeneous: true,
		},
		{
			name:    "a sub-cluster's ITL does not verify",
			central: central(t, ClassSBD),
			subs:    []Classification{failed(side(t, "east", 0, "auto", ClassUnknown), ErrBadITL)},
			verdict: VerdictAll8x, homogeneous: true,
			problems: []ProblemKind{ProblemITL},
		},
		{
			name:    "the root's ITL does not verify: refused",
			central: failed(central(t, ClassUnknown), ErrBadITL),
			subs:    []Classification{side(t, "east", 0, "auto", ClassSBD)},
			verdict: VerdictAll8x, homogeneous: true, refused: true,
			problems: []ProblemKind{ProblemRoot},
			mention:  []string{"root: ITLFile.tlv does not parse or verify"},
		},
		{
			name:    "offline: declared eras mixed, only a probe can tell",
			central: central(t, ClassPre80),
			subs:    []Classification{side(t, "east", 0, "12.5", ClassUnknown), side(t, "west", 1, "7.1", ClassUnknown)},
			verdict: VerdictUndecided,
		},
		{
			name:    "offline: a real central ITL with a declared pre-8.0 cluster is mixed for sure",
			central: central(t, ClassSBD),
			subs:    []Classification{side(t, "west", 0, "7.1", ClassUnknown)},
			verdict: VerdictMixed, refused: true,
			problems: []ProblemKind{ProblemMixed},
		},
		{
			name:    "nothing classified",
			central: failed(central(t, ClassUnknown), ErrBadITL),
			verdict: VerdictUndecided, refused: true,
			problems: []ProblemKind{ProblemRoot},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(tc.central, tc.subs)
			if r.Verdict != tc.verdict {
				t.Errorf("verdict = %v, want %v", r.Verdict, tc.verdict)
			}
			if r.Homogeneous() != tc.homogeneous || r.Refused() != tc.refused {
				t.Errorf("homogeneous %v refused %v, want %v %v", r.Homogeneous(), r.Refused(), tc.homogeneous, tc.refused)
			}
			var kinds []ProblemKind
			for _, p := range r.Problems {
				kinds = append(kinds, p.Kind)
			}
			if !equalKinds(kinds, tc.problems) {
				t.Errorf("problems %v (%q), want kinds %v", kinds, r.Messages(), tc.problems)
			}
			all := strings.Join(r.Messages(), "\n")
			for _, m := range tc.mention {
				if !strings.Contains(all, m) {
					t.Errorf("problems %q do not mention %q", all, m)
				}
			}
		})
	}
}

func equalKinds(a, b []ProblemKind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWriteTable(t *testing.T) {
	p := newPKI(t, "east")
	_, eastITL, err := ClassifyITL(p.itlOf(t, false), nil)
	if err != nil {
		t.Fatal(err)
	}
	east := newClassification("east", 0, "12.5")
	east.record(ClassSBD, eastITL, nil, eastITL.Header.Timestamp)
	tests := []struct {
		name    string
		r       Report
		want    []string
		notWant []string
	}{
		{
			name: "mixed: table, problem and both ways out",
			r:    Check(central(t, ClassSBD), []Classification{east, side(t, "west", 1, "auto", ClassPre80)}),
			want: []string{
				"SIDE", "DECLARED", "PROBED", "ITL SIGNER",
				"(central)  (root)", "east", "12.5", "ITLRecovery_east (serial " + itl.Identity{Serial: eastITL.Header.Signer.Serial}.SerialHex() + ")",
				"west", "auto", "pre-8.0",
				"verdict: mixed\n",
				"problem: subclusters: mixed ITL eras",
				"ways out:",
				"1. upgrade: upgrade west to CUCM 8.0 or later;",
				`on east set the enterprise parameter "Prepare Cluster for Rollback to pre 8.0" to True`,
				"replace the root's ITLFile.tlv with a blank one",
				"HTTP, not HTTPS",
			},
		},
		{
			name:    "mixed with rollback: a warning, no ways out",
			r:       Check(central(t, ClassRollback), []Classification{side(t, "east", 0, "auto", ClassRollback), side(t, "west", 1, "7.1", ClassPre80)}),
			want:    []string{"8.x+ rollback", "verdict: mixed, every 8.x+ side in rollback", "warning:", "ITL security is off"},
			notWant: []string{"ways out", "problem:"},
		},
		{
			name:    "homogeneous: just the table",
			r:       Check(central(t, ClassPre80), []Classification{side(t, "east", 0, "7.1", ClassUnknown)}),
			want:    []string{"verdict: homogeneous pre-8.0", "east", "7.1", "-"},
			notWant: []string{"ways out", "warning", "problem:"},
		},
		{
			name: "offline, undecided: a note",
			r:    Check(central(t, ClassPre80), []Classification{side(t, "east", 0, "12.5", ClassUnknown), side(t, "west", 1, "7.1", ClassUnknown)}),
			want: []string{"verdict: undecided", "note:", "east, declared 8.x+ but not probed"},
		},
		{
			name: "central pre-8.0 among 8.x clusters: put an ITL in the root",
			r:    Check(central(t, ClassPre80), []Classification{east}),
			want: []string{"1. upgrade: put in the gateway's root the ITLFile.tlv the 8.x+ clusters' phones trust", "2. roll back: on east set"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.r.WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("missing %q in\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("unexpected %q in\n%s", w, out)
				}
			}
		})
	}
}
