package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// fakeCluster starts an in-process franz-go kfake cluster (a Kafka-API
// server) and returns its bootstrap address.
func fakeCluster(t *testing.T, opts ...kfake.Opt) string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1)}, opts...)...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return strings.Join(c.ListenAddrs(), ",")
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
