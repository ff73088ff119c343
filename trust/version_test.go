package trust

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/itl"
)

// pki is a cluster's signing keys: the SAST that signs its ITL and the
// CallManager (CCM+TFTP) key that signs its configs. 1024-bit keys keep
// the tests fast; the format does not care.
type pki struct {
	sast, ccm *itl.Signer
}

func newPKI(t testing.TB, name string) pki {
	t.Helper()
	sast, err := itl.NewSigner("ITLRecovery_"+name, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ccm, err := itl.NewSigner("cucm-"+name+".example.com", 1024)
	if err != nil {
		t.Fatal(err)
	}
	return pki{sast: sast, ccm: ccm}
}

// itlOf builds the cluster's ITLFile.tlv; blank makes the rollback one.
func (p pki) itlOf(t testing.TB, blank bool) []byte {
	t.Helper()
	b, err := itl.Build(itl.BuildOptions{
		Signer:  p.sast,
		Records: []itl.RecordSpec{{Role: itl.RoleCCMTFTP, Cert: p.ccm.Cert}},
		Blank:   blank,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p pki) parsedITL(t testing.TB, blank bool) *itl.File {
	t.Helper()
	f, err := itl.Parse(p.itlOf(t, blank))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sign signs a config as the cluster's CallManager (CCM+TFTP) key does.
func (p pki) sign(t testing.TB, name string, payload []byte) []byte {
	t.Helper()
	b, err := itl.Sign(name, payload, p.ccm, itl.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		class   Class
		auto    bool
		wantErr bool
	}{
		{in: "auto", auto: true},
		{in: "7.1", class: ClassPre80},
		{in: "6.1.5", class: ClassPre80},
		{in: "0", class: ClassPre80},
		{in: "07.1", class: ClassPre80},
		{in: "8.0", class: ClassSBD},
		{in: "8", class: ClassSBD},
		{in: "12.5", class: ClassSBD},
		{in: "14", class: ClassSBD},
		{in: "0008.0", class: ClassSBD},
		{in: "10", class: ClassSBD},
		{in: "99999999999999999999999.1", class: ClassSBD},
		{in: "", wantErr: true},
		{in: "Auto", wantErr: true},
		{in: "7.", wantErr: true},
		{in: ".7", wantErr: true},
		{in: "v12", wantErr: true},
		{in: "12.5a", wantErr: true},
		{in: "12,5", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			class, auto, err := ParseVersion(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if class != tc.class || auto != tc.auto {
				t.Errorf("ParseVersion(%q) = %v, auto %v; want %v, auto %v", tc.in, class, auto, tc.class, tc.auto)
			}
		})
	}
}

// FuzzParseVersion checks ParseVersion against a slow, obviously right
// reading (big integers) and against Validate's own rule.
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"auto", "7.1", "8.0", "12.5", "007", "0008", "1" + strings.Repeat("0", 40), "", "8..0", "9.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		class, auto, err := ParseVersion(s)
		valid := s == VersionAuto || cluster.ValidRelease(s)
		if (err == nil) != valid {
			t.Fatalf("ParseVersion(%q) error %v, but Validate's rule says valid=%v", s, err, valid)
		}
		if err != nil || auto {
			if class != ClassUnknown {
				t.Fatalf("ParseVersion(%q) = %v with err %v auto %v", s, class, err, auto)
			}
			return
		}
		major, _, _ := strings.Cut(s, ".")
		n, _ := new(big.Int).SetString(major, 10)
		want := ClassPre80
		if n.Cmp(big.NewInt(8)) >= 0 {
			want = ClassSBD
		}
		if class != want {
			t.Fatalf("ParseVersion(%q) = %v, want %v", s, class, want)
		}
	})
}

func TestClassifyITL(t *testing.T) {
	p := newPKI(t, "east")
	real := p.itlOf(t, false)
	blank := p.itlOf(t, true)
	tampered := append([]byte(nil), real...)
	tampered[len(tampered)-1] ^= 0xff // inside the last record: the signature no longer matches
	sgn, err := itl.Sign("SEP001122334455.cnf.xml.sgn", []byte("<device/>"), p.ccm, itl.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		data     []byte
		fetchErr error
		want     Class
		wantITL  bool
		wantIs   []error
	}{
		{name: "verified ITL: 8.x+", data: real, want: ClassSBD, wantITL: true},
		{name: "blank ITL: rollback", data: blank, want: ClassRollback, wantITL: true},
		{name: "not found: pre-8.0", fetchErr: fmt.Errorf("cluster: east: %w", ctftp.ErrNotFound), want: ClassPre80},
		{name: "no answer: unknown", fetchErr: fmt.Errorf("cluster: east: %w", cluster.ErrBackendUnavailable), want: ClassUnknown,
			wantIs: []error{ctftp.ErrUnavailable}},
		{name: "garbage", data: []byte("<html>not found</html>"), want: ClassUnknown, wantIs: []error{ErrBadITL, itl.ErrMalformed}},
		{name: "empty file", data: []byte{}, want: ClassUnknown, wantIs: []error{ErrBadITL}},
		{name: "signature does not match", data: tampered, want: ClassUnknown, wantIs: []error{ErrBadITL}},
		{name: "a signed config, not an ITL", data: sgn, want: ClassUnknown, wantIs: []error{ErrBadITL}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			class, f, err := ClassifyITL(tc.data, tc.fetchErr)
			if class != tc.want {
				t.Errorf("class = %v, want %v (err %v)", class, tc.want, err)
			}
			if (f != nil) != tc.wantITL {
				t.Errorf("ITL returned: %v, want %v", f != nil, tc.wantITL)
			}
			if len(tc.wantIs) == 0 && err != nil {
				t.Errorf("err = %v, want none", err)
			}
			for _, want := range tc.wantIs {
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want errors.Is %v", err, want)
				}
			}
		})
	}
}

// FuzzClassifyITL feeds arbitrary bytes as a backend's ITLFile.tlv: no
// panic, and 8.x+ only for a file that really verifies.
func FuzzClassifyITL(f *testing.F) {
	// Seeds must be the same bytes in every fuzz worker: a fixed key and
	// a fixed timestamp.
	signer, err := itl.LoadSignerPEM("testdata/seed-signer.pem")
	if err != nil {
		f.Fatal(err)
	}
	for _, blank := range []bool{false, true} {
		b, err := itl.Build(itl.BuildOptions{
			Signer:    signer,
			Records:   []itl.RecordSpec{{Role: itl.RoleCCMTFTP, Cert: signer.Cert}},
			Blank:     blank,
			Timestamp: time.Unix(1700000000, 0),
		})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 2, 1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		class, file, err := ClassifyITL(data, nil)
		switch class {
		case ClassSBD, ClassRollback:
			if err != nil || file == nil || file.Verify() != nil || file.IsBlank() != (class == ClassRollback) {
				t.Fatalf("class %v with err %v, file %v", class, err, file != nil)
			}
		case ClassUnknown:
			if !errors.Is(err, ErrBadITL) {
				t.Fatalf("unknown without ErrBadITL: %v", err)
			}
		default:
			t.Fatalf("bytes classified as %v", class)
		}
	})
}

func TestClassificationRecordKeepsLastFinding(t *testing.T) {
	p := newPKI(t, "east")
	_, f, err := ClassifyITL(p.itlOf(t, false), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newClassification("east", 0, "auto")
	t0 := time.Unix(1000, 0)
	c.record(ClassSBD, f, nil, t0)
	if !c.Probed || c.Class() != ClassSBD || c.Signer == "" || len(c.MD5) != 32 || c.Stale {
		t.Fatalf("after a good probe: %+v", c)
	}
	c.record(ClassUnknown, nil, cluster.ErrBackendUnavailable, t0.Add(time.Minute))
	if !c.Stale || c.Class() != ClassSBD || c.ITL != f || !c.At.Equal(t0) || c.Err == nil {
		t.Fatalf("a failed probe must keep the finding, marked stale: %+v", c)
	}
	c.record(ClassPre80, nil, nil, t0.Add(2*time.Minute))
	if c.Stale || c.Class() != ClassPre80 || c.ITL != nil || c.Signer != "" || c.Err != nil {
		t.Fatalf("after a not-found probe: %+v", c)
	}
}

func TestSameSigner(t *testing.T) {
	id := func(issuer string, serial ...byte) itl.Identity { return itl.Identity{Issuer: issuer, Serial: serial} }
	tests := []struct {
		name string
		a, b itl.Identity
		want bool
	}{
		{"same", id("CN=a", 1, 2), id("CN=a", 1, 2), true},
		{"leading zero byte", id("CN=a", 0x00, 0x81), id("CN=a", 0x81), true},
		{"other serial", id("CN=a", 1, 2), id("CN=a", 1, 3), false},
		{"other issuer", id("CN=a", 1), id("CN=b", 1), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameSigner(tc.a, tc.b); got != tc.want {
				t.Errorf("sameSigner = %v, want %v", got, tc.want)
			}
		})
	}
}
