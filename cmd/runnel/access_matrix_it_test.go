package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"golang.org/x/crypto/bcrypt"
)

// matrixUsers: an admin (superuser), a writer of sensors.* (write and
// create there, nothing else) and a read-only dashboard (read every topic,
// use groups dash-*).
var matrixUsers = []struct{ name, pass string }{{"admin", "admin-pw"}, {"writer", "writer-pw"}, {"dash", "dash-pw"}}

const matrixConfig = `
kafka:
  users: [%s]
mqtt:
  users:
%s
  routes: ["sensors/#=sensors.mqtt", "ops/#=ops.mqtt"]
access:
  superusers: [admin]
  rules:
    - {user: writer, topic: "sensors.*", allow: [write, create]}
    - {user: dash, topic: "*", allow: [read]}
    - {user: dash, group: "dash-*", allow: [read]}
`

// TestAccessMatrix checks every cell of users × operations × protocols
// (Kafka through franz-go and kcat, MQTT through mosquitto_pub/sub, HTTP
// through curl) against access rules: allowed, or refused with the
// protocol's own error (Kafka error codes 29/30/31, MQTT not authorized,
// HTTP 403).
func TestAccessMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	for _, tool := range []string{"kcat", "mosquitto_pub", "mosquitto_sub", "curl"} {
		needTool(t, tool)
	}
	dir := t.TempDir()
	var kusers, musers []string
	for _, u := range matrixUsers {
		kusers = append(kusers, fmt.Sprintf("%q", u.name+":"+u.pass))
		h, err := bcrypt.GenerateFromPassword([]byte(u.pass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		musers = append(musers, fmt.Sprintf("    - {name: %s, password-hash: %q}", u.name, h))
	}
	cfg := filepath.Join(dir, "runnel.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(matrixConfig, strings.Join(kusers, ", "), strings.Join(musers, "\n"))), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newRunnel(t, nil, 1, "--config", cfg)
	s.sec = clientSecurity{user: "admin", password: "admin-pw"}
	if err := s.start(); err != nil {
		t.Fatalf("start: %v\n%s", err, s.LogTail())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client := func(user, pass string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafka), kgo.RequestRetries(0), kgo.AllowAutoTopicCreation(), kgo.RecordRetries(2),
			kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	admin := client("admin", "admin-pw")
	// Topics every cell uses, made by the admin, each with a record.
	seed := []string{"sensors.a", "ops.a", "sensors.h", "sensors.mqtt", "ops.mqtt"}
	for _, u := range matrixUsers {
		seed = append(seed, "sensors.del-"+u.name, "sensors.cp-"+u.name)
	}
	for _, tp := range seed {
		if code := kProduce(ctx, t, admin, tp); code != 0 {
			t.Fatalf("seed %s: code %d", tp, code)
		}
	}

	type cell struct {
		op   string
		run  func(user, pass string) string // the outcome: "ok" or the refusal
		want map[string]string              // user → outcome
	}
	all := func(v string) map[string]string { return map[string]string{"admin": v, "writer": v, "dash": v} }
	who := func(admin, writer, dash string) map[string]string {
		return map[string]string{"admin": admin, "writer": writer, "dash": dash}
	}
	code := func(c int16) string {
		switch c {
		case 0:
			return "ok"
		case 29:
			return "TOPIC_AUTHORIZATION_FAILED"
		case 30:
			return "GROUP_AUTHORIZATION_FAILED"
		case 31:
			return "CLUSTER_AUTHORIZATION_FAILED"
		}
		return fmt.Sprintf("code %d", c)
	}
	const topicDenied, groupDenied, clusterDenied = "TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED"
	kc := map[string]*kgo.Client{}
	for _, u := range matrixUsers {
		kc[u.name] = client(u.name, u.pass)
	}
	cells := []cell{
		// Kafka, franz-go (the request's own error code).
		{"kafka produce sensors.a", func(u, _ string) string { return code(kProduce(ctx, t, kc[u], "sensors.a")) }, who("ok", "ok", topicDenied)},
		{"kafka produce ops.a", func(u, _ string) string { return code(kProduce(ctx, t, kc[u], "ops.a")) }, who("ok", topicDenied, topicDenied)},
		{"kafka fetch sensors.a", func(u, _ string) string { return code(kFetch(ctx, t, kc[u], "sensors.a")) }, who("ok", topicDenied, "ok")},
		{"kafka fetch ops.a", func(u, _ string) string { return code(kFetch(ctx, t, kc[u], "ops.a")) }, who("ok", topicDenied, "ok")},
		{"kafka list-offsets ops.a", func(u, _ string) string { return code(kListOffsets(ctx, t, kc[u], "ops.a")) }, who("ok", topicDenied, "ok")},
		{"kafka metadata ops.a", func(u, _ string) string { return code(kMetadataTopic(ctx, t, kc[u], "ops.a")) }, who("ok", topicDenied, "ok")},
		{"kafka metadata all lists ops.a", func(u, _ string) string { return fmt.Sprint(slices.Contains(kMetadataAll(ctx, t, kc[u]), "ops.a")) }, who("true", "false", "true")},
		{"kafka metadata all lists sensors.a", func(u, _ string) string { return fmt.Sprint(slices.Contains(kMetadataAll(ctx, t, kc[u]), "sensors.a")) }, all("true")},
		{"kafka create sensors.new-U", func(u, _ string) string { return code(kCreate(ctx, t, kc[u], "sensors.new-"+u)) }, who("ok", "ok", topicDenied)},
		{"kafka create ops.new-U", func(u, _ string) string { return code(kCreate(ctx, t, kc[u], "ops.new-"+u)) }, who("ok", topicDenied, topicDenied)},
		{"kafka delete sensors.del-U", func(u, _ string) string { return code(kDelete(ctx, t, kc[u], "sensors.del-"+u)) }, who("ok", topicDenied, topicDenied)},
		{"kafka create-partitions sensors.cp-U", func(u, _ string) string { return code(kCreatePartitions(ctx, t, kc[u], "sensors.cp-"+u)) }, who("ok", topicDenied, topicDenied)},
		{"kafka alter-configs sensors.a", func(u, _ string) string { return code(kAlterConfig(ctx, t, kc[u], "sensors.a")) }, who("ok", topicDenied, topicDenied)},
		{"kafka describe-configs sensors.a", func(u, _ string) string { return code(kDescribeConfigs(ctx, t, kc[u], "sensors.a")) }, all("ok")},
		{"kafka describe-configs ops.a", func(u, _ string) string { return code(kDescribeConfigs(ctx, t, kc[u], "ops.a")) }, who("ok", topicDenied, "ok")},
		{"kafka describe-cluster", func(u, _ string) string { return code(kDescribeCluster(ctx, t, kc[u])) }, who("ok", clusterDenied, clusterDenied)},
		{"kafka find-coordinator dash-1", func(u, _ string) string { return code(kFindCoordinator(ctx, t, kc[u], "dash-1")) }, who("ok", groupDenied, "ok")},
		{"kafka offset-commit dash-1 sensors.a", func(u, _ string) string { return code(kCommit(ctx, t, kc[u], "dash-1", "sensors.a")) }, who("ok", groupDenied, "ok")},
		{"kafka offset-commit other-1 sensors.a", func(u, _ string) string { return code(kCommit(ctx, t, kc[u], "other-1", "sensors.a")) }, who("ok", groupDenied, groupDenied)},
		{"kafka offset-fetch dash-1", func(u, _ string) string { return code(kOffsetFetch(ctx, t, kc[u], "dash-1")) }, who("ok", groupDenied, "ok")},
		{"kafka join-group other-1", func(u, _ string) string { return code(kJoin(ctx, t, kc[u], "other-1")) }, who("ok", groupDenied, groupDenied)},

		// Kafka, kcat (librdkafka's own message).
		{"kcat produce sensors.k", func(u, p string) string { return kcatOutcome(t, s.kafka, u, p, "-P", "-t", "sensors.k") }, who("ok", "ok", "Topic authorization failed")},
		{"kcat produce ops.a", func(u, p string) string { return kcatOutcome(t, s.kafka, u, p, "-P", "-t", "ops.a") }, who("ok", "Topic authorization failed", "Topic authorization failed")},
		{"kcat consume sensors.a", func(u, p string) string {
			return kcatOutcome(t, s.kafka, u, p, "-C", "-t", "sensors.a", "-o", "beginning", "-c", "1", "-e")
		}, who("ok", "Topic authorization failed", "ok")},

		// MQTT (routes: sensors/# → sensors.mqtt, ops/# → ops.mqtt).
		{"mqtt publish sensors/x", func(u, p string) string { return mqttPubOutcome(ctx, t, s, admin, u, p, "sensors/x", "sensors.mqtt") }, who("ok", "ok", "Not authorized")},
		{"mqtt publish ops/x", func(u, p string) string { return mqttPubOutcome(ctx, t, s, admin, u, p, "ops/x", "ops.mqtt") }, who("ok", "Not authorized", "Not authorized")},
		{"mqtt subscribe sensors/# gets a message", func(u, p string) string { return mqttSubOutcome(t, s, u, p, "sensors/#", "sensors/y") }, who("ok", "nothing delivered", "ok")},

		// HTTP (curl).
		{"http produce sensors.h", func(u, p string) string {
			return curlOutcome(t, u, p, "-H", "Content-Type: application/vnd.kafka.json.v2+json", "-d", `{"records":[{"value":1}]}`, "http://"+s.http+"/topics/sensors.h")
		}, who("200", "200", "403")},
		{"http produce ops.a", func(u, p string) string {
			return curlOutcome(t, u, p, "-H", "Content-Type: application/vnd.kafka.json.v2+json", "-d", `{"records":[{"value":1}]}`, "http://"+s.http+"/topics/ops.a")
		}, who("200", "403", "403")},
		{"http read sensors.a records", func(u, p string) string {
			return curlOutcome(t, u, p, "http://"+s.http+"/topics/sensors.a/partitions/0/records?offset=0&timeout=0")
		}, who("200", "403", "200")},
		{"http topic list has ops.a", func(u, p string) string {
			out := curlBody(t, u, p, "http://"+s.http+"/topics")
			return fmt.Sprint(strings.Contains(out, `"ops.a"`))
		}, who("true", "false", "true")},
		{"http mqtt publish sensors/h", func(u, p string) string {
			return curlOutcome(t, u, p, "-H", "Content-Type: application/json", "-d", `{"topic":"sensors/h","payload":"1","qos":1}`, "http://"+s.http+"/api/v5/publish")
		}, who("200", "200", "403")},
		{"http pause route", func(u, p string) string {
			return curlOutcome(t, u, p, "-X", "POST", "http://"+s.http+"/api/routes/none/pause")
		}, who("404", "403", "403")},
		{"http wrong password", func(u, p string) string { return curlOutcome(t, u, p+"x", "http://"+s.http+"/topics") }, all("401")},
	}
	total, bad := 0, 0
	for _, c := range cells {
		for _, u := range matrixUsers {
			total++
			got := c.run(u.name, u.pass)
			if want := c.want[u.name]; got != want {
				bad++
				t.Errorf("%-40s %-7s got %q, want %q", c.op, u.name, got, want)
			}
		}
	}
	t.Logf("%d cells, %d wrong", total, bad)
}

// kReq sends req; a Kafka error franz-go derived before answering (a
// sharded request whose topic's metadata was refused) is returned as its
// code, with a nil response.
func kReq[R kmsg.Response](ctx context.Context, t *testing.T, cl *kgo.Client, req kmsg.Request) (R, int16) {
	t.Helper()
	var zero R
	resp, err := cl.Request(ctx, req)
	if err != nil {
		if c := errCode(err); c > 0 {
			return zero, c
		}
		t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp.(R), 0
}

func kProduce(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) int16 {
	t.Helper()
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
	return errCode(err)
}

// errCode is the Kafka error code of a client error (0 for nil, -1 for
// an error that is not a Kafka error code).
func errCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	return -1
}

func kFetch(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) int16 {
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.MaxBytes, req.MaxWaitMillis = 11, -1, 1<<20, 0
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	resp, code := kReq[*kmsg.FetchResponse](ctx, t, cl, req)
	if resp == nil {
		return code
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

func kListOffsets(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) int16 {
	req := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	req.Topics = append(req.Topics, lt)
	resp, code := kReq[*kmsg.ListOffsetsResponse](ctx, t, cl, req)
	if resp == nil {
		return code
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

func kMetadataTopic(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) int16 {
	req := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, mt)
	resp, code := kReq[*kmsg.MetadataResponse](ctx, t, cl, req)
	if resp == nil {
		return code
	}
	return resp.Topics[0].ErrorCode
}

func kMetadataAll(ctx context.Context, t *testing.T, cl *kgo.Client) []string {
	resp, code := kReq[*kmsg.MetadataResponse](ctx, t, cl, kmsg.NewPtrMetadataRequest())
	if resp == nil {
		t.Fatalf("metadata: code %d", code)
	}
	var out []string
	for _, tp := range resp.Topics {
		out = append(out, *tp.Topic)
	}
	return out
}

func kCreate(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) int16 {
	req := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = topic, 1, 1
	req.Topics = append(req.Topics, ct)
	resp, code := kReq[*kmsg.CreateTopicsResponse](ctx, t, cl, req)
	if resp == nil {
		return code
	}
	return resp.Topics[0].ErrorCode
}

func kDelete(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) int16 {
	req := kmsg.NewPtrDeleteTopicsRequest()
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, dt)
	req.TopicNames = []string{topic}
	resp, code := kReq[*kmsg.DeleteTopicsResponse](ctx, t, cl, req)
	if resp == nil {
		return code
	}
	return resp.Topics[0].ErrorCode
}

func kCreatePartitions(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) int16 {
	req := kmsg.NewPtrCreatePartitionsRequest()
	ct := kmsg.NewCreatePartitionsRequestTopic()
	ct.Topic, ct.Count = topic, 2
	req.Topics = append(req.Topics, ct)
	resp, code := kReq[*kmsg.CreatePartitionsResponse](ctx, t, cl, req)
	if resp == nil {
		return code
	}
	return resp.Topics[0].ErrorCode
}

func kAlterConfig(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) int16 {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	r := kmsg.NewIncrementalAlterConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Value = "retention.ms", kmsg.StringPtr("86400000")
	r.Configs = append(r.Configs, c)
	req.Resources = append(req.Resources, r)
	resp, code := kReq[*kmsg.IncrementalAlterConfigsResponse](ctx, t, cl, req)
	if resp == nil {
		return code
	}
	return resp.Resources[0].ErrorCode
}

func kDescribeConfigs(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) int16 {
	req := kmsg.NewPtrDescribeConfigsRequest()
	r := kmsg.NewDescribeConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	req.Resources = append(req.Resources, r)
	resp, code := kReq[*kmsg.DescribeConfigsResponse](ctx, t, cl, req)
	if resp == nil {
		return code
	}
	return resp.Resources[0].ErrorCode
}

func kDescribeCluster(ctx context.Context, t *testing.T, cl *kgo.Client) int16 {
	resp, code := kReq[*kmsg.DescribeClusterResponse](ctx, t, cl, kmsg.NewPtrDescribeClusterRequest())
	if resp == nil {
		return code
	}
	return resp.ErrorCode
}

func kFindCoordinator(ctx context.Context, t *testing.T, cl *kgo.Client, group string) int16 {
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey, req.CoordinatorKeys = group, []string{group}
	resp, code := kReq[*kmsg.FindCoordinatorResponse](ctx, t, cl, req)
	if resp == nil {
		return code
	}
	if len(resp.Coordinators) > 0 {
		return resp.Coordinators[0].ErrorCode
	}
	return resp.ErrorCode
}

func kCommit(ctx context.Context, t *testing.T, cl *kgo.Client, group, topic string) int16 {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = group, -1
	ct := kmsg.NewOffsetCommitRequestTopic()
	ct.Topic = topic
	cp := kmsg.NewOffsetCommitRequestTopicPartition()
	cp.Offset = 1
	ct.Partitions = append(ct.Partitions, cp)
	req.Topics = append(req.Topics, ct)
	resp, code := kReq[*kmsg.OffsetCommitResponse](ctx, t, cl, req)
	if resp == nil {
		return code
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

func kOffsetFetch(ctx context.Context, t *testing.T, cl *kgo.Client, group string) int16 {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 7
	req.Group = group
	resp, code := kReq[*kmsg.OffsetFetchResponse](ctx, t, cl, req)
	if resp == nil {
		return code
	}
	return resp.ErrorCode
}

func kJoin(ctx context.Context, t *testing.T, cl *kgo.Client, group string) int16 {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = 4
	req.Group, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis, req.ProtocolType = group, 6000, 6000, "consumer"
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", []byte{0, 0, 0, 0, 0, 0, 0, 0}
	req.Protocols = append(req.Protocols, p)
	resp, code := kReq[*kmsg.JoinGroupResponse](ctx, t, cl, req)
	if resp == nil {
		return code
	}
	if resp.ErrorCode == 79 { // MEMBER_ID_REQUIRED: the group accepted the join
		return 0
	}
	return resp.ErrorCode
}

// kcatOutcome runs kcat with SASL/PLAIN as user; "ok" or the first
// authorization message librdkafka printed.
func kcatOutcome(t *testing.T, broker, user, pass string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := append([]string{"-b", broker, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
		"-X", "sasl.username=" + user, "-X", "sasl.password=" + pass, "-X", "message.timeout.ms=10000"}, args...)
	cmd := exec.CommandContext(ctx, "kcat", all...)
	cmd.Stdin = strings.NewReader("v\n")
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "authorization failed") {
		return "Topic authorization failed"
	}
	if err != nil {
		return fmt.Sprintf("kcat: %v: %s", err, out)
	}
	return "ok"
}

// mqttPubOutcome publishes one QoS 1 message over MQTT 5 as user; "ok"
// when it was acknowledged and stored in logTopic, else the reason the
// PUBACK gave.
func mqttPubOutcome(ctx context.Context, t *testing.T, s *runnelServer, admin *kgo.Client, user, pass, mqttTopic, logTopic string) string {
	t.Helper()
	before := endOffset(ctx, t, admin, logTopic)
	host, port, _ := strings.Cut(s.mqtt, ":")
	out, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv5", "-u", user, "-P", pass,
		"-q", "1", "-t", mqttTopic, "-m", "v").CombinedOutput()
	after := endOffset(ctx, t, admin, logTopic)
	switch {
	case strings.Contains(string(out), "Not authorized") || strings.Contains(string(out), "not authorised"):
		if after != before {
			return "refused but stored"
		}
		return "Not authorized"
	case err != nil:
		return fmt.Sprintf("mosquitto_pub: %v: %s", err, out)
	case after != before+1:
		return fmt.Sprintf("acknowledged, log end %d → %d", before, after)
	}
	return "ok"
}

// mqttSubOutcome subscribes as user, has admin publish one message to
// pubTopic, and reports whether it was delivered.
func mqttSubOutcome(t *testing.T, s *runnelServer, user, pass, filter, pubTopic string) string {
	t.Helper()
	host, port, _ := strings.Cut(s.mqtt, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub := exec.CommandContext(ctx, "mosquitto_sub", "-h", host, "-p", port, "-V", "mqttv5", "-u", user, "-P", pass,
		"-q", "1", "-t", filter, "-C", "1", "-W", "3")
	var out strings.Builder
	sub.Stdout, sub.Stderr = &out, &out
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // subscribed
	if b, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "-u", "admin", "-P", "admin-pw", "-q", "1", "-t", pubTopic, "-m", "delivered").CombinedOutput(); err != nil {
		t.Fatalf("admin publish: %v: %s", err, b)
	}
	sub.Wait()
	if strings.Contains(out.String(), "delivered") {
		return "ok"
	}
	return "nothing delivered"
}

func endOffset(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	req.Topics = append(req.Topics, lt)
	resp, code := kReq[*kmsg.ListOffsetsResponse](ctx, t, cl, req)
	if resp == nil {
		t.Fatalf("list offsets %s: code %d", topic, code)
	}
	return resp.Topics[0].Partitions[0].Offset
}

// curlOutcome is the HTTP status curl got.
func curlOutcome(t *testing.T, user, pass string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", append([]string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", user + ":" + pass}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("curl: %v: %s", err, out)
	}
	return string(out)
}

func curlBody(t *testing.T, user, pass, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "curl", "-s", "-u", user+":"+pass, url).CombinedOutput()
	var names []string
	if json.Unmarshal(out, &names) != nil {
		return string(out)
	}
	return `"` + strings.Join(names, `","`) + `"`
}
