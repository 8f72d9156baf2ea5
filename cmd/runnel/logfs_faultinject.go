//go:build faultinject

package main

import (
	"os"
	"syscall"

	"github.com/runnel/runnel/log/vfs"
	"github.com/runnel/runnel/log/vfs/errorfs"
)

// logFS, in a binary built with -tags faultinject for tests, is the
// operating system's file system with a switch: once the file named by
// $RUNNEL_FAULT_SYNC_FILE exists, every fsync of the log fails with EIO, as
// a failing disk's do. Release builds never contain this file.
func logFS() vfs.FS {
	trigger := os.Getenv("RUNNEL_FAULT_SYNC_FILE")
	if trigger == "" {
		return nil
	}
	return errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind != errorfs.OpSync {
			return nil
		}
		if _, err := os.Stat(trigger); err == nil {
			return syscall.EIO
		}
		return nil
	}))
}
