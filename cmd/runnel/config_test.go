package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func noEnv(string) (string, bool) { return "", false }

func TestConfigDefaults(t *testing.T) {
	c, _, err := loadServeConfig(nil, noEnv, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./runnel-data" || c.KafkaAddr != ":9092" || c.MQTTAddr != ":1883" || c.HTTPAddr != ":8080" || c.Fsync != "always" || !c.AutoCreateTopics || c.DefaultPartitions != 1 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "r.yaml")
	os.WriteFile(file, []byte("data-dir: /from/file\nfsync: never\ndefault-partitions: 3\nmqtt-route:\n  - a/#=x\n  - b/#=y\n"), 0o644)
	env := map[string]string{"RUNNEL_FSYNC": "interval", "RUNNEL_KAFKA_ADDR": "127.0.0.1:1"}
	c, _, err := loadServeConfig([]string{"--config", file, "--kafka-addr", "127.0.0.1:2"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/from/file" || c.Fsync != "interval" || c.KafkaAddr != "127.0.0.1:2" || c.DefaultPartitions != 3 || len(c.MQTTRoutes) != 2 || c.MQTTRoutes[1] != "b/#=y" {
		t.Fatalf("got %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("data-dir: x\nno-such-key: 1\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--fsync", "sometimes"}, "--fsync"},
		{[]string{"--kafka-addr", "nonsense"}, "--kafka-addr"},
		{[]string{"--kafka-addr", "127.0.0.1:99999"}, "bad port"},
		{[]string{"--default-partitions", "0"}, "--default-partitions"},
		{[]string{"--config", bad}, `unknown key "no-such-key"`},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, "config file"},
		{[]string{"--forward", "x"}, "--upstream-kafka"},
		{[]string{"--bogus"}, "unknown flag"},
	} {
		_, _, err := loadServeConfig(tc.args, noEnv, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
}

// TestREADMEListsEveryFlag keeps the configuration reference true.
func TestREADMEListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	fs := newServeFlags(&serveConfig{})
	fs.VisitAll(func(f *pflag.Flag) {
		if !bytes.Contains(readme, []byte("`"+f.Name+"`")) {
			t.Errorf("README configuration reference lacks `%s`", f.Name)
		}
	})
}
