package cluster

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/ctftp/ctftp/itl"
)

// checkIntegrity tells whether data can be the whole of the signed file
// name, before it is served or cached. A TFTP transfer that ends early
// with a short block is well formed and, without tsize, looks complete;
// the signed formats say themselves how long they are:
//
//   - .tlv (ITL, CTL): the header and at least one record must parse,
//     the records must end exactly at the end of the file, and when the
//     signer is one of the file's own SAST records with a key, the
//     signature must verify (a cut exactly at a record boundary leaves
//     well-formed lengths but a signature over different bytes). A
//     signer the file does not carry is not held against it: a phone
//     checks that against its own trust list.
//   - .sgn: the header must parse and end inside the file, the payload
//     must not be empty, and a signed XML file (*.xml.sgn, the phone's
//     configuration) whose payload starts as XML must be well-formed XML
//     to its last element.
//   - .enc.sgn: the header must parse with its encryption tags, and the
//     ciphertext must be a non-empty whole number of AES blocks.
//
// A .sgn cut only in the white space after its last XML element passes:
// nothing in it says how long it is, and its signer's key is in the
// sub-cluster's ITL, not in the file (the trust guard's check_forwarded
// verifies it against that). Other files carry no length of their own; only a tsize the backend
// announced can vouch for them (fetch checks that). The error says what
// is wrong, for the log; it wraps ErrCorrupt.
func checkIntegrity(name string, data []byte) error {
	kind := signedKind(name)
	if kind == "" {
		return nil
	}
	if len(data) >= len(signedMagic) && !bytes.HasPrefix(data, signedMagic) {
		// Not the start of a signed Cisco file at all: a whole different
		// file, not a cut one. Whether a phone takes it is the trust
		// guard's question (check_forwarded), not this one's.
		return nil
	}
	f, err := itl.ParseNamed(path.Base(name), data)
	if err != nil {
		return fmt.Errorf("%w: %d bytes: %w", ErrCorrupt, len(data), err)
	}
	switch kind {
	case "tlv":
		if !f.Kind.IsTrustList() {
			return nil // named .tlv but not a trust list: nothing to count on
		}
		if len(f.Records) == 0 {
			return fmt.Errorf("%w: %d bytes: a trust list with no record after its %d-byte header", ErrCorrupt, len(data), f.Header.Length)
		}
		if err := f.Verify(); errors.Is(err, itl.ErrBadSignature) || errors.Is(err, itl.ErrMalformed) {
			return fmt.Errorf("%w: %d bytes: %w", ErrCorrupt, len(data), err)
		}
	case "enc.sgn":
		if n := len(f.Payload); n == 0 || n%16 != 0 {
			return fmt.Errorf("%w: %d bytes: ciphertext of %d bytes after a %d-byte header is not a whole number of AES blocks",
				ErrCorrupt, len(data), n, f.Header.Length)
		}
	case "sgn":
		if len(f.Payload) == 0 {
			return fmt.Errorf("%w: %d bytes: nothing after the %d-byte header", ErrCorrupt, len(data), f.Header.Length)
		}
		if strings.HasSuffix(strings.ToLower(name), ".xml.sgn") && looksXML(f.Payload) {
			if err := wholeXML(f.Payload); err != nil {
				return fmt.Errorf("%w: %d bytes: payload after the %d-byte header: %w", ErrCorrupt, len(data), f.Header.Length, err)
			}
		}
	}
	return nil
}

// signedMagic starts every signed Cisco file: the VERSION element's tag
// (1) and length (2).
var signedMagic = []byte{1, 0, 2}

// wholeXML reports whether b is one complete XML document: every element
// closed, nothing cut off. The declared encoding is not converted (only
// the structure matters here), so a Latin-1 config is read as is.
func wholeXML(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("not well-formed XML: %w", err)
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	switch {
	case depth != 0:
		return fmt.Errorf("XML ends with %d element(s) still open", depth)
	case roots == 0:
		return errors.New("no XML element")
	}
	return nil
}

// looksXML reports whether b starts like an XML document (after an
// optional UTF-8 byte order mark and white space). A payload that does
// not is not judged: nothing says what it should look like.
func looksXML(b []byte) bool {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '<'
}

// signedKind names the signed format checkIntegrity reads in a file of
// that name ("tlv", "enc.sgn", "sgn"), or "" for none.
func signedKind(name string) string {
	base := strings.ToLower(path.Base(name))
	switch {
	case strings.HasSuffix(base, ".tlv"):
		return "tlv"
	case strings.HasSuffix(base, ".enc.sgn"):
		return "enc.sgn"
	case strings.HasSuffix(base, ".sgn"):
		return "sgn"
	}
	return ""
}

// streamable reports whether a file of that name may be passed on while
// it arrives: only one checkIntegrity has nothing to read in, since a
// signed file is checked whole before a phone sees a byte of it.
func streamable(name string) bool { return signedKind(name) == "" }
