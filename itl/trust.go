package itl

import (
	"errors"
	"fmt"
)

// PhoneState is what a phone holds when a new file arrives. The zero value
// is a phone with no trust list (new, or after a manual ITL delete).
// Evaluate only reads it, so states may be shared between goroutines.
type PhoneState struct {
	// CTL is the phone's CTL, nil when it has none.
	CTL *File
	// ITL is the phone's ITL, nil when it has none. A blank (rollback) ITL
	// may be given here (IsBlank reports it) or by BlankITL.
	ITL *File
	// BlankITL says the phone holds a blank rollback ITL whose bytes the
	// caller does not have. It overrides ITL.
	BlankITL bool
}

// Decision is a phone's answer to a downloaded file (a plain value).
type Decision int

// The decisions. The zero value is not a decision.
const (
	// Accept: the phone loads the file.
	Accept Decision = iota + 1
	// Reject: the phone ignores it ("Trust List Update Failed", or the
	// config is not applied).
	Reject
	// NeedsTVS: the phone cannot decide from its own lists and asks a TVS
	// server listed in its ITL; it accepts only if that TVS knows the
	// signer's certificate.
	NeedsTVS
)

// String returns "accept", "reject" or "needs TVS".
func (d Decision) String() string {
	switch d {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case NeedsTVS:
		return "needs TVS"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

// Verdict is Evaluate's answer and why. A plain value.
type Verdict struct {
	Decision Decision
	Reason   string
}

// Evaluate answers what a phone in state does with downloaded, fetched
// under name (empty when unknown), following Cisco's rules (domain.md,
// itl-format.md §4.3):
//
//   - no CTL and no ITL, or a blank ITL (and no CTL): the phone trusts the
//     next CTL or ITL it gets (the file must still verify against its own
//     SAST record), and does not check signed config files;
//   - otherwise the file's signer must be a record of the CTL or the ITL
//     (SAST, CCM+TFTP or TFTP for a trust list; CCM+TFTP or TFTP for a
//     .sgn), and the signature must verify with that record's key;
//   - a signer in neither list goes to a TVS when the (non-blank) ITL lists
//     one, and is rejected when it does not.
//
// A CTL with a blank ITL is treated as a CTL alone: the stricter reading,
// since Cisco documents the blank ITL only for phones without a CTL.
// Evaluate is a pure function: it reads its arguments and nothing else.
func Evaluate(state PhoneState, name string, downloaded *File) Verdict {
	f := downloaded
	if f == nil {
		return Verdict{Reject, "nothing was downloaded"}
	}
	if want := kindOfName(name); want != KindUnknown && want != f.Kind {
		return Verdict{Reject, fmt.Sprintf("asked for %s (an %s file) but got an %s file", name, want, f.Kind)}
	}
	ctl, itl := state.CTL, state.ITL
	blank := state.BlankITL || (itl != nil && itl.IsBlank())
	if blank {
		itl = nil
	}
	if ctl == nil && itl == nil {
		held := "no CTL and no ITL"
		if blank {
			held = "a blank (rollback) ITL"
		}
		if !f.Kind.IsTrustList() {
			return Verdict{Accept, fmt.Sprintf("the phone holds %s: it does not check config file signatures", held)}
		}
		if err := f.Verify(); err != nil {
			return Verdict{Reject, fmt.Sprintf("the phone holds %s and would trust the %s on first use, but it does not verify against its own SAST record: %v", held, f.Kind, err)}
		}
		return Verdict{Accept, fmt.Sprintf("the phone holds %s: it trusts the first %s it downloads", held, f.Kind)}
	}

	held := []struct {
		name string
		list *File
	}{{"CTL", ctl}, {"ITL", itl}}
	for _, h := range held {
		if h.list == nil {
			continue
		}
		err := f.VerifyWith(h.list)
		if err == nil {
			i := h.list.Find(f.Header.Signer, SignerRoles(f.Kind)...)
			return Verdict{Accept, fmt.Sprintf("signed by %s record %d of the phone's %s (%s)", h.list.Records[i].Role, i+1, h.name, f.Header.Signer.Subject)}
		}
		if errors.Is(err, ErrNoKey) {
			// A hash-only record names the signer but cannot check a
			// signature: a phone takes that to TVS, like an unknown one.
			continue
		}
		if !errors.Is(err, ErrSignerNotFound) {
			// The signer is known and the file fails anyway: no TVS is
			// asked about a certificate the phone already has.
			return Verdict{Reject, fmt.Sprintf("signer found in the phone's %s but the check fails: %v", h.name, err)}
		}
	}

	where := "CTL"
	switch {
	case ctl != nil && itl != nil:
		where = "CTL or ITL"
	case itl != nil:
		where = "ITL"
	}
	if itl == nil || !itl.hasRole(RoleTVS) {
		return Verdict{Reject, fmt.Sprintf("signer (%v) is not a %s record of the phone's %s and no TVS is listed to ask: Trust List Update Failed",
			f.Header.Signer, roleList(SignerRoles(f.Kind)), where)}
	}
	if f.Kind.IsTrustList() {
		if err := f.Verify(); errors.Is(err, ErrBadSignature) {
			return Verdict{Reject, fmt.Sprintf("signer is unknown to the phone's %s and the %s does not even verify against its own SAST record: %v", where, f.Kind, err)}
		}
	}
	return Verdict{NeedsTVS, fmt.Sprintf("signer (%v) is not a %s record of the phone's %s that can check it; the phone asks the TVS listed in its ITL (TCP 2445) and accepts only if TVS knows that certificate",
		f.Header.Signer, roleList(SignerRoles(f.Kind)), where)}
}
