package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	rlog "github.com/runnel/runnel/log"
)

// lockDataDir takes an exclusive flock on DIR/LOCK so a second runnel on the
// same data directory fails at once with a clear message. The lock dies with
// the process (kill -9 included); the file itself is left behind.
func lockDataDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, rlog.LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data dir %s is not writable: %v", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		pid := strings.TrimSpace(string(b[:n]))
		if pid != "" {
			return nil, fmt.Errorf("data dir %s is in use by another runnel (pid %s)", dir, pid)
		}
		return nil, fmt.Errorf("data dir %s is in use by another runnel", dir)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}
