package proxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/ctftp/ctftp"
)

// Local is the Source of the gateway's own files (ITLFile.tlv,
// CTLFile.tlv, loads, ...): a directory opened with os.OpenRoot, so the
// kernel-side checks of os.Root refuse any path, symlinks included, that
// would leave the directory. It is safe for concurrent use.
type Local struct {
	root *os.Root
	// index answers "not here" for top-level names the root does not
	// hold without asking the kernel (nil: always ask).
	index *rootIndex
}

var _ ctftp.Source = (*Local)(nil)

// errNotLocal is Local's answer for a name that is not under the root.
var errNotLocal = fmt.Errorf("proxy: not in the local root: %w", ctftp.ErrNotFound)

// NewLocal opens dir as the root of local files. Close releases it.
func NewLocal(dir string) (*Local, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("proxy: local root: %w", err)
	}
	return &Local{root: r, index: newRootIndex(r, dir)}, nil
}

// Open returns the regular file named req.Name under the root, with Size
// set and a Body that is the *os.File itself (an io.Seeker and
// io.ReaderAt, so the front end answers tsize and re-reads blocks without
// buffering). Errors wrap:
//
//   - ctftp.ErrNotFound: no such file, a path through a non-directory, or
//     a directory (a phone asking for a directory is asking for a file
//     that is not there, and the next source may have it);
//   - ctftp.ErrDenied: permission denied, a name that is not a valid
//     fs.ValidPath, a path or symlink escaping the root, a symlink loop,
//     or a file that is not regular (FIFO, device, socket);
//   - anything else is an I/O error, returned as is.
func (l *Local) Open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !fs.ValidPath(req.Name) {
		return nil, fmt.Errorf("proxy: local %q: %w", req.Name, ErrNameInvalid)
	}
	if l.index.absent(req.Name) {
		return nil, errNotLocal
	}
	// O_NONBLOCK so that a FIFO planted in the root cannot park this
	// goroutine in open(2); regular files ignore the flag.
	f, err := l.root.OpenFile(req.Name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// The common case on a gateway: most requests are for files
			// a sub-cluster has. First goes on to the next source and
			// never shows this error, so it carries no name: formatting
			// one was most of what a forwarded request allocated here.
			return nil, errNotLocal
		}
		return nil, fmt.Errorf("proxy: local %q: %w", req.Name, classifyOpenError(err))
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("proxy: local %q: %w", req.Name, err)
	}
	switch {
	case st.IsDir():
		f.Close()
		return nil, fmt.Errorf("proxy: local %q is a directory: %w", req.Name, ctftp.ErrNotFound)
	case !st.Mode().IsRegular():
		f.Close()
		return nil, fmt.Errorf("proxy: local %q is not a regular file: %w", req.Name, ctftp.ErrDenied)
	}
	return &ctftp.File{Body: f, Size: st.Size(), Origin: ctftp.OriginLocal}, nil
}

// classifyOpenError maps an os.Root open error onto the contract's
// sentinels. os.Root reports an escape with an error of its own that is
// not exported and not an errno, while every failure the kernel reports
// is a syscall.Errno; so "not an errno" is how an escape is recognised,
// without reading error text.
func classifyOpenError(err error) error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%w (%w)", ctftp.ErrNotFound, err)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.ELOOP):
		return fmt.Errorf("%w (%w)", ctftp.ErrDenied, err)
	case !errors.As(err, &errno):
		return fmt.Errorf("%w: path escapes the root (%w)", ctftp.ErrDenied, err)
	}
	return err
}

// Close releases the root directory. Files already opened stay valid.
func (l *Local) Close() error {
	return errors.Join(l.index.close(), l.root.Close())
}
