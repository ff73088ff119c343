package tftpclient

import "bytes"

// DecodeNetascii and DecodeNetasciiParts expose the netascii decoder to
// the fuzz test.
func DecodeNetascii(b []byte) []byte { return DecodeNetasciiParts(b) }

func DecodeNetasciiParts(parts ...[]byte) []byte {
	var out bytes.Buffer
	n := &netasciiWriter{w: &out}
	for _, p := range parts {
		n.Write(p)
	}
	n.flush()
	return out.Bytes()
}
