package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/runnel/runnel/ingest/users"
)

// TestSASLScram: SCRAM-SHA-256 and SCRAM-SHA-512 with franz-go's client,
// for an account of the users file and one given in clear (SASLPlain); a
// wrong password is refused and counted.
func TestSASLScram(t *testing.T) {
	e, err := users.NewEntry("edge", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	st, err := users.NewStore([]users.Entry{e}, map[string]string{"old": "clear-pw"})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, openLog(t, ""), func(o *Options) { o.Users = st })
	ctx := testCtx(t, 30*time.Second)
	for _, c := range []struct {
		name string
		mech sasl.Mechanism
		ok   bool
	}{
		{"sha256", scram.Auth{User: "edge", Pass: "s3cret"}.AsSha256Mechanism(), true},
		{"sha512", scram.Auth{User: "edge", Pass: "s3cret"}.AsSha512Mechanism(), true},
		{"clear account", scram.Auth{User: "old", Pass: "clear-pw"}.AsSha512Mechanism(), true},
		{"wrong password", scram.Auth{User: "edge", Pass: "nope"}.AsSha256Mechanism(), false},
		{"unknown user", scram.Auth{User: "who", Pass: "s3cret"}.AsSha256Mechanism(), false},
	} {
		cl := newClient(t, ts.addr, kgo.SASL(c.mech), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second),
			kgo.DefaultProduceTopic("scram"), kgo.AllowAutoTopicCreation())
		_, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
		if (err == nil) != c.ok {
			t.Errorf("%s: metadata err %v, want ok=%v", c.name, err, c.ok)
		}
		if c.ok {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(c.name)}).FirstErr(); err != nil {
				t.Errorf("%s: produce: %v", c.name, err)
			}
		}
	}
	if n := ts.Stats().AuthFailures; n < 2 {
		t.Errorf("AuthFailures = %d, want >= 2", n)
	}
}

// TestFailedAuthBackoff: failures in a row from one address are answered
// later and later (at once, then 100 ms, 200 ms, 400 ms, …); a success
// starts over.
func TestFailedAuthBackoff(t *testing.T) {
	st, err := users.NewStore(nil, map[string]string{"edge": "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, openLog(t, ""), func(o *Options) { o.Users = st })
	ctx := testCtx(t, 30*time.Second)
	try := func(pass string) (time.Duration, error) {
		cl := newClient(t, ts.addr, kgo.SASL(scram.Auth{User: "edge", Pass: pass}.AsSha256Mechanism()), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
		defer cl.Close()
		start := time.Now()
		_, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
		return time.Since(start), err
	}
	var took time.Duration
	for i := range 5 {
		if took, err = try("wrong"); err == nil {
			t.Fatalf("attempt %d: wrong password accepted", i)
		}
	}
	if took < 800*time.Millisecond {
		t.Errorf("5th failure in a row answered after %v, want at least 800ms", took)
	}
	if _, err := try("s3cret"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if took, err = try("wrong"); err == nil || took >= 800*time.Millisecond {
		t.Errorf("first failure after a success: %v after %v, want a refusal within 800ms", err, took)
	}
}
