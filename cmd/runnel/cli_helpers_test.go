package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// cliServer starts the server the CLI tests talk to: a real `runnel serve`
// (or, with RUNNEL_IT_TARGET=kafka, Apache Kafka: the same commands against
// the reference server), one partition per auto-created topic, and returns
// it; its Addr is the bootstrap address.
func cliServer(t *testing.T) itServer {
	t.Helper()
	return startServer(t, 1)
}

// cliResult is what one in-process command run produced.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs one client command in process, bounded by 30 s.
func runCLI(t *testing.T, stdin string, name string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	var code int
	switch name {
	case "topic":
		code = runTopic(ctx, args, &out, &errb)
	case "produce":
		code = runProduce(ctx, args, strings.NewReader(stdin), &out, &errb)
	case "consume":
		code = runConsume(ctx, args, &out, &errb)
	case "status":
		code = runStatus(ctx, args, &out, &errb)
	case "bench":
		code = runBench(ctx, args, &out, &errb)
	default:
		t.Fatalf("runCLI: unknown command %q", name)
	}
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// mustCLI is runCLI that fails the test on a non-zero exit code.
func mustCLI(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	r := runCLI(t, stdin, name, args...)
	if r.code != 0 {
		t.Fatalf("runnel %s %s: exit %d\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}
