//go:build linux

package proxy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ctftp/ctftp"
)

// The local root's index keeps up with the directory: a file dropped in
// is served, a file removed or moved away is not, one moved in is; names
// with a directory part bypass it; and a name the root does not hold
// costs no allocation (the kernel is not asked).
func TestLocalIndexFollowsTheRoot(t *testing.T) {
	root := t.TempDir()
	if !indexable(root) {
		t.Skipf("%s is not on a file system the index trusts", root)
	}
	writeFile(t, root, "ITLFile.tlv", "itl")
	local, err := NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if local.index == nil {
		t.Fatal("no inotify index on Linux")
	}
	ctx := context.Background()
	open := func(name string) (string, error) {
		f, err := local.Open(ctx, ctftp.Request{Name: name, Mode: "octet"})
		if err != nil {
			return "", err
		}
		defer f.Body.Close()
		b := make([]byte, f.Size)
		_, err = f.Body.(*os.File).ReadAt(b, 0)
		return string(b), err
	}
	// eventually polls until the root shows what the test just did to it:
	// the watcher reads the event a moment after the change.
	eventually := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen", what)
			}
		}
	}
	served := func(name, want string) func() bool {
		return func() bool { got, err := open(name); return err == nil && got == want }
	}
	notLocal := func(name string) func() bool {
		return func() bool { _, err := open(name); return errors.Is(err, errNotLocal) }
	}

	if got, err := open("ITLFile.tlv"); err != nil || got != "itl" {
		t.Fatalf("ITLFile.tlv: %q %v", got, err)
	}
	if _, err := open("SEP0011215A1AE3.cnf.xml.sgn"); !errors.Is(err, errNotLocal) {
		t.Fatalf("absent name: %v", err)
	}
	if a := testing.AllocsPerRun(100, func() { open("SEP0011215A1AE3.cnf.xml.sgn") }); !raceEnabled && a != 0 {
		t.Errorf("an absent name allocates %.1f objects", a)
	}

	writeFile(t, root, "CTLFile.tlv", "ctl")
	eventually("a file written into the root", served("CTLFile.tlv", "ctl"))
	if err := os.Remove(filepath.Join(root, "ITLFile.tlv")); err != nil {
		t.Fatal(err)
	}
	eventually("a file removed", notLocal("ITLFile.tlv"))
	elsewhere := t.TempDir()
	writeFile(t, elsewhere, "new.loads", "load")
	if err := os.Rename(filepath.Join(elsewhere, "new.loads"), filepath.Join(root, "new.loads")); err != nil {
		t.Fatal(err)
	}
	eventually("a file moved in", served("new.loads", "load"))
	if err := os.Rename(filepath.Join(root, "CTLFile.tlv"), filepath.Join(elsewhere, "CTLFile.tlv")); err != nil {
		t.Fatal(err)
	}
	eventually("a file moved out", notLocal("CTLFile.tlv"))
	// A subdirectory's files are asked of the root at once.
	writeFile(t, root, "loads/SIP88xx.loads", "sub")
	if got, err := open("loads/SIP88xx.loads"); err != nil || got != "sub" {
		t.Fatalf("a subdirectory's file: %q %v", got, err)
	}
	if err := local.Close(); err != nil {
		t.Fatal(err)
	}
}

// When the root directory itself goes away the index no longer answers:
// every name is asked of the root (which still holds the directory it
// opened).
func TestLocalIndexRootMoved(t *testing.T) {
	parent := t.TempDir()
	if !indexable(parent) {
		t.Skipf("%s is not on a file system the index trusts", parent)
	}
	root := filepath.Join(parent, "root")
	writeFile(t, root, "ITLFile.tlv", "itl")
	local, err := NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if err := os.Rename(root, filepath.Join(parent, "moved")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); local.index.names.Load() != nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the index still answers for a root that moved away")
		}
	}
	if local.index.absent("anything") {
		t.Fatal("an unknown index answered")
	}
	if _, err := local.Open(context.Background(), ctftp.Request{Name: "ITLFile.tlv", Mode: "octet"}); err != nil {
		t.Fatalf("the moved root's file: %v", err)
	}
}

// A root on a file system whose changes inotify may not see (here
// procfs; in the field NFS, SMB, FUSE) gets no index: every name is
// asked of the root, so a file another host writes there is served.
func TestLocalIndexOnlyOnLocalFilesystems(t *testing.T) {
	local, err := NewLocal("/proc/self")
	if err != nil {
		t.Skip(err)
	}
	defer local.Close()
	if local.index != nil {
		t.Fatal("an index on procfs")
	}
	if _, err := local.Open(context.Background(), ctftp.Request{Name: "no-such-name", Mode: "octet"}); !errors.Is(err, errNotLocal) {
		t.Fatalf("a missing name: %v", err)
	}
}
