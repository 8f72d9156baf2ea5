package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	rlog "github.com/runnel/runnel/log"
)

// runCheck verifies a data directory offline: exit 0 when clean, 1 on damage.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("check", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: runnel check DIR\n\nVerifies every segment (CRC, offsets, indexes) of a data directory without changing it.\nExit status: 0 clean, 1 damage found, 2 usage or I/O error.\n")
	}
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	dir := fs.Arg(0)
	damage, err := rlog.CheckDir(dir)
	if err != nil {
		fmt.Fprintf(stderr, "runnel check: %v\n", err)
		return 2
	}
	for _, d := range damage {
		fmt.Fprintf(stdout, "DAMAGE %s at byte %d: %s\n", d.File, d.Offset, d.Reason)
	}
	if len(damage) > 0 {
		fmt.Fprintf(stdout, "%s: %d damaged places\n", dir, len(damage))
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", dir)
	return 0
}
