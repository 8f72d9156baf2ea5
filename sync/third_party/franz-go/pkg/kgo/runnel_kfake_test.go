package kgo_test

// runnel: a test of runnel's changes to this copy (PATCHES.md) that needs
// kfake, which imports kgo (hence package kgo_test). It runs in
// test-upstream.sh.

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Every request whose sharder the copy leaves out is sent whole to one
// broker and answered: a one-broker kfake cluster answers each.
func TestRunnelUnshardedRequestsSentWhole(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{"g1", "g2"}
	ic := kmsg.NewPtrIncrementalAlterConfigsRequest()
	r := kmsg.NewIncrementalAlterConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, "no-such-topic"
	ic.Resources = append(ic.Resources, r)
	for _, req := range []kmsg.Request{
		dg,
		kmsg.NewPtrListGroupsRequest(),
		ic,
		kmsg.NewPtrListTransactionsRequest(),
	} {
		resp, err := cl.Request(ctx, req)
		if err != nil {
			t.Errorf("key %d: %v", req.Key(), err)
			continue
		}
		if resp.Key() != req.Key() {
			t.Errorf("key %d: answered with key %d", req.Key(), resp.Key())
		}
	}
	if resp, err := cl.Request(ctx, dg); err == nil {
		if n := len(resp.(*kmsg.DescribeGroupsResponse).Groups); n != 2 {
			t.Errorf("DescribeGroups of 2 groups answered for %d", n)
		}
	}
}
