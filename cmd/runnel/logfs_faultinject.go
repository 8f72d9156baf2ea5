//go:build faultinject

package main

import (
	"os"
	"syscall"
	"time"

	"github.com/runnel/runnel/log/vfs"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// logFS, in a binary built with -tags faultinject for tests, is the
// operating system's file system with two switches: while the file named
// by $RUNNEL_FAULT_HANG_SYNC_FILE exists, every fsync of the log waits (a
// disk that stops answering), and once the file named by
// $RUNNEL_FAULT_SYNC_FILE exists, every fsync fails with EIO, as a failing
// disk's do. Release builds never contain this file.
func logFS() vfs.FS {
	fail, hang := os.Getenv("RUNNEL_FAULT_SYNC_FILE"), os.Getenv("RUNNEL_FAULT_HANG_SYNC_FILE")
	if fail == "" && hang == "" {
		return nil
	}
	exists := func(name string) bool {
		_, err := os.Stat(name)
		return name != "" && err == nil
	}
	return errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind != errorfs.OpSync {
			return nil
		}
		for exists(hang) {
			time.Sleep(10 * time.Millisecond)
		}
		if exists(fail) {
			return syscall.EIO
		}
		return nil
	}))
}
