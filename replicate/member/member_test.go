package member

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestValidNodeID(t *testing.T) {
	for id, ok := range map[string]bool{"a": true, "runnel-0a1b2c": true, "line_3": true, "": false, "a.b": false, "a b": false, string(make([]byte, 65)): false} {
		if err := ValidNodeID(id); (err == nil) != ok {
			t.Errorf("ValidNodeID(%q) = %v, want ok=%v", id, err, ok)
		}
	}
}

func TestOptionsRefuseClearGossipOffLoopback(t *testing.T) {
	base := Options{NodeID: "a", KafkaAddr: ":9092"}
	for _, c := range []struct {
		bind     string
		keys     [][]byte
		insecure bool
		want     error
	}{
		{"127.0.0.1:7946", nil, false, nil},
		{"localhost:7946", nil, false, nil},
		{"0.0.0.0:7946", nil, false, ErrInsecure},
		{":7946", nil, false, ErrInsecure},
		{"10.1.2.3:7946", nil, false, ErrInsecure},
		{"10.1.2.3:7946", nil, true, nil},
		{"10.1.2.3:7946", [][]byte{make([]byte, 32)}, false, nil},
		{"10.1.2.3:7946", [][]byte{make([]byte, 7)}, false, ErrInvalidOptions},
	} {
		o := base
		o.BindAddr, o.Keys, o.Insecure = c.bind, c.keys, c.insecure
		err := o.Validate()
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("bind %s keys %d insecure %v: %v, want %v", c.bind, len(c.keys), c.insecure, err, c.want)
		}
	}
}

func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	os.WriteFile(p, []byte("# site key\n\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nAAAAAAAAAAAAAAAAAAAAAA==\n"), 0o600)
	keys, err := ReadKeyFile(p)
	if err != nil || len(keys) != 2 || len(keys[0]) != 32 || len(keys[1]) != 16 {
		t.Fatalf("ReadKeyFile: %d keys, %v", len(keys), err)
	}
	os.WriteFile(p, []byte("AAAA\n"), 0o600)
	if _, err := ReadKeyFile(p); err == nil {
		t.Fatal("a 3-byte key was accepted")
	}
	os.WriteFile(p, []byte("# nothing\n"), 0o600)
	if _, err := ReadKeyFile(p); err == nil {
		t.Fatal("a file without a key was accepted")
	}
}

func TestBrokerIDStable(t *testing.T) {
	// Every box computes the same id for a node id (never change: peers
	// of different versions must agree).
	if got := BrokerID("a"); got != BrokerID("a") || got < 0 {
		t.Fatalf("BrokerID(a) = %d", got)
	}
	if BrokerID("a") == BrokerID("b") {
		t.Fatal("a and b share a broker id")
	}
}
