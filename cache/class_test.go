package cache

import (
	"strings"
	"testing"
)

func TestClassOf(t *testing.T) {
	tests := []struct {
		name string
		want Class
	}{
		{"ITLFile.tlv", ClassTrust},
		{"CTLFile.tlv", ClassTrust},
		{"ITLSEP0011215A1AE3.tlv", ClassDevice},
		{"CTLSEP0011215A1AE3.tlv", ClassDevice},
		{"ctlsep0011215a1ae3.tlv", ClassDevice},
		{"ITLSEPDEFAULT.tlv", ClassTrust},
		{"itlfile.TLV", ClassTrust},
		{"SEP0011215A1AE3.cnf.xml", ClassDevice},
		{"SEP0011215A1AE3.cnf.xml.sgn", ClassDevice},
		{"SEP0011215A1AE3.cnf.xml.enc.sgn", ClassDevice},
		{"SEP0011215A1AE3.cnf", ClassDevice},
		{"ATA0011215A1AE3.cnf.xml", ClassDevice},
		{"SEPDEFAULT.cnf.xml", ClassConfig},
		{"SEP0011215A1AE3.cnf.xml.bak", ClassOther},
		{"SEP0011215A1AE.cnf.xml", ClassConfig},
		{"XMLDefault.cnf.xml", ClassConfig},
		{"SIPDefault.cnf", ClassConfig},
		{"SIP0011215A1AE3.cnf", ClassDevice},
		{"OS79XX.TXT", ClassConfig},
		{"RingList.xml", ClassConfig},
		{"DistinctiveRingList.xml.sgn", ClassConfig},
		{"dialplan-east.xml", ClassConfig},
		{"SoftKeys.sgn", ClassConfig},
		{"SCCP41.9-4-2SR3-1S.loads", ClassFirmware},
		{"term41.default.loads", ClassFirmware},
		{"jar41sccp.9-4-2ES26.sbn", ClassFirmware},
		{"cnu11.3-0-0-81.sbn", ClassFirmware},
		{"kern9971.9-4-2SR3.sebn", ClassFirmware},
		{"P00308010200.sb2", ClassFirmware},
		{"P00308010200.bin", ClassFirmware},
		{"CP7925G-1.4.7.3.LOADS", ClassFirmware},
		{"CP7912080003SIP060111A.sbin", ClassFirmware},
		{"CP7912080003SIP060111A.zup", ClassFirmware},
		{"sip88xx.14-2-1-0001-14.loads", ClassFirmware},
		{"SIP3905.9-4-1SR3.zz", ClassFirmware},
		{"Ringer1.raw", ClassOther},
		{"Desktops/320x212x12/List.xml", ClassConfig},
		{"Desktops/320x212x12/TN-Fountain.png", ClassOther},
		{"English_United_States/ipc-sccp.jar", ClassOther},
		{"loads", ClassOther},
		{".loads", ClassFirmware},
		{"", ClassOther},
		{"/", ClassOther},
		{"x.sgn.tlv", ClassTrust},
		{"firmware.loads/readme", ClassOther},
		// Unicode case rules must not make a name a load: "ſ" upper-cases to "S".
		{"x.loadſ", ClassOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClassOf(tc.name); got != tc.want {
				t.Errorf("ClassOf(%q) = %s, want %s", tc.name, got, tc.want)
			}
		})
	}
}

func TestClassString(t *testing.T) {
	for k, want := range map[Class]string{ClassDevice: "device", ClassTrust: "trust", ClassConfig: "config", ClassFirmware: "firmware", ClassOther: "other", Class(99): "other"} {
		if k.String() != want {
			t.Errorf("Class(%d).String() = %q, want %q", k, k.String(), want)
		}
	}
}

func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

// FuzzClassOf checks that classification never panics, always yields a
// known class, and does not depend on ASCII case or on a directory prefix.
func FuzzClassOf(f *testing.F) {
	for _, s := range []string{"ITLFile.tlv", "SEP0011215A1AE3.cnf.xml.enc.sgn", "SCCP41.9-4-2SR3-1S.loads",
		"Desktops/a.png", "", "/", ".sgn", "a.enc.sgn", "\x00", "x.loadſ", "K.tlv"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		k := ClassOf(name)
		if k >= numClasses {
			t.Fatalf("ClassOf(%q) = %d, not a known class", name, k)
		}
		if again := ClassOf(name); again != k {
			t.Fatalf("ClassOf(%q) changed from %s to %s", name, k, again)
		}
		if up := ClassOf(upperASCII(name)); up != k {
			t.Fatalf("ClassOf(%q) = %s but ClassOf(%q) = %s", name, k, upperASCII(name), up)
		}
		if name != "" && !strings.HasSuffix(name, "/") {
			if d := ClassOf("dir/" + name); d != k {
				t.Fatalf("ClassOf(%q) = %s but ClassOf(%q) = %s", name, k, "dir/"+name, d)
			}
		}
	})
}
