package main

import (
	"strings"
	"testing"
)

func TestCLITopicCreateListDescribeDelete(t *testing.T) {
	b := cliServer(t).Addr()
	out := mustCLI(t, "", "topic", "create", "orders", "--partitions", "3", "--config", "retention.ms=60000", "--brokers", b)
	if !strings.Contains(out, `created topic "orders" with 3 partitions`) {
		t.Fatalf("create output: %q", out)
	}
	if r := runCLI(t, "", "topic", "create", "orders", "--partitions", "3", "--brokers", b); r.code != 1 || !strings.Contains(r.stderr, "TOPIC_ALREADY_EXISTS") {
		t.Fatalf("second create: %+v", r)
	}
	mustCLI(t, "", "topic", "create", "orders", "--if-not-exists", "--brokers", b)

	mustCLI(t, "a\nb\nc\nd\n", "produce", "orders", "--brokers", b, "--partition", "1")
	out = mustCLI(t, "", "topic", "list", "--brokers", b)
	if !strings.Contains(out, "orders") || !regexpMatch(`orders\s+3\s+4\s+0,4,0`, out) {
		t.Fatalf("list output:\n%s", out)
	}
	out = mustCLI(t, "", "topic", "describe", "orders", "--brokers", b)
	for _, want := range []string{"Partitions: 3", "retention.ms=60000"} {
		if !strings.Contains(out, want) {
			t.Fatalf("describe lacks %q:\n%s", want, out)
		}
	}
	if !regexpMatch(`(?m)^1\s+(\d+)\s+\d+\s+\d+\s+0\s+4\s+4$`, out) {
		t.Fatalf("describe partition 1 line wrong:\n%s", out)
	}
	mustCLI(t, "", "topic", "delete", "orders", "--brokers", b)
	if r := runCLI(t, "", "topic", "describe", "orders", "--brokers", b); r.code != 1 || !strings.Contains(r.stderr, "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Fatalf("describe after delete: %+v", r)
	}
	mustCLI(t, "", "topic", "delete", "orders", "--if-exists", "--brokers", b)
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"topic", nil, "missing subcommand"},
		{"topic", []string{"frob"}, "unknown subcommand"},
		{"topic", []string{"create"}, "want exactly one topic NAME"},
		{"topic", []string{"create", "x", "--partitions", "0"}, "--partitions must be positive"},
		{"topic", []string{"create", "x", "--config", "nope"}, "want key=value"},
		{"topic", []string{"list", "--bogus"}, "unknown flag: --bogus"},
		{"produce", nil, "want exactly one TOPIC"},
		{"produce", []string{"t", "--acks", "2"}, "--acks"},
		{"produce", []string{"t", "--key", "a", "--key-separator", ":"}, "mutually exclusive"},
		{"produce", []string{"t", "-z", "brotli"}, "--compression"},
		{"consume", []string{"t", "--offset", "soon"}, "--offset"},
		{"consume", []string{"t", "--group", "g", "--partition", "1"}, "--partition cannot be used with --group"},
		{"consume", []string{"t", "--format", "%q"}, "unknown verb"},
		{"consume", []string{"t", "-n", "-3"}, "-n must be"},
	}
	for _, c := range cases {
		r := runCLI(t, "", c.name, c.args...)
		if r.code != 2 {
			t.Errorf("%s %v: exit %d, want 2 (stderr %q)", c.name, c.args, r.code, r.stderr)
			continue
		}
		if !strings.Contains(r.stderr, c.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%s %v: stderr %q, want one line containing %q", c.name, c.args, r.stderr, c.want)
		}
		if r.stdout != "" {
			t.Errorf("%s %v: stdout %q on a usage error", c.name, c.args, r.stdout)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"topic", "--help"}, {"topic", "create", "-h"}, {"topic", "list", "--help"},
		{"topic", "describe", "--help"}, {"topic", "delete", "--help"},
		{"produce", "--help"}, {"consume", "-h"}, {"status", "--help"},
		{"bench", "--help"}, {"bench", "produce", "--help"}, {"bench", "consume", "--help"}, {"bench", "e2e", "--help"},
	} {
		r := runCLI(t, "", args[0], args[1:]...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: runnel ") || r.stderr != "" {
			t.Errorf("%v: exit %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
		}
		if args[0] != "topic" && args[0] != "bench" || len(args) > 2 {
			if !strings.Contains(r.stdout, "--brokers") {
				t.Errorf("%v: help lacks --brokers:\n%s", args, r.stdout)
			}
		}
	}
}

func TestCLIBrokersFromEnv(t *testing.T) {
	b := cliServer(t).Addr()
	t.Setenv(envBrokers, b)
	mustCLI(t, "", "topic", "create", "envtopic", "--partitions", "2")
	if out := mustCLI(t, "", "topic", "list"); !strings.Contains(out, "envtopic") {
		t.Fatalf("list via RUNNEL_BROKERS:\n%s", out)
	}
	// The flag wins over the environment.
	if r := runCLI(t, "", "topic", "list", "--brokers", "127.0.0.1:1", "--timeout", "1s"); r.code != 1 {
		t.Fatalf("--brokers did not override RUNNEL_BROKERS: %+v", r)
	}
}
