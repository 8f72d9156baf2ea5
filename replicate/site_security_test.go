package replicate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/runnel/runnel/ingest/users"
	"github.com/runnel/runnel/replicate/sitetest"
)

// Peers with credentials required and access rules: they fetch copies
// with the site credential (replication.peer-user, SCRAM-SHA-512) and
// the copy appears on the other box (without the credential's rights it
// never does); that credential has exactly mirroring's rights: it reads
// every topic, and it may neither produce nor create topics.
func TestPeersAuthenticateWithSiteCredential(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	uf := filepath.Join(dir, "users.yaml")
	f := &users.File{}
	for _, u := range [][2]string{{"admin", "admin-pw"}, {"site", "site-pw"}} {
		e, err := users.NewEntry(u[0], u[1])
		if err != nil {
			t.Fatal(err)
		}
		f.Set(e)
	}
	if err := users.WriteFile(uf, f); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "site.pass")
	cfg := filepath.Join(dir, "runnel.yaml")
	if err := os.WriteFile(pw, []byte("site-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("access:\n  superusers: [admin]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startSite(t, 2, "--config", cfg, "--users-file", uf, "--peer-user", "site", "--peer-password-file", pw, "--allow-remote-anonymous=false")
	n1, n2 := c.Node(1), c.Node(2)
	as := func(n *sitetest.Node, user, pass string, opts ...kgo.Opt) *kgo.Client {
		return n.Client(t, append([]kgo.Opt{kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()), kgo.RequestRetries(2)}, opts...)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	admin := as(n1, "admin", "admin-pw")
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "t", 1, 2
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, admin)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create t: %v %v", err, resp)
	}
	prod := as(n1, "admin", "admin-pw", kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("t"))
	deadline := time.Now().Add(40 * time.Second)
	for {
		err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acks=all produce never acknowledged (the peer's copy is not in sync): %v\n--- n2 ---\n%s", err, n2.LogTail(3000))
		}
		time.Sleep(300 * time.Millisecond)
	}
	waitFor(t, 20*time.Second, func() bool {
		_, end := offsetsAs(t, n2, "n1.t")
		return end >= 1
	}, func() string { return "n2 holds no copy of n1's t" })

	// The site credential reads, and does nothing else.
	site := as(n1, "site", "site-pw", kgo.DefaultProduceTopic("t"), kgo.RecordRetries(1))
	if err := site.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("site credential produce: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	creq := kmsg.NewPtrCreateTopicsRequest()
	crt := kmsg.NewCreateTopicsRequestTopic()
	crt.Topic, crt.NumPartitions, crt.ReplicationFactor = "other", 1, 1
	creq.Topics = append(creq.Topics, crt)
	if cresp, err := creq.RequestWith(ctx, site); err != nil || cresp.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("site credential create topic: %v %+v, want TOPIC_AUTHORIZATION_FAILED", err, cresp)
	}
}

// offsetsAs reads topic/0's start and end from n as the admin.
func offsetsAs(t *testing.T, n *sitetest.Node, topic string) (start, end int64) {
	t.Helper()
	cl := n.Client(t, kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha512Mechanism()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, ts := range []int64{-2, -1} {
		req := kmsg.NewPtrListOffsetsRequest()
		lt := kmsg.NewListOffsetsRequestTopic()
		lt.Topic = topic
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Timestamp = ts
		lt.Partitions = append(lt.Partitions, lp)
		req.Topics = append(req.Topics, lt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Topics) == 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			return -1, -1
		}
		if i == 0 {
			start = resp.Topics[0].Partitions[0].Offset
		} else {
			end = resp.Topics[0].Partitions[0].Offset
		}
	}
	return start, end
}

// Without users and without replication.peer-user, peers authenticate
// with the credential derived from the gossip key, which only the site's
// boxes hold; anonymous remote clients (the test's, from the bridge) get
// nothing, and the copy is made all the same.
func TestPeersDerivedCredential(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("site test: skipped with -short")
	}
	key := siteKey(t)
	// Kafka on every address of the node's namespace, loopback included,
	// so that a client inside it is a loopback client.
	c := sitetest.Start(t, sitetest.Options{Nodes: 2, Args: func(nd *sitetest.Node, all []*sitetest.Node) []string {
		return append(siteArgs(key, nd, all), "--kafka-addr", ":9092", "--allow-remote-anonymous=false")
	}})
	n1, n2 := c.Node(1), c.Node(2)
	waitAlive(t, n1, 2)
	waitAlive(t, n2, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	anon := n1.Client(t, kgo.DefaultProduceTopic("t"), kgo.AllowAutoTopicCreation(), kgo.RecordRetries(1))
	if err := anon.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("remote anonymous produce: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	// A local client (inside n1's namespace) produces; n2 copies it.
	out, err := n1.Command(ctx, "sh", "-c", "echo local | kcat -P -b 127.0.0.1:9092 -t t -X message.timeout.ms=10000").CombinedOutput()
	if err != nil {
		t.Fatalf("local kcat: %v: %s", err, out)
	}
	waitFor(t, 30*time.Second, func() bool {
		out, _ := n2.Command(ctx, "kcat", "-C", "-b", "127.0.0.1:9092", "-t", "n1.t", "-e", "-q", "-f", "%s\\n").CombinedOutput()
		return strings.Contains(string(out), "local")
	}, func() string { return "n2 holds no copy of n1's t\n--- n2 ---\n" + n2.LogTail(3000) })
}
