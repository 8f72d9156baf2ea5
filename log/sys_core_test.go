package log

import (
	"os"

	"golang.org/x/sys/unix"
)

func fdatasyncFile(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
