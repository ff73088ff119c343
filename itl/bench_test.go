package itl

import "testing"

// BenchmarkParseVerify parses and verifies an ITL shaped like CUCM 8.x's
// 5438-byte one: SAST and CCM+TFTP with full certificates, TVS and CAPF
// hash-only.
func BenchmarkParseVerify(b *testing.B) {
	p := LoadTestPKI(b)
	file := mustBuild(b, BuildOptions{Signer: p.TFTP, Records: []RecordSpec{
		{Role: RoleCCMTFTP, Cert: p.TFTP.Cert, DNSName: "cucm-1051-a-pub"},
		{Role: RoleTVS, Cert: p.Other.Cert, HashOnly: true},
		{Role: RoleCAPF, Cert: p.CAPF.Cert, HashOnly: true},
		{Role: RoleCAPF, Cert: p.Recovery.Cert, HashOnly: true},
	}})
	if len(file) < 4500 || len(file) > 5500 {
		b.Fatalf("benchmark ITL is %d bytes, want about 5 KB", len(file))
	}
	b.SetBytes(int64(len(file)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := ParseNamed("ITLFile.tlv", file)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Verify(); err != nil {
			b.Fatal(err)
		}
	}
}
