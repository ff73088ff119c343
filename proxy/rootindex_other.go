//go:build !linux

package proxy

import "os"

// rootIndex is Linux's inotify index of the local root
// (rootindex_linux.go); elsewhere every name is asked of the root.
type rootIndex struct{}

func newRootIndex(*os.Root, string) *rootIndex { return nil }
func (*rootIndex) absent(string) bool          { return false }
func (*rootIndex) close() error                { return nil }

func indexable(string) bool { return false }
