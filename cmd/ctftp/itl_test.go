package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ctftp/ctftp/itl"
)

// realITL is the certutils ITL of itl/testdata (provenance in
// itl/testdata/README.md).
const realITL = "../../itl/testdata/ITLFile-certutils.tlv"

func runITLTest(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"itl"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// itlPKI writes a signer PEM (cert + key) and record PEMs into a temp dir.
type itlPKI struct {
	dir                        string
	sast, tftp, tvs, other     string // PEM paths
	sastS, tftpS, tvsS, otherS *itl.Signer
}

var itlPKIOnce = sync.OnceValues(func() ([]*itl.Signer, error) {
	var out []*itl.Signer
	for _, cn := range []string{"ITLRECOVERY_cucm-pub", "cucm-pub.example.com", "tvs-cucm-pub", "other-cluster"} {
		s, err := itl.NewSigner(cn, 1024)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
})

func newITLPKI(t *testing.T) *itlPKI {
	t.Helper()
	ss, err := itlPKIOnce()
	if err != nil {
		t.Fatal(err)
	}
	p := &itlPKI{dir: t.TempDir(), sastS: ss[0], tftpS: ss[1], tvsS: ss[2], otherS: ss[3]}
	for i, dst := range []*string{&p.sast, &p.tftp, &p.tvs, &p.other} {
		b, err := ss[i].PEM()
		if err != nil {
			t.Fatal(err)
		}
		*dst = filepath.Join(p.dir, ss[i].Cert.Subject.CommonName+".pem")
		if err := os.WriteFile(*dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// The acceptance check of the issue: `show` on the real fixture reads like
// the seed's `show itl` (TAC 116232).
func TestITLShowReal(t *testing.T) {
	code, out, errOut := runITLTest(t, "show", realITL)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Log("\n" + out)
	for _, want := range []string{
		"Length of ITL file: 10370\n",
		"The ITL File was last modified on ",
		"Parse ITL File\n--------------\n",
		"Version:      1.2\n",
		"HeaderLength: 388 (BYTES)\n",
		"BYTEPOS TAG                  LENGTH VALUE\n",
		"3       SIGNERID             2      71\n",
		"4       SIGNERNAME           23     CN=SAST,O=SAST,OU=SAST\n",
		"5       SERIALNUMBER         16     6B:A5:DE:3A:26:0B:06:93:37:C7:5B:38:BE:3C:2D:74\n",
		"8       DIGESTALGORTITHM     1      SHA-1\n",
		"11      SIGNATUREMODULUS     1      2048 bits\n",
		"14      FILENAME             12     ITLFile.tlv\n",
		"ITL Record #:1\n--------------\n",
		"1       RECORDLENGTH         2      1484\n",
		"4       FUNCTION             2      System Administrator Security Token\n",
		"7       PUBLICKEY            270    RSA 2048 bits\n",
		"This etoken was used to sign the ITL file.\n",
		"ITL Record #:5\n",
		"1       RECORDLENGTH         2      2546\n",
		"4       FUNCTION             2      APP-SERVER\n",
		"The ITL file was verified successfully.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q", want)
		}
	}
	if n := strings.Count(out, "(SHA1 Hash HEX)"); n != 5 {
		t.Errorf("%d certificate SHA-1 lines, want 5", n)
	}
	if !regexp.MustCompile(`9       CERTIFICATE          \d+ +([0-9A-F]{2} ){19}[0-9A-F]{2} \(SHA1 Hash HEX\)`).MatchString(out) {
		t.Error("no CUCM-style CERTIFICATE line")
	}
}

func TestITLShowJSON(t *testing.T) {
	code, out, errOut := runITLTest(t, "show", "--json", realITL)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var v struct {
		Kind         string `json:"kind"`
		HeaderLength int    `json:"header_length"`
		Records      []struct {
			Role       string `json:"role"`
			Length     int    `json:"length"`
			CertSHA1   string `json:"certificate_sha1"`
			SignedFile bool   `json:"signed_this_file"`
		} `json:"records"`
		Verification struct{ Checked, Valid bool } `json:"verification"`
		Hashes       map[string]string             `json:"hashes"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if v.Kind != "ITL" || v.HeaderLength != 388 || len(v.Records) != 5 || !v.Verification.Valid {
		t.Errorf("JSON %+v", v)
	}
	if !v.Records[0].SignedFile || v.Records[0].Role != "System Administrator Security Token" || len(v.Records[0].CertSHA1) != 40 {
		t.Errorf("record 1 %+v", v.Records[0])
	}
	if v.Hashes["sha256"] != "17156172182b66cbb4f8a4c51463702c8fa62ebea47ffe86ad66543c20d744eb" {
		t.Errorf("sha256 %q", v.Hashes["sha256"])
	}
}

func TestITLHash(t *testing.T) {
	dir := t.TempDir()
	abc := filepath.Join(dir, "abc")
	if err := os.WriteFile(abc, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runITLTest(t, "hash", abc)
	if code != exitOK || !strings.Contains(out, "MD5:     900150983cd24fb0d6963f7d28e17f72") ||
		!strings.Contains(out, "SHA-1:   a9993e364706816aba3e25717850c26c9cd0d89d") ||
		!strings.Contains(out, "SHA-256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if code, _, errOut := runITLTest(t, "hash", abc, filepath.Join(dir, "absent")); code != exitFailure || !strings.Contains(errOut, "absent") {
		t.Errorf("missing file: exit %d %q", code, errOut)
	}
}

// build -> verify -> sign -> verify --trust, all through the CLI, with the
// flags after the positional arguments where there are some.
func TestITLBuildSignVerify(t *testing.T) {
	p := newITLPKI(t)
	itlPath := filepath.Join(p.dir, "ITLFile.tlv")
	code, out, errOut := runITLTest(t, "build", "--signer", p.sast,
		"--record", "tftp="+p.tftp, "--record", "tvs="+p.tvs+":hash", "--digest", "sha512", "-o", itlPath)
	if code != exitOK {
		t.Fatalf("build: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "wrote "+itlPath+": ITL") || !strings.Contains(out, "3 records") {
		t.Errorf("build output %q", out)
	}
	if code, out, errOut := runITLTest(t, "verify", itlPath); code != exitOK || !strings.Contains(out, "OK") {
		t.Errorf("verify ITL: exit %d %q %q", code, out, errOut)
	}
	if _, out, _ := runITLTest(t, "show", itlPath); !strings.Contains(out, "12      HASH ALGORITHM       1      SHA-1") ||
		!strings.Contains(out, "DIGESTALGORTITHM     1      SHA-512") {
		t.Errorf("show of the built ITL:\n%s", out)
	}

	cnf := filepath.Join(p.dir, "SEP0011215A1AE3.cnf.xml")
	if err := os.WriteFile(cnf, []byte("<device/>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sgn := cnf + ".sgn"
	if code, _, errOut := runITLTest(t, "sign", cnf, "-o", sgn, "--signer", p.tftp); code != exitOK {
		t.Fatalf("sign: exit %d: %s", code, errOut)
	}
	if code, out, errOut := runITLTest(t, "verify", sgn, "--trust", itlPath); code != exitOK || !strings.Contains(out, "accept") {
		t.Errorf("verify .sgn: exit %d %q %q", code, out, errOut)
	}
	// Signed by a stranger: the ITL lists a TVS only by hash, so the phone
	// would have to ask it; that is not a pass.
	bad := filepath.Join(p.dir, "bad.cnf.xml.sgn")
	if code, _, errOut := runITLTest(t, "sign", "--signer", p.other, cnf, "-o", bad); code != exitOK {
		t.Fatalf("sign: %s", errOut)
	}
	if code, _, errOut := runITLTest(t, "verify", bad, "--trust", itlPath); code != exitVerified || !strings.Contains(errOut, "needs TVS") {
		t.Errorf("verify stranger's .sgn: exit %d %q", code, errOut)
	}
	if code, _, errOut := runITLTest(t, "verify", sgn); code != exitUsage || !strings.Contains(errOut, "--trust") {
		t.Errorf("verify .sgn without trust: exit %d %q", code, errOut)
	}

	// A changed byte: exit 3 with the reason.
	b, _ := os.ReadFile(itlPath)
	b[len(b)-5] ^= 1
	broken := filepath.Join(p.dir, "broken.tlv")
	if err := os.WriteFile(broken, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runITLTest(t, "verify", broken); code != exitVerified || !strings.Contains(errOut, "signature does not verify") {
		t.Errorf("verify broken: exit %d %q", code, errOut)
	}
	if _, out, _ := runITLTest(t, "show", broken); !strings.Contains(out, "Verification of the ITL file failed.") {
		t.Errorf("show broken:\n%s", out)
	}

	// A rollback ITL, and a CTL.
	blank := filepath.Join(p.dir, "blank.tlv")
	if code, _, errOut := runITLTest(t, "build", "--blank", "--signer", p.sast, "--record", "tftp="+p.tftp, "--name", "ITLFile.tlv", "-o", blank); code != exitOK || !strings.Contains(errOut, "blank (rollback)") {
		t.Errorf("build --blank: exit %d %q", code, errOut)
	}
	ctl := filepath.Join(p.dir, "CTLFile.tlv")
	if code, _, errOut := runITLTest(t, "build", "--ctl", "--signer", p.sast, "--record", "ccm+tftp="+p.tftp, "-o", ctl); code != exitOK {
		t.Fatalf("build --ctl: %s", errOut)
	}
	if code, out, errOut := runITLTest(t, "verify", sgn, "--trust", ctl, "--trust", itlPath); code != exitOK || !strings.Contains(out, "CTL") {
		t.Errorf("verify with CTL and ITL: exit %d %q %q", code, out, errOut)
	}
}

func TestITLUsageAndIO(t *testing.T) {
	p := newITLPKI(t)
	missing := filepath.Join(p.dir, "absent.tlv")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  []string // each must appear on its own stderr line
	}{
		{"no subcommand", nil, exitUsage, []string{"ctftp itl: missing command", "Available Commands:"}},
		{"unknown subcommand", []string{"frob"}, exitUsage, []string{`unknown command "frob" for "ctftp itl"`}},
		{"show without a file", []string{"show"}, exitUsage, []string{"want one FILE"}},
		{"show with an unknown flag", []string{"show", "--xml", realITL}, exitUsage, []string{"ctftp itl show: unknown flag: --xml", "Run 'ctftp itl show --help' for usage."}},
		{"show of a missing file", []string{"show", missing}, exitFailure, []string{"absent.tlv"}},
		{"show of a non-ITL file", []string{"show", p.sast}, exitVerified, []string{"malformed file at offset 0"}},
		{"build with nothing", []string{"build"}, exitUsage, []string{"--signer: required", "-o: required"}},
		{"build with every mistake at once", []string{"build", "--record", "nonsense", "--record", "boss=" + p.tvs, "--digest", "md5", "extra"}, exitUsage,
			[]string{`unexpected argument "extra"`, "--signer: required", "-o: required", `--digest: "md5"`, `--record "nonsense": want ROLE=PEM[:hash]`, `--record "boss=`}},
		{"build with a missing record file", []string{"build", "--signer", p.sast, "--record", "tftp=" + missing, "-o", filepath.Join(p.dir, "x.tlv")}, exitFailure, []string{"--record tftp=" + missing}},
		{"build with a record that is not a certificate", []string{"build", "--signer", p.sast, "--record", "tftp=" + realITL, "-o", filepath.Join(p.dir, "x.tlv")}, exitUsage, []string{"no CERTIFICATE block"}},
		{"build with three SAST", []string{"build", "--signer", p.sast, "--record", "sast=" + p.tvs, "--record", "sast=" + p.other, "-o", filepath.Join(p.dir, "x.tlv")}, exitUsage, []string{"3 SAST records"}},
		{"build into a missing directory", []string{"build", "--signer", p.sast, "-o", filepath.Join(missing, "x.tlv")}, exitFailure, []string{"write "}},
		{"sign without input", []string{"sign", "--signer", p.tftp, "-o", "x.sgn"}, exitUsage, []string{"want one IN file"}},
		{"sign with SHA-256", []string{"sign", "--signer", p.tftp, "--digest", "sha256", realITL, "-o", "x.sgn"}, exitUsage, []string{`--digest: "sha256": want sha1 or sha512`}},
		{"sign with a signer PEM lacking the key", []string{"sign", "--signer", realITL, realITL, "-o", filepath.Join(p.dir, "x.sgn")}, exitUsage, []string{"--signer"}},
		{"verify with three trust files", []string{"verify", realITL, "--trust", realITL, "--trust", realITL, "--trust", realITL}, exitUsage, []string{"at most a CTL and an ITL"}},
		{"verify with two ITLs", []string{"verify", realITL, "--trust", realITL, "--trust", realITL}, exitUsage, []string{"a second ITL"}},
		{"hash without a file", []string{"hash"}, exitUsage, []string{"want at least one FILE"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runITLTest(t, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.wantCode, errOut)
			}
			lines := strings.Split(errOut, "\n")
			for _, w := range tc.wantErr {
				found := false
				for _, l := range lines {
					found = found || strings.Contains(l, w)
				}
				if !found {
					t.Errorf("stderr lacks a line with %q:\n%s", w, errOut)
				}
			}
		})
	}
	if code, out, _ := runITLTest(t, "build", "-h"); code != exitOK || !strings.Contains(out, "-signer") {
		t.Errorf("build -h: exit %d %q", code, out)
	}
	if code, out, _ := runITLTest(t, "--help"); code != exitOK || !strings.Contains(out, "ctftp itl [command]") || !strings.Contains(out, "show ") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}
