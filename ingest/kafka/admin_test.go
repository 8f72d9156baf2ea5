package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
)

func createTopicReq(name string, parts int32, validateOnly bool, cfg map[string]string) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.ValidateOnly = validateOnly
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, parts, 1
	for k, v := range cfg {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, strp(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

func describeTopic(t *testing.T, ctx context.Context, cl *kgo.Client, topic string) map[string]kmsg.DescribeConfigsResponseResourceConfig {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Resources[0].ErrorCode != 0 {
		t.Fatalf("DescribeConfigs %s: error %d", topic, resp.Resources[0].ErrorCode)
	}
	out := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, c := range resp.Resources[0].Configs {
		out[c.Name] = c
	}
	return out
}

func TestAdminRequests(t *testing.T) {
	ts := startServer(t, openLog(t, ""), nil)
	ctx := testCtx(t, 20*time.Second)
	cl := newClient(t, ts.addr)

	code := func(resp *kmsg.CreateTopicsResponse, err error) int16 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].ErrorCode
	}
	// Validate-only creates nothing.
	if c := code(createTopicReq("adm", 3, true, map[string]string{"retention.ms": "3600000"}).RequestWith(ctx, cl)); c != 0 {
		t.Fatalf("validate-only: %d", c)
	}
	if _, err := ts.log.Topic("adm"); err == nil {
		t.Fatal("validate-only created the topic")
	}
	// Bad configs and names.
	for name, cfg := range map[string]map[string]string{
		"unknown":  {"no.such.config": "1"},
		"fsync":    {"runnel.fsync": "sometimes"},
		"onfull":   {"runnel.on.full": "explode"},
		"policy":   {"cleanup.policy": "shrink"},
		"dirty":    {"min.cleanable.dirty.ratio": "1.5"},
		"segbytes": {"segment.bytes": "abc"},
	} {
		if c := code(createTopicReq("bad-"+name, 1, false, cfg).RequestWith(ctx, cl)); c != codeInvalidConfig {
			t.Errorf("config %v: code %d, want INVALID_CONFIG", cfg, c)
		}
	}
	if c := code(createTopicReq("bad/name", 1, false, nil).RequestWith(ctx, cl)); c != codeInvalidTopic {
		t.Errorf("bad name: code %d", c)
	}
	if c := code(createTopicReq("zero", 0, false, nil).RequestWith(ctx, cl)); c != codeInvalidPartitions {
		t.Errorf("0 partitions: code %d", c)
	}
	// Create with configs.
	resp, err := createTopicReq("adm", 3, false, map[string]string{
		"retention.ms": "3600000", "runnel.fsync": "interval", "runnel.on.full": "drop-oldest",
		"segment.bytes": "1048576", "max.message.bytes": "200000", "cleanup.policy": "delete",
	}).RequestWith(ctx, cl)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create: %v %+v", err, resp)
	}
	if resp.Topics[0].NumPartitions != 3 {
		t.Fatalf("created with %d partitions", resp.Topics[0].NumPartitions)
	}
	info, err := ts.log.Topic("adm")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Partitions) != 3 || info.Config.Fsync != log.FsyncInterval || info.Config.OnFull != log.OnFullDropOldest ||
		info.Config.RetentionAge != time.Hour || info.Config.SegmentBytes != 1<<20 || info.Config.MaxBatchBytes != 200000 {
		t.Fatalf("stored config %+v", info.Config)
	}
	if c := code(createTopicReq("adm", 1, false, nil).RequestWith(ctx, cl)); c != codeTopicAlreadyExists {
		t.Errorf("exists: code %d", c)
	}
	// Describe.
	cfg := describeTopic(t, ctx, cl, "adm")
	if v := cfg["retention.ms"]; *v.Value != "3600000" || v.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("retention.ms %q source %v", *v.Value, v.Source)
	}
	if v := cfg["retention.bytes"]; v.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("retention.bytes source %v", v.Source)
	}
	if v := cfg["runnel.fsync"]; *v.Value != "interval" {
		t.Errorf("runnel.fsync %q", *v.Value)
	}
	if v := cfg["cleanup.policy"]; *v.Value != "delete" || v.ReadOnly {
		t.Errorf("cleanup.policy %+v", v)
	}
	// Incremental: set one, delete one (back to default), others kept.
	inc := kmsg.NewPtrIncrementalAlterConfigsRequest()
	ir := kmsg.NewIncrementalAlterConfigsRequestResource()
	ir.ResourceType, ir.ResourceName = kmsg.ConfigResourceTypeTopic, "adm"
	ir.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{
		{Name: "retention.bytes", Op: kmsg.IncrementalAlterConfigOpSet, Value: strp("5000000")},
		{Name: "runnel.fsync", Op: kmsg.IncrementalAlterConfigOpDelete},
	}
	inc.Resources = append(inc.Resources, ir)
	if r, err := inc.RequestWith(ctx, cl); err != nil || r.Resources[0].ErrorCode != 0 {
		t.Fatalf("incremental: %v %+v", err, r)
	}
	info, _ = ts.log.Topic("adm")
	if info.Config.RetentionBytes != 5000000 || info.Config.Fsync != log.FsyncAlways || info.Config.RetentionAge != time.Hour {
		t.Fatalf("after incremental: %+v", info.Config)
	}
	// AlterConfigs replaces the whole set.
	alt := kmsg.NewPtrAlterConfigsRequest()
	ar := kmsg.NewAlterConfigsRequestResource()
	ar.ResourceType, ar.ResourceName = kmsg.ConfigResourceTypeTopic, "adm"
	ar.Configs = []kmsg.AlterConfigsRequestResourceConfig{{Name: "segment.ms", Value: strp("60000")}}
	alt.Resources = append(alt.Resources, ar)
	if r, err := alt.RequestWith(ctx, cl); err != nil || r.Resources[0].ErrorCode != 0 {
		t.Fatalf("alter: %v %+v", err, r)
	}
	cfg = describeTopic(t, ctx, cl, "adm")
	if v := cfg["segment.ms"]; *v.Value != "60000" || v.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("segment.ms %q %v", *v.Value, v.Source)
	}
	if v := cfg["retention.ms"]; v.Source != kmsg.ConfigSourceDefaultConfig || *v.Value == "3600000" {
		t.Errorf("retention.ms after replace: %q %v", *v.Value, v.Source)
	}
	// Invalid alter is rejected and changes nothing.
	alt.Resources[0].Configs = []kmsg.AlterConfigsRequestResourceConfig{{Name: "runnel.fsync", Value: strp("bogus")}}
	if r, err := alt.RequestWith(ctx, cl); err != nil || r.Resources[0].ErrorCode != codeInvalidConfig {
		t.Fatalf("bad alter: %v %+v", err, r)
	}
	// Broker configs describe.
	bd := kmsg.NewPtrDescribeConfigsRequest()
	br := kmsg.NewDescribeConfigsRequestResource()
	br.ResourceType, br.ResourceName = kmsg.ConfigResourceTypeBroker, "0"
	bd.Resources = append(bd.Resources, br)
	if r, err := bd.RequestWith(ctx, cl); err != nil || r.Resources[0].ErrorCode != 0 || len(r.Resources[0].Configs) == 0 {
		t.Fatalf("broker describe: %v %+v", err, r)
	}
	// CreatePartitions: validate-only, grow, shrink refused.
	cp := kmsg.NewPtrCreatePartitionsRequest()
	cpt := kmsg.NewCreatePartitionsRequestTopic()
	cpt.Topic, cpt.Count = "adm", 5
	cp.Topics = append(cp.Topics, cpt)
	cp.ValidateOnly = true
	if r, err := cp.RequestWith(ctx, cl); err != nil || r.Topics[0].ErrorCode != 0 {
		t.Fatalf("create partitions validate: %v %+v", err, r)
	}
	if info, _ := ts.log.Topic("adm"); len(info.Partitions) != 3 {
		t.Fatal("validate-only grew the topic")
	}
	cp.ValidateOnly = false
	if r, err := cp.RequestWith(ctx, cl); err != nil || r.Topics[0].ErrorCode != 0 {
		t.Fatalf("create partitions: %v %+v", err, r)
	}
	if info, _ := ts.log.Topic("adm"); len(info.Partitions) != 5 {
		t.Fatalf("topic has %d partitions after growing to 5", len(info.Partitions))
	}
	cp.Topics[0].Count = 2
	if r, err := cp.RequestWith(ctx, cl); err != nil || r.Topics[0].ErrorCode != codeInvalidPartitions {
		t.Fatalf("shrink: %v %+v", err, r)
	}
	// Metadata shows 5 partitions led by this broker at the dialed address.
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = strp("adm")
	mreq.Topics = append(mreq.Topics, mt)
	md, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 5 || md.Brokers[0].Port == 0 {
		t.Fatalf("metadata %+v", md)
	}
	// Delete.
	del := kmsg.NewPtrDeleteTopicsRequest()
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.Topic = strp("adm")
	del.Topics = append(del.Topics, dt)
	del.TopicNames = []string{"adm"}
	if r, err := del.RequestWith(ctx, cl); err != nil || r.Topics[0].ErrorCode != 0 {
		t.Fatalf("delete: %v %+v", err, r)
	}
	if _, err := ts.log.Topic("adm"); err == nil {
		t.Fatal("topic still exists after delete")
	}
	if r, err := del.RequestWith(ctx, cl); err != nil || r.Topics[0].ErrorCode != codeUnknownTopicOrPartition {
		t.Fatalf("delete again: %v %+v", err, r)
	}
	// Metadata does not create a topic unless the client allows it.
	mt.Topic = strp("not-created")
	mreq.Topics = []kmsg.MetadataRequestTopic{mt}
	mreq.AllowAutoTopicCreation = false
	if md, err := mreq.RequestWith(ctx, cl); err != nil || md.Topics[0].ErrorCode != codeUnknownTopicOrPartition {
		t.Fatalf("metadata without auto-create: %v %+v", err, md)
	}
	mreq.AllowAutoTopicCreation = true
	if md, err := mreq.RequestWith(ctx, cl); err != nil || md.Topics[0].ErrorCode != 0 || len(md.Topics[0].Partitions) == 0 {
		t.Fatalf("metadata with auto-create: %v %+v", err, md)
	}
}

// TestAdminCompactedTopic: cleanup.policy compact and compact,delete (in
// Kafka's list forms) are accepted at CreateTopics, reported by
// DescribeConfigs, changed by IncrementalAlterConfigs and stored in the
// log's topic config, with the cleaner's settings.
func TestAdminCompactedTopic(t *testing.T) {
	ts := startServer(t, openLog(t, ""), nil)
	ctx := testCtx(t, 20*time.Second)
	cl := newClient(t, ts.addr)
	resp, err := createTopicReq("latest", 2, false, map[string]string{
		"cleanup.policy": "delete, compact", "delete.retention.ms": "60000",
		"min.compaction.lag.ms": "1000", "min.cleanable.dirty.ratio": "0.25",
	}).RequestWith(ctx, cl)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create: %v %+v", err, resp)
	}
	info, err := ts.log.Topic("latest")
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if c.Cleanup != log.CleanupCompactDelete || c.DeleteRetention != time.Minute || c.MinCompactionLag != time.Second || c.MinCleanableRatio != 0.25 {
		t.Fatalf("stored config %+v", c)
	}
	cfg := describeTopic(t, ctx, cl, "latest")
	if v := cfg["cleanup.policy"]; *v.Value != "compact,delete" || v.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("cleanup.policy %q %v", *v.Value, v.Source)
	}
	if v := cfg["delete.retention.ms"]; *v.Value != "60000" {
		t.Errorf("delete.retention.ms %q", *v.Value)
	}
	inc := kmsg.NewPtrIncrementalAlterConfigsRequest()
	ir := kmsg.NewIncrementalAlterConfigsRequestResource()
	ir.ResourceType, ir.ResourceName = kmsg.ConfigResourceTypeTopic, "latest"
	ir.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{
		{Name: "cleanup.policy", Op: kmsg.IncrementalAlterConfigOpSet, Value: strp("compact")},
		{Name: "delete.retention.ms", Op: kmsg.IncrementalAlterConfigOpDelete},
	}
	inc.Resources = append(inc.Resources, ir)
	if r, err := inc.RequestWith(ctx, cl); err != nil || r.Resources[0].ErrorCode != 0 {
		t.Fatalf("incremental: %v %+v", err, r)
	}
	info, _ = ts.log.Topic("latest")
	if info.Config.Cleanup != log.CleanupCompact || info.Config.DeleteRetention != 24*time.Hour || info.Config.MinCleanableRatio != 0.25 {
		t.Fatalf("after incremental: %+v", info.Config)
	}
	if v := describeTopic(t, ctx, cl, "latest")["cleanup.policy"]; *v.Value != "compact" {
		t.Errorf("cleanup.policy after alter %q", *v.Value)
	}
}
