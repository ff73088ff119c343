package proxy

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ctftp/ctftp"
)

var (
	errAddrInUse    = syscall.EADDRINUSE
	errAFNoSupport  = syscall.EAFNOSUPPORT
	errAddrNotAvail = syscall.EADDRNOTAVAIL
)

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestLocal(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	writeFile(t, root, "ITLFile.tlv", "itl bytes")
	writeFile(t, root, "loads/SIP88xx.loads", "load")
	writeFile(t, root, "empty", "")
	writeFile(t, outside, "secret", "secret")
	symlink(t, filepath.Join(outside, "secret"), filepath.Join(root, "abs-escape"))
	symlink(t, "../"+filepath.Base(outside)+"/secret", filepath.Join(root, "rel-escape"))
	symlink(t, "ITLFile.tlv", filepath.Join(root, "inside-link"))
	symlink(t, "loop-b", filepath.Join(root, "loop-a"))
	symlink(t, "loop-a", filepath.Join(root, "loop-b"))
	symlink(t, outside, filepath.Join(root, "dir-escape"))
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	local, err := NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()

	tests := []struct {
		name    string
		file    string
		want    string
		wantErr error
	}{
		{name: "regular file", file: "ITLFile.tlv", want: "itl bytes"},
		{name: "nested", file: "loads/SIP88xx.loads", want: "load"},
		{name: "empty file", file: "empty", want: ""},
		{name: "symlink inside root", file: "inside-link", want: "itl bytes"},
		{name: "missing", file: "CTLFile.tlv", wantErr: ctftp.ErrNotFound},
		{name: "missing dir", file: "nope/x", wantErr: ctftp.ErrNotFound},
		{name: "through a file", file: "ITLFile.tlv/x", wantErr: ctftp.ErrNotFound},
		{name: "directory", file: "loads", wantErr: ctftp.ErrNotFound},
		{name: "case is exact", file: "itlfile.tlv", wantErr: ctftp.ErrNotFound},
		{name: "absolute symlink out", file: "abs-escape", wantErr: ctftp.ErrDenied},
		{name: "relative symlink out", file: "rel-escape", wantErr: ctftp.ErrDenied},
		{name: "through a symlinked dir out", file: "dir-escape/secret", wantErr: ctftp.ErrDenied},
		{name: "symlink loop", file: "loop-a", wantErr: ctftp.ErrDenied},
		{name: "fifo", file: "fifo", wantErr: ctftp.ErrDenied},
		{name: "dot-dot (not cleaned)", file: "../x", wantErr: ctftp.ErrDenied},
		{name: "absolute (not cleaned)", file: "/etc/passwd", wantErr: ctftp.ErrDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := local.Open(context.Background(), ctftp.Request{Name: tt.file})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Body.Close()
			if f.Origin != ctftp.OriginLocal || f.Size != int64(len(tt.want)) {
				t.Errorf("origin %q size %d", f.Origin, f.Size)
			}
			if _, ok := f.Body.(io.Seeker); !ok {
				t.Error("body is not seekable")
			}
			if _, ok := f.Body.(io.ReaderAt); !ok {
				t.Error("body is not an io.ReaderAt")
			}
			got, err := io.ReadAll(f.Body)
			if err != nil || string(got) != tt.want {
				t.Errorf("read %q, %v", got, err)
			}
		})
	}
}

func TestLocalPermission(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode")
	}
	root := t.TempDir()
	writeFile(t, root, "private", "x")
	if err := os.Chmod(filepath.Join(root, "private"), 0); err != nil {
		t.Fatal(err)
	}
	local, err := NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if _, err := local.Open(context.Background(), ctftp.Request{Name: "private"}); !errors.Is(err, ctftp.ErrDenied) {
		t.Fatalf("err = %v, want ErrDenied", err)
	}
}

func TestLocalCancelled(t *testing.T) {
	local, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := local.Open(ctx, ctftp.Request{Name: "x"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestNewLocalMissingRoot(t *testing.T) {
	if _, err := NewLocal(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}
