package itl

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
)

// Sums are the digests admins compare: the MD5 is what a phone shows under
// Settings > Security > Trust List for its ITL, and what Cisco's TAC
// compares with `md5sum ITLSEP<MAC>.tlv`. A plain value.
type Sums struct {
	MD5, SHA1, SHA256 string // lower-case hex
}

// Hashes computes the MD5, SHA-1 and SHA-256 of b.
func Hashes(b []byte) Sums {
	m := md5.Sum(b)
	s1 := sha1.Sum(b)
	s256 := sha256.Sum256(b)
	return Sums{
		MD5:    hex.EncodeToString(m[:]),
		SHA1:   hex.EncodeToString(s1[:]),
		SHA256: hex.EncodeToString(s256[:]),
	}
}
