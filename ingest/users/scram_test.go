package users

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// exchange runs franz-go's SCRAM client against ScramServer.
func exchange(t *testing.T, mech string, st *Store, user, pass string) error {
	t.Helper()
	auth := scram.Auth{User: user, Pass: pass}
	m := auth.AsSha256Mechanism()
	if mech == ScramSHA512 {
		m = auth.AsSha512Mechanism()
	}
	sess, msg, err := m.Authenticate(context.Background(), "runnel:9092")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewScramServer(mech, func(u string) (Scram, bool) { return st.SCRAM(u, mech) })
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		resp, done, err := srv.Step(msg)
		if err != nil {
			return err
		}
		cdone, next, err := sess.Challenge(resp)
		if err != nil {
			t.Fatalf("client rejected the server's message %q: %v", resp, err)
		}
		if done {
			if !cdone {
				t.Fatal("server done, client not")
			}
			if srv.User() != user {
				t.Fatalf("user %q, want %q", srv.User(), user)
			}
			return nil
		}
		msg = next
	}
	t.Fatal("exchange did not end")
	return nil
}

func TestScramWithFranzGoClient(t *testing.T) {
	e, err := NewEntry("writer", "s3cret,=x")
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStore([]Entry{e}, map[string]string{"legacy": "old-pw"})
	if err != nil {
		t.Fatal(err)
	}
	for _, mech := range []string{ScramSHA256, ScramSHA512} {
		if err := exchange(t, mech, st, "writer", "s3cret,=x"); err != nil {
			t.Errorf("%s right password: %v", mech, err)
		}
		if err := exchange(t, mech, st, "legacy", "old-pw"); err != nil {
			t.Errorf("%s clear account: %v", mech, err)
		}
		if err := exchange(t, mech, st, "writer", "wrong"); !errors.Is(err, ErrScram) {
			t.Errorf("%s wrong password: %v, want ErrScram", mech, err)
		}
		if err := exchange(t, mech, st, "nobody", "s3cret,=x"); !errors.Is(err, ErrScram) {
			t.Errorf("%s unknown user: %v, want ErrScram", mech, err)
		}
	}
	if !st.CheckPassword("writer", []byte("s3cret,=x")) || !st.CheckPassword("writer", []byte("s3cret,=x")) {
		t.Error("CheckPassword refused the right password")
	}
	if st.CheckPassword("writer", []byte("wrong")) || st.CheckPassword("nobody", []byte("x")) || st.CheckPassword("legacy", []byte("x")) {
		t.Error("CheckPassword accepted a wrong password")
	}
}

func TestUsersFileRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "users.yaml")
	f, err := ReadFile(p)
	if err != nil || len(f.Users) != 0 {
		t.Fatalf("missing file: %v %v", f, err)
	}
	for _, n := range []string{"b", "a"} {
		e, err := NewEntry(n, "pw-"+n)
		if err != nil {
			t.Fatal(err)
		}
		f.Set(e)
	}
	if err := WriteFile(p, f); err != nil {
		t.Fatal(err)
	}
	g, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Users) != 2 || g.Users[0].Name != "a" {
		t.Fatalf("read back %+v", g.Users)
	}
	st, err := NewStore(g.Users, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := exchange(t, ScramSHA512, st, "b", "pw-b"); err != nil {
		t.Fatal(err)
	}
	if !g.Delete("a") || g.Delete("a") {
		t.Fatal("Delete")
	}
	if _, err := NewEntry("bad:name", "x"); err == nil {
		t.Fatal("a name with ':' accepted")
	}
}
