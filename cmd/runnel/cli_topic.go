package main

// runnel topic create|list|describe|delete: topic administration over the
// Kafka protocol (CreateTopics, Metadata, ListOffsets, DescribeConfigs,
// DeleteTopics).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var topicCmd = command{
	name: "topic",
	args: "create|list|describe|delete ...",
	summary: `Manage topics on any Kafka-API server (runnel or Apache Kafka).

Subcommands:
  create NAME [--partitions N] [--config k=v ...]   create a topic
  list                                               list topics
  describe NAME                                      partitions, offsets and configs
  delete NAME [NAME ...]                             delete topics`,
}

// runTopic implements `runnel topic SUBCOMMAND ...`.
func runTopic(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return topicCmd.fail(stderr, usageErrorf("missing subcommand: create, list, describe or delete"))
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "create":
		return runTopicCreate(ctx, rest, stdout, stderr)
	case "list", "ls":
		return runTopicList(ctx, rest, stdout, stderr)
	case "describe":
		return runTopicDescribe(ctx, rest, stdout, stderr)
	case "delete", "rm":
		return runTopicDelete(ctx, rest, stdout, stderr)
	case "-h", "--help", "help":
		topicCmd.printUsage(stdout, topicCmd.newFlagSet())
		return exitOK
	default:
		return topicCmd.fail(stderr, usageErrorf("unknown subcommand %q: want create, list, describe or delete", sub))
	}
}

func runTopicCreate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := command{name: "topic create", args: "NAME", summary: "Create a topic."}
	fs := c.newFlagSet()
	cf := addClientFlags(fs)
	partitions := fs.Int32P("partitions", "p", -1, "number of partitions (-1: the server's default)")
	replication := fs.Int16("replication-factor", -1, "replication factor (-1: the server's default)")
	configs := fs.StringArrayP("config", "c", nil, "topic config as key=value (repeatable)")
	ifNotExists := fs.Bool("if-not-exists", false, "succeed when the topic already exists")
	if done, code := c.parse(fs, args, stdout, stderr); done {
		return code
	}
	if fs.NArg() != 1 {
		return c.fail(stderr, usageErrorf("want exactly one topic NAME, got %d arguments", fs.NArg()))
	}
	name := fs.Arg(0)
	if *partitions == 0 || *partitions < -1 {
		return c.fail(stderr, usageErrorf("--partitions must be positive (or -1), got %d", *partitions))
	}
	kvs, err := parseConfigs(*configs)
	if err != nil {
		return c.fail(stderr, err)
	}
	cl, err := cf.newClient()
	if err != nil {
		return c.fail(stderr, err)
	}
	defer cl.Close()

	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = int32(cf.timeout.Milliseconds())
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = name
	rt.NumPartitions = *partitions
	rt.ReplicationFactor = *replication
	for _, kv := range kvs {
		rc := kmsg.NewCreateTopicsRequestTopicConfig()
		rc.Name = kv[0]
		rc.Value = kmsg.StringPtr(kv[1])
		rt.Configs = append(rt.Configs, rc)
	}
	req.Topics = append(req.Topics, rt)
	rctx, cancel := cf.requestCtx(ctx)
	defer cancel()
	resp, err := req.RequestWith(rctx, cl)
	if err != nil {
		return c.fail(stderr, fmt.Errorf("create topic %q: %w", name, err))
	}
	if len(resp.Topics) != 1 {
		return c.fail(stderr, fmt.Errorf("create topic %q: server answered %d topics", name, len(resp.Topics)))
	}
	t := resp.Topics[0]
	if err := errorCodeErr(t.ErrorCode, t.ErrorMessage); err != nil {
		if *ifNotExists && errors.Is(err, kerr.TopicAlreadyExists) {
			fmt.Fprintf(stdout, "topic %q already exists\n", name)
			return exitOK
		}
		return c.fail(stderr, fmt.Errorf("create topic %q: %w", name, err))
	}
	n := t.NumPartitions
	if n <= 0 {
		n = *partitions
	}
	if n > 0 {
		fmt.Fprintf(stdout, "created topic %q with %d %s\n", name, n, plural(int(n), "partition", "partitions"))
	} else {
		fmt.Fprintf(stdout, "created topic %q\n", name)
	}
	return exitOK
}

// parseConfigs splits key=value pairs (also accepting comma-separated lists).
func parseConfigs(in []string) ([][2]string, error) {
	var out [][2]string
	for _, s := range in {
		for _, kv := range strings.Split(s, ",") {
			kv = strings.TrimSpace(kv)
			if kv == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, usageErrorf("--config %q: want key=value", kv)
			}
			out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	return out, nil
}

func runTopicList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := command{name: "topic list", summary: "List topics with their partition count and record offsets."}
	fs := c.newFlagSet()
	cf := addClientFlags(fs)
	internal := fs.Bool("internal", false, "also list internal topics (e.g. __consumer_offsets)")
	if done, code := c.parse(fs, args, stdout, stderr); done {
		return code
	}
	if fs.NArg() != 0 {
		return c.fail(stderr, usageErrorf("unexpected argument %q", fs.Arg(0)))
	}
	cl, err := cf.newClient()
	if err != nil {
		return c.fail(stderr, err)
	}
	defer cl.Close()
	rctx, cancel := cf.requestCtx(ctx)
	defer cancel()
	tms, _, err := fetchMetadata(rctx, cl, nil)
	if err != nil {
		return c.fail(stderr, err)
	}
	tms = slices.DeleteFunc(tms, func(t topicMeta) bool { return t.internal && !*internal })
	offs, err := listOffsets(rctx, cl, tms)
	if err != nil {
		return c.fail(stderr, err)
	}
	printTopicTable(stdout, tms, offs)
	return exitOK
}

// printTopicTable prints one line per topic: name, partitions, records.
func printTopicTable(w io.Writer, tms []topicMeta, offs map[string]map[int32]*partitionOffsets) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tRECORDS\tEND OFFSETS")
	for _, tm := range tms {
		var total int64
		var ends []string
		for _, p := range tm.partitions {
			po := offs[tm.name][p]
			if po == nil || po.err != nil || po.end < 0 {
				ends = append(ends, "?")
				continue
			}
			total += po.end - max(po.start, 0)
			ends = append(ends, fmt.Sprint(po.end))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", tm.name, len(tm.partitions), total, strings.Join(ends, ","))
	}
	tw.Flush()
}

func runTopicDescribe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := command{name: "topic describe", args: "NAME", summary: "Show a topic's partitions, start/end offsets and configs."}
	fs := c.newFlagSet()
	cf := addClientFlags(fs)
	if done, code := c.parse(fs, args, stdout, stderr); done {
		return code
	}
	if fs.NArg() != 1 {
		return c.fail(stderr, usageErrorf("want exactly one topic NAME, got %d arguments", fs.NArg()))
	}
	name := fs.Arg(0)
	cl, err := cf.newClient()
	if err != nil {
		return c.fail(stderr, err)
	}
	defer cl.Close()
	rctx, cancel := cf.requestCtx(ctx)
	defer cancel()
	tms, errs, err := fetchMetadata(rctx, cl, []string{name})
	if err != nil {
		return c.fail(stderr, err)
	}
	if err := errs[name]; err != nil {
		return c.fail(stderr, fmt.Errorf("topic %q: %w", name, err))
	}
	if len(tms) != 1 {
		return c.fail(stderr, fmt.Errorf("topic %q: not in the metadata answer", name))
	}
	offs, err := listOffsets(rctx, cl, tms)
	if err != nil {
		return c.fail(stderr, err)
	}
	configs, cfgErr := describeTopicConfigs(rctx, cl, name)

	tm := tms[0]
	fmt.Fprintf(stdout, "Topic: %s\nPartitions: %d\n\n", tm.name, len(tm.partitions))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tLEADER\tREPLICAS\tISR\tSTART\tEND\tRECORDS")
	for _, p := range tm.partitions {
		po := offs[tm.name][p]
		leader := "none"
		if l := tm.leaders[p]; l >= 0 {
			leader = strconv.Itoa(int(l))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t", p, leader, brokerList(tm.replicas[p]), brokerList(tm.isr[p]))
		if po == nil || po.err != nil {
			var err error
			if po != nil {
				err = po.err
			}
			fmt.Fprintf(tw, "?\t?\t%v\n", err)
			continue
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\n", po.start, po.end, po.end-po.start)
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\nConfigs:")
	if cfgErr != nil {
		fmt.Fprintf(stdout, "  (unavailable: %v)\n", cfgErr)
		return exitOK
	}
	for _, kv := range configs {
		fmt.Fprintf(stdout, "  %s\n", kv)
	}
	return exitOK
}

// brokerList formats broker ids as kafka-topics does: "1,2", "-" for none.
func brokerList(ids []int32) string {
	if len(ids) == 0 {
		return "-"
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(int(id))
	}
	return strings.Join(parts, ",")
}

// describeTopicConfigs returns "key=value" lines (sorted) for topic, marking
// values that are the server's defaults.
func describeTopicConfigs(ctx context.Context, cl *kgo.Client, topic string) ([]string, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeTopic
	rr.ResourceName = topic
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	type entry struct{ name, line string }
	var entries []entry
	for _, r := range resp.Resources {
		if err := errorCodeErr(r.ErrorCode, r.ErrorMessage); err != nil {
			return nil, err
		}
		for _, c := range r.Configs {
			v := "<sensitive>"
			if !c.IsSensitive {
				v = "null"
				if c.Value != nil {
					v = *c.Value
				}
			}
			line := c.Name + "=" + v
			if c.Source == kmsg.ConfigSourceDefaultConfig || (c.Source == kmsg.ConfigSourceUnknown && c.IsDefault) {
				line += "  (default)"
			}
			entries = append(entries, entry{c.Name, line})
		}
	}
	// sort.Slice: slices.SortFunc links one more copy of the sort for each element type
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.line
	}
	return out, nil
}

func runTopicDelete(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := command{name: "topic delete", args: "NAME [NAME ...]", summary: "Delete topics and all their records."}
	fs := c.newFlagSet()
	cf := addClientFlags(fs)
	ifExists := fs.Bool("if-exists", false, "succeed when a topic does not exist")
	if done, code := c.parse(fs, args, stdout, stderr); done {
		return code
	}
	if fs.NArg() == 0 {
		return c.fail(stderr, usageErrorf("want at least one topic NAME"))
	}
	cl, err := cf.newClient()
	if err != nil {
		return c.fail(stderr, err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = int32(cf.timeout.Milliseconds())
	for _, name := range fs.Args() {
		req.TopicNames = append(req.TopicNames, name)
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	rctx, cancel := cf.requestCtx(ctx)
	defer cancel()
	resp, err := req.RequestWith(rctx, cl)
	if err != nil {
		return c.fail(stderr, fmt.Errorf("delete topics: %w", err))
	}
	code := exitOK
	for _, t := range resp.Topics {
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		}
		if err := errorCodeErr(t.ErrorCode, t.ErrorMessage); err != nil {
			if *ifExists && errors.Is(err, kerr.UnknownTopicOrPartition) {
				fmt.Fprintf(stdout, "topic %q does not exist\n", name)
				continue
			}
			fmt.Fprintf(stderr, "runnel topic delete: %q: %v\n", name, err)
			code = exitError
			continue
		}
		fmt.Fprintf(stdout, "deleted topic %q\n", name)
	}
	return code
}

// plural is one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
