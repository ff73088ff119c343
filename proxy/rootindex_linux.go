package proxy

import (
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rootIndex knows the names at the top of the local root, kept current by
// inotify, so that a request for a name the root does not hold (most of a
// gateway's: every forwarded file) costs a map look-up instead of an
// openat(2) and the three objects os.Root allocates for its miss. Names
// with a directory part, and every name when the index is not known (no
// inotify, or the root directory itself deleted or moved away), are asked
// of the root as before; so are names the index holds, whose file the
// root then opens with all of its checks.
//
// A file that appears is served once the watcher has read its event (well
// under a millisecond), as a request racing the creation might miss it
// anyway. Safe for concurrent use; close stops the watcher.
type rootIndex struct {
	names atomic.Pointer[map[string]struct{}] // nil: unknown
	f     *os.File                            // the inotify descriptor
	done  chan struct{}
}

const rootEvents = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// localFilesystems are the file systems whose every change inotify sees.
// On a network or FUSE file system (NFS, SMB, sshfs, ...) a file another
// host writes raises no event here: an index would keep it from being
// served, so such a root is asked for every name.
var localFilesystems = map[int64]bool{
	unix.EXT4_SUPER_MAGIC:      true, // ext2, ext3 and ext4 share it
	unix.XFS_SUPER_MAGIC:       true,
	unix.BTRFS_SUPER_MAGIC:     true,
	unix.TMPFS_MAGIC:           true,
	unix.RAMFS_MAGIC:           true,
	unix.OVERLAYFS_SUPER_MAGIC: true,
	unix.F2FS_SUPER_MAGIC:      true,
	0x2fc12fc1:                 true, // ZFS
}

// indexable reports whether dir is on a file system whose changes
// inotify sees.
func indexable(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return localFilesystems[int64(st.Type)]
}

// newRootIndex watches root (the directory dir names, opened as root).
// It returns nil when dir is not on a local file system (indexable) or
// the kernel gives no inotify instance (a limit reached): the root is
// then asked for every name.
func newRootIndex(root *os.Root, dir string) *rootIndex {
	if !indexable(dir) {
		return nil
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil
	}
	// Watch before the first listing, so that no change falls between.
	if _, err := unix.InotifyAddWatch(fd, dir, rootEvents); err != nil {
		unix.Close(fd)
		return nil
	}
	x := &rootIndex{f: os.NewFile(uintptr(fd), "inotify "+dir), done: make(chan struct{})}
	x.rescan(root)
	go x.watch(root)
	return x
}

// absent reports whether name is known not to be at the top of the root.
func (x *rootIndex) absent(name string) bool {
	if x == nil || strings.IndexByte(name, '/') >= 0 {
		return false
	}
	m := x.names.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[name]
	return !ok
}

// rescan lists the root anew; a listing that fails leaves the index
// unknown until the next event lists it again.
func (x *rootIndex) rescan(root *os.Root) {
	d, err := root.Open(".")
	if err != nil {
		x.names.Store(nil)
		return
	}
	list, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		x.names.Store(nil)
		return
	}
	m := make(map[string]struct{}, len(list))
	for _, n := range list {
		m[n] = struct{}{}
	}
	x.names.Store(&m)
}

// watch reads events until close: any change, and an event queue
// overflow (changes lost), lists the root again (a burst of them, read
// together, once); the directory itself going away or a read error
// leaves the index unknown for good.
func (x *rootIndex) watch(root *os.Root) {
	defer close(x.done)
	buf := make([]byte, 64*1024)
	for {
		n, err := x.f.Read(buf)
		if err != nil {
			x.names.Store(nil)
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED|unix.IN_Q_OVERFLOW) != 0 {
				x.names.Store(nil)
				if ev.Mask&unix.IN_Q_OVERFLOW == 0 {
					return // the watch is gone; names are asked of the root
				}
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		x.rescan(root)
	}
}

// close stops the watcher and waits for it.
func (x *rootIndex) close() error {
	if x == nil {
		return nil
	}
	err := x.f.Close()
	<-x.done
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}
