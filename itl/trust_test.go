package itl

import (
	"bytes"
	"strings"
	"testing"
)

func TestEvaluate(t *testing.T) {
	p := LoadTestPKI(t)
	parse := func(name string, b []byte) *File { t.Helper(); return mustParse(t, name, b) }
	flip := func(b []byte, back int) []byte { b = bytes.Clone(b); b[len(b)-back] ^= 1; return b }
	sign := func(s *Signer, name string) []byte {
		t.Helper()
		b, err := Sign(name, []byte("<device/>\n"), s, SHA1)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// What phones hold.
	heldITL := parse("ITLFile.tlv", mustBuild(t, BuildOptions{Signer: p.Recovery, Records: []RecordSpec{
		{Role: RoleTFTP, Cert: p.TFTP.Cert}, {Role: RoleTVS, Cert: p.TVS.Cert}, {Role: RoleCAPF, Cert: p.CAPF.Cert}}}))
	heldITLNoTVS := parse("ITLFile.tlv", mustBuild(t, BuildOptions{Signer: p.Recovery, Records: []RecordSpec{
		{Role: RoleTFTP, Cert: p.TFTP.Cert}}}))
	heldITLHashTFTP := parse("ITLFile.tlv", mustBuild(t, BuildOptions{Signer: p.Recovery, Records: []RecordSpec{
		{Role: RoleTFTP, Cert: p.TFTP.Cert, HashOnly: true}, {Role: RoleTVS, Cert: p.TVS.Cert, HashOnly: true}}}))
	// A token CTL: an eToken SAST (here CM1024) signs, CallManager is CCM+TFTP.
	heldCTL := parse("CTLFile.tlv", mustBuild(t, BuildOptions{Kind: KindCTL, Signer: p.CM1024, Records: []RecordSpec{
		{Role: RoleCCMTFTP, Cert: p.TFTP.Cert}, {Role: RoleCAPF, Cert: p.CAPF.Cert}}}))
	blankBytes := mustBuild(t, BuildOptions{Signer: p.Recovery, Blank: true, Records: []RecordSpec{
		{Role: RoleTFTP, Cert: p.TFTP.Cert}, {Role: RoleTVS, Cert: p.TVS.Cert}}})
	heldBlank := parse("ITLFile.tlv", blankBytes)

	// What they download.
	itlSame := mustBuild(t, BuildOptions{Signer: p.Recovery, Records: []RecordSpec{{Role: RoleTFTP, Cert: p.TFTP.Cert}}})
	itlOther := mustBuild(t, BuildOptions{Signer: p.Other, Records: []RecordSpec{{Role: RoleCCMTFTP, Cert: p.Other.Cert}}})
	itl8x := mustBuild(t, BuildOptions{Signer: p.TFTP, Records: []RecordSpec{{Role: RoleCCMTFTP, Cert: p.TFTP.Cert}}})
	ctlNew := mustBuild(t, BuildOptions{Kind: KindCTL, Signer: p.CM1024, Records: []RecordSpec{{Role: RoleCCMTFTP, Cert: p.TFTP.Cert}}})
	const cnf = "SEP0011215A1AE3.cnf.xml.sgn"
	sgnGood := sign(p.TFTP, cnf)
	sgnOther := sign(p.Other, cnf)
	enc, err := SignEncrypted("SEP0011215A1AE3.cnf.xml.enc.sgn", []byte("<device/>"), p.Phone.Cert, p.TFTP, SHA1)
	if err != nil {
		t.Fatal(err)
	}

	nothing := PhoneState{}
	itlOnly := PhoneState{ITL: heldITL}
	ctlOnly := PhoneState{CTL: heldCTL}
	both := PhoneState{CTL: heldCTL, ITL: heldITL}

	tests := []struct {
		name   string
		state  PhoneState
		file   string
		bytes  []byte
		want   Decision
		reason string
	}{
		{"nothing held, new ITL: trust on first use", nothing, "ITLSEP0011215A1AE3.tlv", itlOther, Accept, "first ITL"},
		{"nothing held, new CTL: trust on first use", nothing, "CTLFile.tlv", ctlNew, Accept, "first CTL"},
		{"nothing held, ITL that fails its own SAST", nothing, "ITLFile.tlv", flip(itlOther, 30), Reject, "own SAST"},
		{"nothing held, any .sgn", nothing, cnf, sgnOther, Accept, "does not check"},
		{"blank ITL held, another cluster's ITL", PhoneState{ITL: heldBlank}, "ITLFile.tlv", itlOther, Accept, "blank"},
		{"blank ITL known only by flag, any .sgn", PhoneState{BlankITL: true, ITL: heldITL}, cnf, sgnOther, Accept, "blank"},
		{"CTL only, 8.x ITL signed by the CTL's CCM+TFTP", ctlOnly, "ITLFile.tlv", itl8x, Accept, "CCM+TFTP record 2 of the phone's CTL"},
		{"CTL only, ITL of a signer the CTL lacks", ctlOnly, "ITLFile.tlv", itlOther, Reject, "no TVS"},
		{"CTL only, .sgn by the CTL's CCM+TFTP", ctlOnly, cnf, sgnGood, Accept, "CTL"},
		{"CTL only, .sgn by a stranger", ctlOnly, cnf, sgnOther, Reject, "Trust List Update Failed"},
		{"ITL held, update from the same SAST", itlOnly, "ITLFile.tlv", itlSame, Accept, "System Administrator Security Token record 1 of the phone's ITL"},
		{"ITL held, rollback ITL from the same SAST", itlOnly, "ITLFile.tlv", blankBytes, Accept, "ITL"},
		{"ITL held, another cluster's ITL: ask TVS", itlOnly, "ITLFile.tlv", itlOther, NeedsTVS, "TVS"},
		{"ITL without TVS, another cluster's ITL", PhoneState{ITL: heldITLNoTVS}, "ITLFile.tlv", itlOther, Reject, "no TVS"},
		{"ITL held, known signer but a changed byte", itlOnly, "ITLFile.tlv", flip(itlSame, 30), Reject, "check fails"},
		{"ITL held, unknown signer and broken file", itlOnly, "ITLFile.tlv", flip(itlOther, 30), Reject, "does not even verify"},
		{"ITL held, .sgn by its TFTP record", itlOnly, cnf, sgnGood, Accept, "TFTP record 2 of the phone's ITL"},
		{"ITL held, .sgn by a stranger: ask TVS", itlOnly, cnf, sgnOther, NeedsTVS, "TVS"},
		{"ITL held, .sgn by its TFTP record, payload changed", itlOnly, cnf, flip(sgnGood, 2), Reject, "check fails"},
		{"ITL held, .sgn signed by its SAST (not a TFTP role)", itlOnly, cnf, sign(p.Recovery, cnf), NeedsTVS, "CCM+TFTP or TFTP"},
		{"ITL with hash-only TFTP record: cannot check, ask TVS", PhoneState{ITL: heldITLHashTFTP}, cnf, sgnGood, NeedsTVS, "TVS"},
		{"ITL held, encrypted config by its TFTP record", itlOnly, "SEP0011215A1AE3.cnf.xml.enc.sgn", enc, Accept, "TFTP"},
		{"CTL and ITL, .sgn by the CTL's CCM+TFTP", both, cnf, sgnGood, Accept, "CTL"},
		{"CTL and ITL, new CTL from the CTL's SAST", both, "CTLFile.tlv", ctlNew, Accept, "System Administrator Security Token record 1 of the phone's CTL"},
		{"CTL and ITL, stranger: ask TVS", both, cnf, sgnOther, NeedsTVS, "CTL or ITL"},
		{"CTL and blank ITL: the CTL alone decides", PhoneState{CTL: heldCTL, ITL: heldBlank}, cnf, sgnOther, Reject, "CTL"},
		{"asked for an ITL, got a .sgn", nothing, "ITLSEP0011215A1AE3.tlv", sgnGood, Reject, "asked for"},
		{"asked for a CTL, got an ITL", nothing, "CTLSEP0011215A1AE3.tlv", itlSame, Reject, "asked for"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseNamed(tc.file, tc.bytes)
			if err != nil {
				t.Fatal(err)
			}
			v := Evaluate(tc.state, tc.file, f)
			if v.Decision != tc.want || !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("Evaluate = %s: %s\nwant %s with %q", v.Decision, v.Reason, tc.want, tc.reason)
			}
		})
	}
	if v := Evaluate(nothing, "ITLFile.tlv", nil); v.Decision != Reject {
		t.Errorf("nil download: %v", v)
	}
}

func TestDecisionString(t *testing.T) {
	for d, want := range map[Decision]string{Accept: "accept", Reject: "reject", NeedsTVS: "needs TVS", 0: "Decision(0)"} {
		if d.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(d), d.String(), want)
		}
	}
}
