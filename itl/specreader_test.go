package itl_test

// An independent reader for ITL/CTL/.sgn files, written from
// shared/docs/itl-format.md (§1, §2.4, §3, §4.1 and the parsing rules of
// §11) and sharing no code with the codec: this file imports no part of
// package itl. Files the codec builds must pass it; it is also checked
// against the real certutils ITL, so it is not a reader that accepts
// anything.

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	_ "crypto/sha1"
	_ "crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"regexp"
)

type specFile struct {
	raw                []byte
	headerLen          int
	signerName, caName string
	serial             []byte
	digest             byte
	sigStart, sigEnd   int
	filename           string
	headerTags         []byte // top-level and nested tags in file order, pads as 13
	records            []specRecord
}

type specRecord struct {
	length int
	order  []byte
	tags   map[byte][]byte
}

func be16(b []byte) int { return int(b[0])<<8 | int(b[1]) }

func nulText(v []byte) (string, error) {
	if len(v) == 0 || v[len(v)-1] != 0 {
		return "", errors.New("text field is not NUL-terminated")
	}
	return string(v[:len(v)-1]), nil
}

// specRead follows §11: VERSION then HEADERLENGTH at offset 5, a flat walk
// of the header in which a container only costs its 3-byte head (its
// children follow it directly), 0x0D as a bare pad byte, then records to
// the end of the file when trustList is set.
func specRead(b []byte, trustList bool) (*specFile, error) {
	if len(b) < 10 || b[0] != 1 || be16(b[1:]) != 2 || b[5] != 2 || be16(b[6:]) != 2 {
		return nil, errors.New("spec: no VERSION/HEADERLENGTH at offsets 0 and 5")
	}
	f := &specFile{raw: b, headerLen: be16(b[8:]), sigStart: -1}
	if f.headerLen > len(b) || f.headerLen%4 != 0 {
		return nil, fmt.Errorf("spec: HEADERLENGTH %d (file %d bytes)", f.headerLen, len(b))
	}
	f.headerTags = []byte{1, 2}
	var err error
	for off := 10; off < f.headerLen; {
		if b[off] == 0x0D {
			f.headerTags = append(f.headerTags, 13)
			off++
			continue
		}
		if off+3 > f.headerLen {
			return nil, fmt.Errorf("spec: header TLV head at %d crosses HEADERLENGTH", off)
		}
		tag, n := b[off], be16(b[off+1:])
		f.headerTags = append(f.headerTags, tag)
		switch tag {
		case 3, 7, 9, 16, 17, 21:
			off += 3
			continue
		}
		if off+3+n > f.headerLen {
			return nil, fmt.Errorf("spec: header tag %d at %d crosses HEADERLENGTH", tag, off)
		}
		v := b[off+3 : off+3+n]
		switch tag {
		case 4:
			f.signerName, err = nulText(v)
		case 5:
			f.serial = v
		case 6:
			f.caName, err = nulText(v)
		case 8:
			if n != 1 {
				return nil, errors.New("spec: DIGESTALGO is not 1 byte")
			}
			f.digest = v[0]
		case 12:
			f.sigStart, f.sigEnd = off, off+3+n
		case 14:
			f.filename, err = nulText(v)
		}
		if err != nil {
			return nil, fmt.Errorf("spec: header tag %d: %w", tag, err)
		}
		off += 3 + n
	}
	if f.sigStart < 0 || f.digest == 0 || len(f.serial) == 0 || (f.caName == "" && f.signerName == "") {
		return nil, errors.New("spec: header lacks SIGNATURE, DIGESTALGO, SERIALNUMBER or a name")
	}
	if !trustList {
		return f, nil
	}
	for off := f.headerLen; off < len(b); {
		if len(b)-off < 5 || b[off] != 1 || be16(b[off+1:]) != 2 {
			return nil, fmt.Errorf("spec: record at %d does not start with RECORDLENGTH", off)
		}
		rl := be16(b[off+3:])
		if rl < 5 || off+rl > len(b) {
			return nil, fmt.Errorf("spec: RECORDLENGTH %d at %d", rl, off)
		}
		r := specRecord{length: rl, tags: map[byte][]byte{}}
		for p := off + 5; p < off+rl; {
			if p+3 > off+rl || p+3+be16(b[p+1:]) > off+rl {
				return nil, fmt.Errorf("spec: record TLV at %d crosses its record", p)
			}
			tag, n := b[p], be16(b[p+1:])
			r.order = append(r.order, tag)
			r.tags[tag] = b[p+3 : p+3+n]
			p += 3 + n
		}
		f.records = append(f.records, r)
		off += rl
	}
	return f, nil
}

// signed is the file with the SIGNATURE TLV cut out (§4.1).
func (f *specFile) signed() []byte {
	out := append([]byte{}, f.raw[:f.sigStart]...)
	return append(out, f.raw[f.sigEnd:]...)
}

// specVerify checks f's signature as certutils does: the signer is the
// record of trust whose FUNCTION is one of roles and whose SERIALNUMBER
// equals the header's (as integers); its key comes from CERTIFICATE, or
// from PUBLICKEY (PKCS#1) when there is no certificate.
func specVerify(f, trust *specFile, roles ...int) error {
	var h crypto.Hash
	switch f.digest {
	case 1:
		h = crypto.SHA1
	case 3:
		h = crypto.SHA512
	default:
		return fmt.Errorf("spec: digest code %d", f.digest)
	}
	want := new(big.Int).SetBytes(f.serial)
	for _, r := range trust.records {
		fn, ok := r.tags[4]
		if !ok || len(fn) != 2 || !containsInt(roles, be16(fn)) {
			continue
		}
		if new(big.Int).SetBytes(r.tags[6]).Cmp(want) != 0 {
			continue
		}
		var pub *rsa.PublicKey
		if der, ok := r.tags[9]; ok {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return err
			}
			pub, _ = c.PublicKey.(*rsa.PublicKey)
		} else if pk, ok := r.tags[7]; ok {
			pub, _ = x509.ParsePKCS1PublicKey(pk)
		}
		if pub == nil {
			return errors.New("spec: signer record has no RSA key")
		}
		d := h.New()
		d.Write(f.signed())
		return rsa.VerifyPKCS1v15(pub, h, d.Sum(nil), f.raw[f.sigStart+3:f.sigEnd])
	}
	return errors.New("spec: no signer record")
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// ciscoNameRE is the CUCM name form of §2.3: KEY=value pairs joined by
// ";" with no space after the separator.
var ciscoNameRE = regexp.MustCompile(`^[A-Za-z0-9.]+=[^;]*(;[A-Za-z0-9.]+=[^;]*)*$`)

// specCiscoStyle checks what a reader that expects CUCM's own output relies
// on (§2.2, §2.3): header tags in Cisco's order, names in ";" form, and
// every record's RECORDLENGTH equal to 5 plus its TLVs.
func specCiscoStyle(f *specFile) error {
	// Cisco order, optionally with tag 28 right after HEADERLENGTH as
	// certutils writes it.
	tags := f.headerTags
	if len(tags) > 2 && tags[2] == 28 {
		tags = append([]byte{1, 2}, tags[3:]...)
	}
	order := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15}
	if len(tags) < len(order) || !bytes.Equal(tags[:len(order)], order) {
		return fmt.Errorf("spec: header tag order %v, want %v then padding", tags, order)
	}
	for _, t := range tags[len(order):] {
		if t != 13 {
			return fmt.Errorf("spec: tag %d after TIMESTAMP in a plain header", t)
		}
	}
	for _, n := range []string{f.signerName, f.caName} {
		if !ciscoNameRE.MatchString(n) {
			return fmt.Errorf("spec: name %q is not in Cisco's ; form", n)
		}
	}
	for i, r := range f.records {
		sum := 5
		for _, v := range r.tags {
			sum += 3 + len(v)
		}
		if sum != r.length {
			return fmt.Errorf("spec: record %d: RECORDLENGTH %d, TLVs add to %d", i+1, r.length, sum)
		}
		for _, tag := range []byte{3, 5} {
			if v, ok := r.tags[tag]; ok {
				s, err := nulText(v)
				if err != nil || !ciscoNameRE.MatchString(s) {
					return fmt.Errorf("spec: record %d tag %d %q is not a Cisco name", i+1, tag, v)
				}
			}
		}
	}
	return nil
}
