package replicate_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel/runnel/replicate/sitetest"
)

// A mirror carries a transactional partition byte for byte, markers
// included, and knows its transactions as the origin does: a
// read_committed consumer of the copy sees the committed records only,
// stops at the open transaction, and goes on once it commits.
func TestMirrorTransactions(t *testing.T) {
	t.Parallel()
	c := startSite(t, 2)
	n1, n2 := c.Node(1), c.Node(2)
	createTopicN(t, n1, "tx", 1, 2, nil)
	waitInSync(t, n1, "tx", 0, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := n1.Client(t, kgo.TransactionalID("site-txn"), kgo.DefaultProduceTopic("tx"))
	defer p.Close()
	txn := func(prefix string, n int, end kgo.TransactionEndTry, open bool) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%s%d", prefix, i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if !open {
			if err := p.EndTransaction(ctx, end); err != nil {
				t.Fatal(err)
			}
		}
	}
	txn("c", 3, kgo.TryCommit, false)
	txn("a", 2, kgo.TryAbort, false)
	txn("o", 1, kgo.TryCommit, true)
	read := func(want string) {
		t.Helper()
		var got []string
		waitFor(t, 30*time.Second, func() bool {
			cl := n2.Client(t, kgo.ConsumeTopics(n1.Name+".tx"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
			defer cl.Close()
			got = got[:0]
			for idle := 0; idle < 2; {
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				fs := cl.PollFetches(pctx)
				cancel()
				n := 0
				fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)); n++ })
				if n == 0 {
					idle++
				}
			}
			return strings.Join(got, ",") == want
		}, func() string { return fmt.Sprintf("read_committed of %s's copy: %v, want %s", n2.Name, got, want) })
	}
	read("c0,c1,c2")
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	read("c0,c1,c2,o0")
	// The copies raised the mirror's data dir to data format 2 (log/doc.go,
	// "Upgrades and downgrades"): ~format says readable from 2 (the u32
	// at byte 16), so a release of format 1 refuses it.
	for _, n := range []*sitetest.Node{n1, n2} {
		b, err := os.ReadFile(filepath.Join(n.DataDir, "~format"))
		if err != nil || len(b) != 24 || binary.BigEndian.Uint32(b[16:]) != 2 {
			t.Fatalf("%s's data dir holds transactions: ~format %x (%v), want one readable from data format 2", n.Name, b, err)
		}
	}
	rep := c.CheckUntil(t, 20*time.Second, sitetest.Check{Origins: []sitetest.Copy{{Node: n1, Topic: "tx"}}, Mirrors: mirrorsOn(n2)})
	if !rep.OK() {
		t.Fatal(rep)
	}
}
