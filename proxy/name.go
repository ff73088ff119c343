package proxy

import (
	"io/fs"
	"path"
	"strings"
)

// MaxNameLength is the longest file name CleanName accepts, in bytes.
// Cisco file names are under 64 bytes; 255 is the longest single name
// most file systems allow and well under what a 512-byte RRQ can carry.
const MaxNameLength = 255

// CleanName turns the file name a client sent into the Request.Name every
// Source sees. It reads `\` as `/` (DOS-style paths from some boot ROMs),
// strips every leading `/` (phones and PXE ROMs ask for "/SEP….cnf.xml"
// meaning the TFTP root), and drops "." and empty elements ("a/./b" and
// "a//b" are "a/b"). It refuses, with errors wrapping ctftp.ErrDenied:
// an empty name (ErrNameEmpty), one longer than MaxNameLength
// (ErrNameTooLong), NUL (ErrNameNUL), bytes outside printable ASCII
// (ErrNameByte), any ".." (ErrNameDotDot: as an element even when it would
// stay inside the root, and inside an element like "a..b" too; no phone
// file has one, and "never contains .." is simpler to audit than
// "no .. element"), and anything fs.ValidPath still rejects
// (ErrNameInvalid).
// Case is preserved: phones ask for exact names and matching is exact.
//
// The result is always a valid fs.ValidPath name that neither starts
// with "/" nor contains "..".
func CleanName(raw string) (string, error) {
	if raw == "" {
		return "", ErrNameEmpty
	}
	if len(raw) > MaxNameLength {
		return "", ErrNameTooLong
	}
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == 0:
			return "", ErrNameNUL
		case c < 0x20 || c > 0x7e:
			return "", ErrNameByte
		}
	}
	name := strings.TrimLeft(strings.ReplaceAll(raw, `\`, "/"), "/")
	if name == "" {
		return "", ErrNameEmpty
	}
	if strings.Contains(name, "..") {
		return "", ErrNameDotDot
	}
	// With ".." refused above, path.Clean only removes "." and empty
	// elements and a trailing slash; it cannot climb.
	name = path.Clean(name)
	if name == "." {
		return "", ErrNameEmpty
	}
	if !fs.ValidPath(name) {
		return "", ErrNameInvalid
	}
	return name, nil
}
