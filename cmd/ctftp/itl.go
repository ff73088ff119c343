package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ctftp/ctftp/itl"
)

// itlCmd is `ctftp itl ...`: the CLI of package itl. Every subcommand is
// a quick local file operation.
func itlCmd(a *cli) *cobra.Command {
	run := func(f func(pos []string) int) func(*cobra.Command, []string) error {
		return func(_ *cobra.Command, args []string) error { return exit(f(args)) }
	}

	var asJSON bool
	show := &cobra.Command{
		Use:   "show FILE [--json]",
		Short: `dump an ITL/CTL/.sgn like CUCM "show itl"`,
		RunE:  run(func(pos []string) int { return itlShow(asJSON, pos, a.stdout, a.stderr) }),
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a CUCM-style dump")

	var trust []string
	verify := &cobra.Command{
		Use:   "verify FILE [--trust ITL_OR_CTL]...",
		Short: "check the signature; with --trust decide as a phone holding those lists would",
		Long: `Check a file's signature. With --trust (a CTL, an ITL, or one of each) decide
as a phone holding them would: accept (exit 0), reject or "needs TVS" (exit 3:
the phone accepts only if the TVS its ITL names vouches for the signer).`,
		RunE: run(func(pos []string) int { return itlVerify(trust, pos, a.stdout, a.stderr) }),
	}
	verify.Flags().StringArrayVar(&trust, "trust", nil, "a trust list the phone holds (`ITL_OR_CTL`); repeat for a CTL and an ITL")
	verify.MarkFlagFilename("trust")

	hash := &cobra.Command{
		Use:   "hash FILE...",
		Short: "MD5/SHA-1/SHA-256 (the MD5 is what a phone shows under Settings > Security > Trust List)",
		RunE:  run(func(pos []string) int { return itlHash(pos, a.stdout, a.stderr) }),
	}

	var bo itlBuildOpts
	build := &cobra.Command{
		Use:   "build --signer PEM [--record ROLE=PEM[:hash]]... [--digest sha1|sha512] [--blank] [--ctl] [--name FILENAME] -o OUT",
		Short: "build and sign an ITL (or a CTL)",
		Long: `Build and sign an ITL (or, with --ctl, a CTL). --signer PEM holds a
certificate and its RSA key (written as the SAST record); each --record
ROLE=PEM[:hash] adds a record in file order, PEM a certificate (PEM or DER),
":hash" writing its SHA-1 instead of the certificate. ROLE is sast, ccm,
ccm+tftp, tftp, capf, app-server, tvs or a number.`,
		RunE: run(func(pos []string) int { return itlBuild(bo, pos, a.stdout, a.stderr) }),
	}
	f := build.Flags()
	f.StringVar(&bo.signer, "signer", "", "`PEM` with the signing certificate and its RSA key (written as SAST)")
	f.StringArrayVar(&bo.records, "record", nil, "a record `ROLE=PEM[:hash]`; repeat in file order")
	f.StringVar(&bo.digest, "digest", "sha1", "signature digest: sha1 or sha512")
	f.BoolVar(&bo.blank, "blank", false, "a rollback ITL: TFTP, CCM+TFTP and TVS entries left empty")
	f.BoolVar(&bo.ctl, "ctl", false, "build a CTL instead of an ITL")
	f.StringVar(&bo.name, "name", "", "FILENAME written in the header (default ITLFile.tlv or CTLFile.tlv)")
	f.StringVarP(&bo.out, "output", "o", "", "write the file to `OUT`")
	build.MarkFlagFilename("signer", "pem")
	build.MarkFlagFilename("output")

	var so itlSignOpts
	sign := &cobra.Command{
		Use:   "sign --signer PEM [--digest sha1|sha512] [--name FILENAME] IN -o OUT.sgn",
		Short: "wrap a file in a signed .sgn envelope",
		RunE:  run(func(pos []string) int { return itlSign(so, pos, a.stdout, a.stderr) }),
	}
	f = sign.Flags()
	f.StringVar(&so.signer, "signer", "", "`PEM` with the signing certificate (CallManager.pem) and its RSA key")
	f.StringVar(&so.digest, "digest", "sha1", "signature digest: sha1 or sha512")
	f.StringVar(&so.name, "name", "", "FILENAME written in the header, as published, e.g. SEP<MAC>.cnf.xml.sgn (default: the base name of OUT)")
	f.StringVarP(&so.out, "output", "o", "", "write the signed file to `OUT.sgn`")
	sign.MarkFlagFilename("signer", "pem")
	sign.MarkFlagFilename("output")

	return group(a, "itl", "read, check and write ITL/CTL/.sgn files", show, verify, hash, build, sign)
}

// usageProblems prints each problem on its own line and returns exitUsage,
// or returns -1 when there are none.
func usageProblems(stderr io.Writer, cmd string, problems []string) int {
	if len(problems) == 0 {
		return -1
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "ctftp itl %s: %s\n", cmd, p)
	}
	return exitUsage
}

// loadFailure classifies a failure to load an input: unreadable is I/O
// (exit 1), unusable content is usage (exit 2).
func loadFailure(err error) int {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return exitFailure
	}
	return exitUsage
}

// readAndParse reads a file and parses it under its base name. A read
// failure returns exitFailure, a malformed file exitVerified (the check
// that it is a well-formed file ran and failed).
func readAndParse(cmd, path string, stderr io.Writer) (*itl.File, int) {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp itl %s: %v\n", cmd, err)
		return nil, exitFailure
	}
	f, err := itl.ParseNamed(filepath.Base(path), b)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp itl %s: %s: %v\n", cmd, path, err)
		return nil, exitVerified
	}
	return f, -1
}

func itlShow(asJSON bool, pos []string, stdout, stderr io.Writer) int {
	if len(pos) != 1 {
		return usageProblems(stderr, "show", []string{fmt.Sprintf("want one FILE, got %d arguments", len(pos))})
	}
	f, code := readAndParse("show", pos[0], stderr)
	if f == nil {
		return code
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(jsonView(pos[0], f)); err != nil {
			fmt.Fprintf(stderr, "ctftp itl show: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	writeShow(stdout, f)
	return exitOK
}

// writeShow prints f the way CUCM's `show itl` / `show ctl` does (TAC
// technotes 116232 and 118893): the length and date, version and header
// length, a BYTEPOS/TAG/LENGTH/VALUE table of the header (containers show
// their length under VALUE and 2 under LENGTH, as CUCM prints them), one
// such table per record, then the verification result.
func writeShow(w io.Writer, f *itl.File) {
	kind := f.Kind.String()
	fmt.Fprintf(w, "Length of %s file: %d\n", kind, len(f.Bytes()))
	if !f.Header.Timestamp.IsZero() {
		fmt.Fprintf(w, "The %s File was last modified on %s\n", kind, f.Header.Timestamp.Format(time.UnixDate))
	}
	title := "Parse " + kind + " File"
	fmt.Fprintf(w, "\n%s\n%s\n\n", title, strings.Repeat("-", len(title)))
	fmt.Fprintf(w, "Version:      %s\n", f.Header.Version)
	fmt.Fprintf(w, "HeaderLength: %d (BYTES)\n\n", f.Header.Length)

	tableHead(w)
	for _, e := range f.Header.Elements {
		switch e.Tag {
		case 1, 2, 13: // VERSION and HEADERLENGTH are above; pad bytes are not shown
			continue
		}
		row(w, e)
	}

	signer := -1
	if f.Kind.IsTrustList() {
		signer = f.Find(f.Header.Signer, itl.RoleSAST)
	}
	for i := range f.Records {
		r := &f.Records[i]
		head := fmt.Sprintf("%s Record #:%d", kind, i+1)
		fmt.Fprintf(w, "\n%s\n%s\n", head, strings.Repeat("-", len(head)))
		tableHead(w)
		for _, e := range r.Elements {
			row(w, e)
		}
		if r.HasTag(4) && r.Role == itl.RoleSAST {
			if i == signer {
				fmt.Fprintf(w, "\nThis etoken was used to sign the %s file.\n", kind)
			} else {
				fmt.Fprintf(w, "\nThis etoken was not used to sign the %s file.\n", kind)
			}
		}
	}
	fmt.Fprintln(w)
	switch f.Kind {
	case itl.KindSGN:
		fmt.Fprintf(w, "Payload: %d bytes\n", len(f.Payload))
		fmt.Fprintln(w, "Signature not checked: a signed file is checked against a trust list (ctftp itl verify FILE --trust ITLFile.tlv).")
	case itl.KindENCSGN:
		fmt.Fprintf(w, "Ciphertext: %d bytes\n", len(f.Payload))
		fmt.Fprintln(w, "Signature not checked: a signed file is checked against a trust list (ctftp itl verify FILE --trust ITLFile.tlv).")
	default:
		if f.IsBlank() {
			fmt.Fprintf(w, "This is a blank (rollback) %s: its TFTP and TVS entries are empty.\n", kind)
		}
		if err := f.Verify(); err != nil {
			fmt.Fprintf(w, "Verification of the %s file failed.\n%v\n", kind, err)
		} else {
			fmt.Fprintf(w, "The %s file was verified successfully.\n", kind)
		}
	}
	for _, warn := range f.Warnings() {
		fmt.Fprintf(w, "Warning: %s\n", warn)
	}
}

func tableHead(w io.Writer) {
	fmt.Fprintf(w, "%-7s %-20s %-6s %s\n", "BYTEPOS", "TAG", "LENGTH", "VALUE")
	fmt.Fprintf(w, "%-7s %-20s %-6s %s\n", "-------", "---", "------", "-----")
}

// row prints one element. Signatures are printed as hex, 16 bytes a line,
// as CUCM does for the header signature.
func row(w io.Writer, e itl.Element) {
	length, value := e.Length, e.Text()
	if e.IsContainer() {
		length = 2
	}
	line := fmt.Sprintf("%-7d %-20s %-6d %s", e.Tag, e.Name(), length, value)
	fmt.Fprintln(w, strings.TrimRight(line, " "))
	if !e.InRecord && e.Tag == 12 {
		for i := 0; i < len(e.Value); i += 16 {
			end := min(i+16, len(e.Value))
			fmt.Fprintf(w, "%36s%s\n", "", spacedUpperHex(e.Value[i:end]))
		}
	}
}

func spacedUpperHex(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var s strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			s.WriteByte(' ')
		}
		s.WriteString(h[i : i+2])
	}
	return s.String()
}

// jsonFile is the --json form of show: stable keys for scripts.
type jsonFile struct {
	File          string            `json:"file"`
	Kind          string            `json:"kind"`
	Length        int               `json:"length"`
	Version       string            `json:"version"`
	SignerVersion string            `json:"signer_version,omitempty"`
	HeaderLength  int               `json:"header_length"`
	Filename      string            `json:"filename"`
	Timestamp     *time.Time        `json:"timestamp,omitempty"`
	Signer        jsonIdentity      `json:"signer"`
	Digest        string            `json:"digest"`
	SignatureLen  int               `json:"signature_length"`
	Records       []jsonRecord      `json:"records,omitempty"`
	PayloadLength *int              `json:"payload_length,omitempty"`
	Encryption    *jsonEncrypt      `json:"encryption,omitempty"`
	Blank         bool              `json:"blank"`
	Verification  jsonVerify        `json:"verification"`
	Hashes        map[string]string `json:"hashes"`
	Warnings      []string          `json:"warnings"`
}

type jsonIdentity struct {
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	Serial  string `json:"serial"`
}

type jsonRecord struct {
	Number     int          `json:"number"`
	Offset     int          `json:"offset"`
	Length     int          `json:"length"`
	Role       string       `json:"role"`
	RoleCode   int          `json:"role_code"`
	DNSName    string       `json:"dns_name,omitempty"`
	IPAddress  string       `json:"ip_address,omitempty"`
	Identity   jsonIdentity `json:"identity"`
	Key        string       `json:"key"`
	CertSHA1   string       `json:"certificate_sha1,omitempty"`
	HashOnly   bool         `json:"hash_only"`
	Empty      bool         `json:"empty"`
	Tags       []int        `json:"tags"`
	SignedFile bool         `json:"signed_this_file"`
}

type jsonEncrypt struct {
	IV            string `json:"iv"`
	Padding       int    `json:"padding"`
	KeySize       int    `json:"key_size"`
	KeyAlgorithm  int    `json:"key_algorithm"`
	WrappedKeyLen int    `json:"wrapped_key_length"`
	HashAlgorithm string `json:"hash_algorithm,omitempty"`
	Hash          string `json:"hash,omitempty"`
}

type jsonVerify struct {
	Checked bool   `json:"checked"`
	Valid   bool   `json:"valid"`
	Error   string `json:"error,omitempty"`
}

func jsonView(path string, f *itl.File) jsonFile {
	h := f.Header
	sums := itl.Hashes(f.Bytes())
	v := jsonFile{
		File:         path,
		Kind:         f.Kind.String(),
		Length:       len(f.Bytes()),
		Version:      h.Version.String(),
		HeaderLength: h.Length,
		Filename:     h.Filename,
		Signer:       jsonIdentity{h.Signer.Subject, h.Signer.Issuer, h.Signer.SerialHex()},
		Digest:       h.Digest.String(),
		SignatureLen: len(h.Signature),
		Blank:        f.IsBlank(),
		Hashes:       map[string]string{"md5": sums.MD5, "sha1": sums.SHA1, "sha256": sums.SHA256},
		Warnings:     f.Warnings(),
	}
	if v.Warnings == nil {
		v.Warnings = []string{}
	}
	if h.SignerVersion != nil {
		v.SignerVersion = h.SignerVersion.String()
	}
	if !h.Timestamp.IsZero() {
		ts := h.Timestamp
		v.Timestamp = &ts
	}
	signer := -1
	if f.Kind.IsTrustList() {
		signer = f.Find(h.Signer, itl.RoleSAST)
		err := f.Verify()
		v.Verification = jsonVerify{Checked: true, Valid: err == nil}
		if err != nil {
			v.Verification.Error = err.Error()
		}
	} else {
		n := len(f.Payload)
		v.PayloadLength = &n
	}
	for i := range f.Records {
		r := &f.Records[i]
		jr := jsonRecord{
			Number: i + 1, Offset: r.Offset, Length: r.Length,
			Role: r.Role.String(), RoleCode: int(r.Role), DNSName: r.DNSName,
			Identity:   jsonIdentity{r.Subject, r.Issuer, r.Identity().SerialHex()},
			Key:        r.KeyDescription(),
			CertSHA1:   hex.EncodeToString(r.CertSHA1()),
			HashOnly:   r.HashOnly(),
			Empty:      r.Empty(),
			SignedFile: i == signer,
			Tags:       []int{},
		}
		if !r.HasTag(4) {
			jr.Role, jr.RoleCode = "", -1
		}
		for _, e := range r.Elements {
			jr.Tags = append(jr.Tags, int(e.Tag))
			if e.Tag == 10 {
				jr.IPAddress = e.Text()
			}
		}
		v.Records = append(v.Records, jr)
	}
	if e := f.Encryption; e != nil {
		v.Encryption = &jsonEncrypt{
			IV: hex.EncodeToString(e.IV), Padding: e.Padding, KeySize: e.KeySize,
			KeyAlgorithm: int(e.KeyAlgorithm), WrappedKeyLen: len(e.Key),
			Hash: hex.EncodeToString(e.Hash),
		}
		if e.Hash != nil {
			v.Encryption.HashAlgorithm = e.HashAlgorithm.String()
		}
	}
	return v
}

func itlVerify(trust []string, pos []string, stdout, stderr io.Writer) int {
	var problems []string
	if len(pos) != 1 {
		problems = append(problems, fmt.Sprintf("want one FILE, got %d arguments", len(pos)))
	}
	if len(trust) > 2 {
		problems = append(problems, fmt.Sprintf("--trust: at most a CTL and an ITL, got %d files", len(trust)))
	}
	if c := usageProblems(stderr, "verify", problems); c >= 0 {
		return c
	}
	path := pos[0]
	f, code := readAndParse("verify", path, stderr)
	if f == nil {
		return code
	}
	for _, w := range f.Warnings() {
		fmt.Fprintf(stderr, "ctftp itl verify: %s: warning: %s\n", path, w)
	}

	if len(trust) == 0 {
		if !f.Kind.IsTrustList() {
			return usageProblems(stderr, "verify", []string{fmt.Sprintf("%s is a signed file (%s): give --trust ITL_OR_CTL to check it against", path, f.Kind)})
		}
		if err := f.Verify(); err != nil {
			fmt.Fprintf(stderr, "%s: FAILED: %v\n", path, err)
			return exitVerified
		}
		i := f.Find(f.Header.Signer, itl.RoleSAST)
		fmt.Fprintf(stdout, "%s: OK: %s signed by %q (serial %s), SAST record #%d, %s, %d-bit RSA\n",
			path, f.Kind, f.Header.Signer.Subject, f.Header.Signer.SerialHex(), i+1, f.Header.Digest, 8*len(f.Header.Signature))
		return exitOK
	}

	var state itl.PhoneState
	for _, tp := range trust {
		t, code := readAndParse("verify", tp, stderr)
		if t == nil {
			return code
		}
		var slot **itl.File
		switch t.Kind {
		case itl.KindCTL:
			slot = &state.CTL
		case itl.KindITL:
			slot = &state.ITL
		default:
			return usageProblems(stderr, "verify", []string{fmt.Sprintf("--trust %s: a %s is not a trust list", tp, t.Kind)})
		}
		if *slot != nil {
			return usageProblems(stderr, "verify", []string{fmt.Sprintf("--trust %s: a second %s; give at most one CTL and one ITL", tp, t.Kind)})
		}
		*slot = t
	}
	v := itl.Evaluate(state, filepath.Base(path), f)
	if v.Decision != itl.Accept {
		fmt.Fprintf(stderr, "%s: FAILED: %s: %s\n", path, v.Decision, v.Reason)
		return exitVerified
	}
	fmt.Fprintf(stdout, "%s: OK: %s: %s\n", path, v.Decision, v.Reason)
	return exitOK
}

func itlHash(pos []string, stdout, stderr io.Writer) int {
	if len(pos) == 0 {
		return usageProblems(stderr, "hash", []string{"want at least one FILE"})
	}
	exit := exitOK
	for _, path := range pos {
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stderr, "ctftp itl hash: %v\n", err)
			exit = exitFailure
			continue
		}
		s := itl.Hashes(b)
		fmt.Fprintf(stdout, "%s (%d bytes)\n  MD5:     %s\n  SHA-1:   %s\n  SHA-256: %s\n", path, len(b), s.MD5, s.SHA1, s.SHA256)
	}
	return exit
}

// itlBuildOpts are `ctftp itl build`'s flags.
type itlBuildOpts struct {
	signer, digest, name, out string
	records                   []string
	blank, ctl                bool
}

func itlBuild(o itlBuildOpts, pos []string, stdout, stderr io.Writer) int {

	var problems []string
	if len(pos) > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q", pos[0]))
	}
	digest, more := signingProblems(o.signer, o.out, o.digest)
	problems = append(problems, more...)
	type recArg struct {
		role     itl.Role
		path     string
		hashOnly bool
	}
	var recs []recArg
	for _, r := range o.records {
		roleText, path, ok := strings.Cut(r, "=")
		if !ok || path == "" {
			problems = append(problems, fmt.Sprintf("--record %q: want ROLE=PEM[:hash]", r))
			continue
		}
		role, err := itl.ParseRole(roleText)
		if err != nil {
			problems = append(problems, fmt.Sprintf("--record %q: %v", r, err))
			continue
		}
		p, hashOnly := strings.CutSuffix(path, ":hash")
		recs = append(recs, recArg{role, p, hashOnly})
	}
	if c := usageProblems(stderr, "build", problems); c >= 0 {
		return c
	}

	// Load every input and report every problem before giving up.
	exit := -1
	fail := func(format string, err error, a ...any) {
		fmt.Fprintf(stderr, "ctftp itl build: "+format+": %v\n", append(a, err)...)
		if c := loadFailure(err); exit < 0 || c < exit {
			exit = c // I/O (1) outranks usage (2)
		}
	}
	signer, err := itl.LoadSignerPEM(o.signer)
	if err != nil {
		fail("--signer", err)
	}
	opts := itl.BuildOptions{Signer: signer, Digest: digest, Blank: o.blank, Filename: o.name}
	if o.ctl {
		opts.Kind = itl.KindCTL
	}
	for _, r := range recs {
		c, err := itl.LoadCertPEM(r.path)
		if err != nil {
			fail("--record %s=%s", err, r.role.Short(), r.path)
			continue
		}
		opts.Records = append(opts.Records, itl.RecordSpec{Role: r.role, Cert: c, HashOnly: r.hashOnly})
	}
	if exit >= 0 {
		return exit
	}
	b, err := itl.Build(opts)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp itl build: %v\n", err)
		return exitUsage
	}
	return writeOutput("build", o.out, b, stdout, stderr)
}

// itlSignOpts are `ctftp itl sign`'s flags.
type itlSignOpts struct {
	signer, digest, name, out string
}

func itlSign(o itlSignOpts, pos []string, stdout, stderr io.Writer) int {
	var problems []string
	if len(pos) != 1 {
		problems = append(problems, fmt.Sprintf("want one IN file, got %d arguments", len(pos)))
	}
	digest, more := signingProblems(o.signer, o.out, o.digest)
	problems = append(problems, more...)
	if c := usageProblems(stderr, "sign", problems); c >= 0 {
		return c
	}
	signer, err := itl.LoadSignerPEM(o.signer)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp itl sign: --signer: %v\n", err)
		return loadFailure(err)
	}
	payload, err := os.ReadFile(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "ctftp itl sign: %v\n", err)
		return exitFailure
	}
	fileName := o.name
	if fileName == "" {
		fileName = filepath.Base(o.out)
	}
	b, err := itl.Sign(fileName, payload, signer, digest)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp itl sign: %v\n", err)
		return exitUsage
	}
	return writeOutput("sign", o.out, b, stdout, stderr)
}

// writeOutput writes b to path through a temporary file and a rename, so a
// TFTP server reading the directory never serves half a file, then says
// what was written.
func writeOutput(cmd, path string, b []byte, stdout, stderr io.Writer) int {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err == nil {
		_, err = tmp.Write(b)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(tmp.Name(), 0o644)
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			os.Remove(tmp.Name())
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "ctftp itl %s: write %s: %v\n", cmd, path, err)
		return exitFailure
	}
	f, err := itl.ParseNamed(filepath.Base(path), b)
	if err != nil { // Build and Sign read their output back; this cannot happen
		fmt.Fprintf(stderr, "ctftp itl %s: %s: %v\n", cmd, path, err)
		return exitFailure
	}
	for _, w := range f.Warnings() {
		fmt.Fprintf(stderr, "ctftp itl %s: %s: warning: %s\n", cmd, path, w)
	}
	s := itl.Hashes(b)
	detail := fmt.Sprintf("%d records", len(f.Records))
	if !f.Kind.IsTrustList() {
		detail = fmt.Sprintf("%d-byte payload", len(f.Payload))
	}
	fmt.Fprintf(stdout, "wrote %s: %s, %d bytes, %s, FILENAME %q, MD5 %s\n", path, f.Kind, len(b), detail, f.Header.Filename, s.MD5)
	return exitOK
}

// signingProblems checks the flags build and sign share: a signer, an
// output and a digest a phone takes (SHA-256 is verified, never written).
func signingProblems(signerPath, out, digestName string) (itl.Digest, []string) {
	var problems []string
	if signerPath == "" {
		problems = append(problems, "--signer: required")
	}
	if out == "" {
		problems = append(problems, "-o: required")
	}
	digest, err := itl.ParseDigest(digestName)
	if err != nil || digest == itl.SHA256 {
		problems = append(problems, fmt.Sprintf("--digest: %q: want sha1 or sha512", digestName))
	}
	return digest, problems
}
