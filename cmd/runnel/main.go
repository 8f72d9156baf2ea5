// Command runnel is the site event log for edge boxes: one binary that
// serves the Kafka wire protocol and MQTT over a crash-safe partitioned
// log, forwards upstream, and answers health, metrics and status over HTTP.
//
// Subcommands: serve, topic, produce, consume, status, bench, check, repair, version.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	rlog "github.com/runnel/runnel/log"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `runnel — the site's durable event log.

Usage: runnel COMMAND [flags]

Commands:
  serve     run the appliance (Kafka :9092, MQTT :1883, HTTP :8080; with --join or
            --gossip-addr it also mirrors site peers)
  topic     create | list | describe | delete topics
  produce   write lines from stdin to a topic
  consume   read records from a topic
  status    show topics, offsets, node and route state
  bench     load generator: bench produce | consume | e2e
  check     verify a data directory offline (exit 1 on damage)
  repair    move damaged ranges of a data directory aside, offline (asks first)
  user      add | del | list the accounts of a users file (password from a prompt or stdin)
  version   print the version and the on-disk formats it reads and writes

Run 'runnel COMMAND --help' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "topic":
		return runTopic(ctx, rest, stdout, stderr)
	case "produce":
		return runProduce(ctx, rest, stdin, stdout, stderr)
	case "consume":
		return runConsume(ctx, rest, stdout, stderr)
	case "status":
		return runStatus(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "check":
		return runCheck(ctx, rest, stdout, stderr)
	case "repair":
		return runRepair(ctx, rest, stdin, stdout, stderr)
	case "user":
		return runUser(ctx, rest, stdin, stdout, stderr)
	case "version", "--version":
		if len(rest) > 0 {
			if rest[0] == "-h" || rest[0] == "--help" {
				fmt.Fprintln(stdout, "Usage: runnel version\n\nPrints the version, the Go version it was built with and the data and file format versions it reads and writes.")
				return 0
			}
			fmt.Fprintf(stderr, "runnel version: unexpected argument %q (it takes none)\n", rest[0])
			return 2
		}
		printVersion(stdout)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "runnel: unknown command %q (run 'runnel --help')\n", cmd)
	return 2
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return ""
}

// printVersion prints the build and the on-disk formats this binary reads
// and writes (log/doc.go, "Upgrades and downgrades").
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "runnel %s (%s %s/%s)\n", version, goVersion(), runtime.GOOS, runtime.GOARCH)
	opens := fmt.Sprintf("%d to %d", rlog.DataFormatReadableFrom, rlog.DataFormat)
	if rlog.DataFormat == rlog.DataFormatReadableFrom+1 {
		opens = fmt.Sprintf("%d and %d", rlog.DataFormatReadableFrom, rlog.DataFormat)
	}
	fmt.Fprintf(w, "data format %d: opens %s, refuses newer; a data dir is at %d once it holds transactions\n", rlog.DataFormat, opens, rlog.DataFormatTransactions)
	for _, f := range rlog.Formats() {
		reads := fmt.Sprintf("v%d", f.ReadsFrom)
		if f.ReadsFrom != f.Writes {
			reads = fmt.Sprintf("v%d-v%d", f.ReadsFrom, f.Writes)
		}
		fmt.Fprintf(w, "  %-46s writes v%d, reads %s\n", f.Name, f.Writes, reads)
	}
}
