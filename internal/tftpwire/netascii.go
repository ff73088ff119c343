package tftpwire

import "io"

// NetASCIIReader returns a reader yielding r's bytes in netascii form
// (RFC 764, as RFC 1350 requires for mode "netascii"): every LF becomes
// CR LF and every CR becomes CR NUL, so the receiver can turn the text
// back into local line endings without ambiguity. Other bytes pass
// unchanged. The output is at most twice as long as the input.
func NetASCIIReader(r io.Reader) io.Reader {
	return &netASCIIReader{r: r}
}

type netASCIIReader struct {
	r          io.Reader
	buf        [512]byte
	start, end int
	// pending is the second byte of an expansion that did not fit in the
	// caller's slice.
	pending    byte
	hasPending bool
	err        error
}

func (n *netASCIIReader) Read(p []byte) (int, error) {
	i := 0
	for i < len(p) {
		if n.hasPending {
			p[i] = n.pending
			n.hasPending = false
			i++
			continue
		}
		if n.start == n.end {
			if n.err != nil || i > 0 {
				// Return what we have rather than block on the source
				// with a partly filled slice.
				break
			}
			n.start = 0
			n.end, n.err = n.r.Read(n.buf[:])
			continue
		}
		c := n.buf[n.start]
		n.start++
		switch c {
		case '\n':
			p[i], n.pending, n.hasPending = '\r', '\n', true
		case '\r':
			p[i], n.pending, n.hasPending = '\r', 0, true
		default:
			p[i] = c
		}
		i++
	}
	if i == 0 && n.start == n.end && !n.hasPending && n.err != nil {
		return 0, n.err
	}
	return i, nil
}
