package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ctftp/ctftp/itl"
)

// signedFiles are real signed files, built and signed by the itl package
// as CUCM lays them out: an ITL, a signed XML config, a signed encrypted
// config. 1024-bit keys keep the tests fast; the format does not care.
type signedFiles struct {
	itl, cnf, enc []byte
	cnfXML        []byte
}

func newSignedFiles(t testing.TB) signedFiles {
	t.Helper()
	sast, err := itl.NewSigner("ITLRecovery_integrity", 1024)
	if err != nil {
		t.Fatal(err)
	}
	ccm, err := itl.NewSigner("cucm-integrity.example.com", 1024)
	if err != nil {
		t.Fatal(err)
	}
	phone, err := itl.NewSigner("SEP001122334455", 1024)
	if err != nil {
		t.Fatal(err)
	}
	var f signedFiles
	if f.itl, err = itl.Build(itl.BuildOptions{Signer: sast, Records: []itl.RecordSpec{{Role: itl.RoleCCMTFTP, Cert: ccm.Cert}}}); err != nil {
		t.Fatal(err)
	}
	// A config of the size the domain notes give (7.6 KB signed): several
	// blocks at any block size.
	var x strings.Builder
	x.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<device>\n<devicePool>\n")
	for i := range 120 {
		fmt.Fprintf(&x, "<member priority=\"%d\"><callManager><name>cucm-%d</name></callManager></member>\n", i, i)
	}
	x.WriteString("</devicePool>\n</device>\n")
	f.cnfXML = []byte(x.String())
	if f.cnf, err = itl.Sign("SEP001122334455.cnf.xml.sgn", f.cnfXML, ccm, itl.SHA512); err != nil {
		t.Fatal(err)
	}
	if f.enc, err = itl.SignEncrypted("SEP001122334455.cnf.xml.enc.sgn", f.cnfXML, phone.Cert, ccm, itl.SHA512); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCheckIntegrity(t *testing.T) {
	f := newSignedFiles(t)
	hl := func(b []byte) int {
		p, err := itl.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		return p.Header.Length
	}
	itlFile, _ := itl.Parse(f.itl)
	lastRecord := itlFile.Records[len(itlFile.Records)-1].Offset
	tests := []struct {
		name    string
		file    string
		data    []byte
		corrupt bool
		reason  string
	}{
		{name: "whole ITL", file: "ITLFile.tlv", data: f.itl},
		{name: "whole per-device ITL", file: "ITLSEP001122334455.tlv", data: f.itl},
		{name: "ITL cut mid-record", file: "ITLFile.tlv", data: f.itl[:len(f.itl)-100], corrupt: true, reason: "overruns"},
		{name: "ITL cut at a record boundary", file: "ITLFile.tlv", data: f.itl[:lastRecord], corrupt: true, reason: "signature"},
		{name: "ITL cut in its header", file: "CTLSEP001122334455.tlv", data: f.itl[:100], corrupt: true},
		{name: "not a signed file at all: not judged", file: "ITLFile.tlv", data: []byte("hello")},
		{name: "empty .tlv", file: "ITLFile.tlv", data: []byte{}, corrupt: true},
		{name: "two bytes of a .sgn", file: "SEP001122334455.cnf.xml.sgn", data: f.cnf[:2], corrupt: true},
		{name: "whole signed config", file: "SEP001122334455.cnf.xml.sgn", data: f.cnf},
		{name: "signed config cut at a 1428-byte block", file: "SEP001122334455.cnf.xml.sgn", data: f.cnf[:1428*2], corrupt: true, reason: "XML"},
		{name: "signed config cut at 512", file: "SEP001122334455.cnf.xml.sgn", data: f.cnf[:512], corrupt: true, reason: "XML"},
		{name: "signed config with no payload", file: "SEP001122334455.cnf.xml.sgn", data: f.cnf[:hl(f.cnf)], corrupt: true, reason: "nothing after"},
		{name: "upper-case suffix", file: "SEP001122334455.CNF.XML.SGN", data: f.cnf[:1428], corrupt: true},
		{name: "whole encrypted config", file: "SEP001122334455.cnf.xml.enc.sgn", data: f.enc},
		{name: "encrypted config cut mid-block", file: "SEP001122334455.cnf.xml.enc.sgn", data: f.enc[:len(f.enc)-7], corrupt: true, reason: "AES"},
		{name: "encrypted config with no ciphertext", file: "SEP001122334455.cnf.xml.enc.sgn", data: f.enc[:hl(f.enc)], corrupt: true, reason: "AES"},
		{name: "signed non-XML payload under an XML name: not judged", file: "SEP001122334455.cnf.xml.sgn", data: signedText(t, "plain text")},
		{name: "unsigned config: nothing to check", file: "SEP001122334455.cnf.xml", data: f.cnfXML[:100]},
		{name: "firmware: nothing to check", file: "SCCP41.9-4-2SR3-1S.loads", data: []byte("x")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkIntegrity(tc.file, tc.data)
			if got := errors.Is(err, ErrCorrupt); got != tc.corrupt {
				t.Fatalf("corrupt = %v (%v), want %v", got, err, tc.corrupt)
			}
			if err != nil && !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("%v does not say %q", err, tc.reason)
			}
		})
	}
}

// Cuts of a signed file are caught: the file's own lengths, its signature
// (trust lists) or its XML (configs) say it is not whole. Sampled cuts
// (sampledCut), and every record boundary of the ITL.
func TestCheckIntegrityEveryCut(t *testing.T) {
	f := newSignedFiles(t)
	for _, c := range []struct {
		file   string
		data   []byte
		sample bool
	}{
		// Each cut re-reads the file (certificates, XML): every cut would
		// cost O(n²), half a minute under the race detector. The ITL's
		// record boundaries are checked below, every one.
		{"ITLFile.tlv", f.itl, true},
		{"SEP001122334455.cnf.xml.sgn", f.cnf, true},
	} {
		for n := range len(c.data) {
			if c.sample && !sampledCut(n, len(c.data)) {
				continue
			}
			if len(bytes.TrimSpace(c.data[n:])) == 0 {
				// Only the white space after the XML's last element is
				// cut: nothing in a .sgn says how long it is, and the
				// signer's key is not in it (a phone checks it against
				// its ITL; the trust guard's check_forwarded does too).
				continue
			}
			if err := checkIntegrity(c.file, c.data[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s cut to %d of %d bytes passed: %v", c.file, n, len(c.data), err)
			}
		}
	}
	// A cut at each record boundary of the ITL (and a byte either side)
	// leaves well-formed lengths before it: only the signature tells.
	parsed, err := itl.Parse(f.itl)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range parsed.Records {
		for _, n := range []int{r.Offset - 1, r.Offset, r.Offset + 1} {
			if err := checkIntegrity("ITLFile.tlv", f.itl[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ITL cut to %d of %d bytes (record at %d) passed: %v", n, len(f.itl), r.Offset, err)
			}
		}
	}
	// An .enc.sgn cut to whole AES blocks cannot be told by its lengths
	// (the ciphertext has no length field): only the phone's decryption
	// and digest check can. Every other cut is caught.
	h, _ := itl.Parse(f.enc)
	for n := range len(f.enc) {
		if !sampledCut(n, len(f.enc)) && n > h.Header.Length+32 {
			continue
		}
		err := checkIntegrity("SEP001122334455.cnf.xml.enc.sgn", f.enc[:n])
		whole := n > h.Header.Length && (n-h.Header.Length)%16 == 0
		if !whole && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("enc.sgn cut to %d of %d bytes passed: %v", n, len(f.enc), err)
		}
	}
}

// sampledCut picks the cuts of an n-byte file worth checking: every 13th,
// every one within a byte of a 512- or 1428-byte block boundary (where a
// short block ends a transfer), and every one of the last 600 bytes, where
// the XML closes.
func sampledCut(cut, n int) bool {
	near := func(b int) bool { r := cut % b; return r <= 1 || r == b-1 }
	return cut%13 == 0 || near(512) || near(1428) || cut >= n-600
}

func FuzzCheckIntegrity(f *testing.F) {
	sf := newSignedFiles(f)
	f.Add("ITLFile.tlv", sf.itl)
	f.Add("SEP001122334455.cnf.xml.sgn", sf.cnf)
	f.Add("SEP001122334455.cnf.xml.enc.sgn", sf.enc)
	f.Add("x.xml.sgn", []byte{})
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		err := checkIntegrity(name, data)
		if len(data) < 3 && err == nil && strings.HasSuffix(strings.ToLower(name), ".sgn") {
			t.Fatalf("%d bytes passed as a whole %q", len(data), name)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%v is not ErrCorrupt", err)
		}
		if err == nil && len(data) < len(sf.cnf) && bytes.Equal(data, sf.cnf[:len(data)]) &&
			len(bytes.TrimSpace(sf.cnf[len(data):])) > 0 && strings.HasSuffix(strings.ToLower(name), ".xml.sgn") {
			t.Fatalf("a cut signed config passed as %q", name)
		}
	})
}

// signedText is a .sgn whose payload is not XML.
func signedText(t *testing.T, payload string) []byte {
	t.Helper()
	signer, err := itl.NewSigner("cucm-text.example.com", 1024)
	if err != nil {
		t.Fatal(err)
	}
	b, err := itl.Sign("SEP001122334455.cnf.xml.sgn", []byte(payload), signer, itl.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
