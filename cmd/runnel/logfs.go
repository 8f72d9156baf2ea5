//go:build !faultinject

package main

import "github.com/runnel/runnel/log/vfs"

// logFS is the file system the log uses: nil, the operating system's. A
// binary built with -tags faultinject (tests only) can fail it on demand:
// see logfs_faultinject.go.
func logFS() vfs.FS { return nil }
