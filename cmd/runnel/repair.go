package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"

	rlog "github.com/runnel/runnel/log"
)

// runRepair makes damaged ranges of partitions gaps that readers pass over
// (log.Repair): offline, with the data directory locked, after the
// operator confirms (or --yes).
func runRepair(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("repair", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	yes := fs.BoolP("yes", "y", false, "repair without asking")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: runnel repair [--yes] DIR

Finds damaged record batches in a data directory (as runnel check does) and,
after confirmation, moves each damaged range aside: its bytes go to
<topic>/<partition>/<from>-<to>.damaged and its offsets become a gap that
consumers, forwarding and MQTT publish routes pass over (the records in it
are lost). runnel serve must be stopped. Exit status: 0 nothing left to
repair, 1 damage left (declined or not repairable), 2 usage or I/O error.

Flags:
%s`, fs.FlagUsages())
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
	release, err := lockDataDir(dir)
	if err != nil {
		fmt.Fprintf(stderr, "runnel repair: %v (stop runnel serve first)\n", err)
		return 2
	}
	defer release()
	// Open (recovery finds damage in what it scans) and check every batch.
	l, err := rlog.Open(&rlog.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler), MinFreeBytes: -1})
	if err != nil {
		fmt.Fprintf(stderr, "runnel repair: open %s: %v\n", dir, err)
		return 2
	}
	found := append(l.Stats().Damaged, l.Check()...)
	if err := l.Close(); err != nil {
		fmt.Fprintf(stderr, "runnel repair: close %s: %v\n", dir, err)
		return 2
	}
	var todo []rlog.Damage
	seen := map[string]bool{}
	ranged := map[string]bool{} // files holding a partition range found damaged
	for _, d := range found {
		if d.PartitionRange() {
			ranged[d.File] = true
		}
	}
	other := 0
	for _, d := range found {
		key := fmt.Sprintf("%s/%d/%d", d.Topic, d.Partition, d.From)
		switch {
		case d.Repaired || seen[key]:
		case !d.PartitionRange() && ranged[d.File]:
			// A damaged entry of a shared segment file: the partition
			// ranges in it are listed (and repaired) on their own; the
			// file goes once retention no longer needs it.
			fmt.Fprintf(stdout, "DAMAGE %s at byte %d: %s (holds the partition ranges listed)\n", d.File, d.Offset, d.Reason)
		case !d.PartitionRange():
			other++
			fmt.Fprintf(stdout, "DAMAGE %s at byte %d: %s (not a partition's records: not repaired here)\n", d.File, d.Offset, d.Reason)
		default:
			seen[key] = true
			todo = append(todo, d)
			fmt.Fprintf(stdout, "DAMAGE %s: %s at byte %d: %s\n", d.RangeString(), d.File, d.Offset, d.Reason)
		}
	}
	if len(todo) == 0 {
		fmt.Fprintf(stdout, "%s: no damaged partition range to repair\n", dir)
		if other > 0 {
			return 1
		}
		return 0
	}
	if !*yes {
		fmt.Fprintf(stdout, "Move these %d damaged ranges aside? Their records are lost; readers will pass over them. [y/N] ", len(todo))
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Fprintln(stdout, "nothing changed")
			return 1
		}
	}
	left := other
	for _, d := range todo {
		did, err := rlog.Repair(dir, d)
		if err != nil {
			fmt.Fprintf(stdout, "NOT REPAIRED %s: %v\n", d.RangeString(), err)
			left++
			continue
		}
		fmt.Fprintf(stdout, "REPAIRED %s\n", did)
	}
	if left > 0 {
		return 1
	}
	return 0
}
