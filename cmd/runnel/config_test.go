package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runnel/runnel/ingest/mqtt"
	"github.com/runnel/runnel/sync/forward"
)

func noEnv(string) (string, bool) { return "", false }

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "runnel.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaults(t *testing.T) {
	c, _, err := loadServeConfig(nil, noEnv, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./runnel-data" || c.Kafka.Addr != ":9092" || c.MQTT.Addr != ":1883" || c.HTTP.Addr != ":8080" ||
		c.Log.Fsync != "always" || !c.Kafka.AutoCreateTopics || c.Log.DefaultPartitions != 1 || c.Log.Retention != 168*time.Hour ||
		c.Kafka.MaxFrameBytes != 16<<20 || !c.Log.SharedSegments || c.ShutdownTimeout != 10*time.Second || c.MQTT.AllowAnonymous != nil {
		t.Fatalf("defaults: %+v", c)
	}
	if got := c.key("log.fsync").from; got != "default" {
		t.Errorf("from = %q", got)
	}
}

// TestConfigPrecedence: flag > environment > file > default, the same for
// a nested key (kafka.max-frame-bytes, given nested in the file), a key
// given by its flat name in the file (log.fsync as fsync:) and a top-level
// key (data-dir), and for lists.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "data-dir: /from/file\nfsync: never\nkafka:\n  max-frame-bytes: 1000\nmqtt:\n  routes: [\"a/#=x\", {filter: \"b/#\", topic: y}]\n")
	type want struct {
		dataDir  string
		fsync    string
		frame    int32
		routes   int
		from     string // of kafka.max-frame-bytes
		fromData string
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want want
	}{
		{"default", nil, nil, want{"./runnel-data", "always", 16 << 20, 0, "default", "default"}},
		{"file", []string{"--config", file}, nil, want{"/from/file", "never", 1000, 2, "file " + file + " line 4", "file " + file + " line 1"}},
		{"env over file", []string{"--config", file}, map[string]string{"RUNNEL_FSYNC": "interval", "RUNNEL_KAFKA_MAX_FRAME_BYTES": "2000", "RUNNEL_DATA_DIR": "/from/env", "RUNNEL_MQTT_ROUTE": "c/#=z"},
			want{"/from/env", "interval", 2000, 1, "RUNNEL_KAFKA_MAX_FRAME_BYTES", "RUNNEL_DATA_DIR"}},
		{"flag over env and file", []string{"--config", file, "--kafka-max-frame-bytes", "3000", "--data-dir", "/from/flag", "--fsync", "always", "--mqtt-route", "d/#=w", "--mqtt-route", "e/#=v", "--mqtt-route", "f/#=u"},
			map[string]string{"RUNNEL_FSYNC": "interval", "RUNNEL_KAFKA_MAX_FRAME_BYTES": "2000", "RUNNEL_DATA_DIR": "/from/env", "RUNNEL_MQTT_ROUTE": "c/#=z"},
			want{"/from/flag", "always", 3000, 3, "flag --kafka-max-frame-bytes", "flag --data-dir"}},
		{"config file from env", nil, map[string]string{"RUNNEL_CONFIG": file}, want{"/from/file", "never", 1000, 2, "file " + file + " line 4", "file " + file + " line 1"}},
		{"env without file", nil, map[string]string{"RUNNEL_KAFKA_MAX_FRAME_BYTES": "2000"}, want{"./runnel-data", "always", 2000, 0, "RUNNEL_KAFKA_MAX_FRAME_BYTES", "default"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := loadServeConfig(tc.args, envOf(tc.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			got := want{c.DataDir, c.Log.Fsync, c.Kafka.MaxFrameBytes, len(c.MQTT.Routes), c.key("kafka.max-frame-bytes").from, c.key("data-dir").from}
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestConfigEnvListItemOptions: in an environment variable's
// comma-separated list, an item's own options (`,key=`, `,acks=`,
// `,qos=`) stay with the item instead of becoming items of their own (a
// route "key" to topic "client", and the acks=all dropped).
func TestConfigEnvListItemOptions(t *testing.T) {
	c, _, err := loadServeConfig(nil, envOf(map[string]string{
		"RUNNEL_MQTT_ROUTE":   "sensors/#=telemetry,key=client,acks=all, plant/#=plant,acks=1",
		"RUNNEL_MQTT_PUBLISH": "commands=cmd,qos=1,alarms=alarm",
	}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	wantRoutes := []mqtt.Route{
		{Filter: "sensors/#", Topic: "telemetry", Key: mqtt.KeyClient, Acks: mqtt.AcksAll},
		{Filter: "plant/#", Topic: "plant", Acks: mqtt.AcksLocal},
	}
	if !reflect.DeepEqual(c.MQTT.Routes, wantRoutes) {
		t.Fatalf("routes %+v, want %+v", c.MQTT.Routes, wantRoutes)
	}
	wantPub := []mqtt.PublishRoute{{Topic: "commands", Prefix: "cmd", QoS: 1}, {Topic: "alarms", Prefix: "alarm"}}
	if !reflect.DeepEqual(c.MQTT.Publish, wantPub) {
		t.Fatalf("publish %+v, want %+v", c.MQTT.Publish, wantPub)
	}
	// A bad option value is an error, not a route of its own.
	if _, _, err := loadServeConfig(nil, envOf(map[string]string{"RUNNEL_MQTT_ROUTE": "a/#=t,key=device"}), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "RUNNEL_MQTT_ROUTE") {
		t.Fatalf("key=device: %v", err)
	}
}

// TestConfigErrorsNameTheKey: every bad value stops the load with one line
// that names the key's path and where the value came from.
func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		file string
		want string
	}{
		{"enum flag", []string{"--fsync", "sometimes"}, nil, "", `config: log.fsync (flag --fsync): "sometimes": want always, interval or never`},
		{"enum nested file", nil, nil, "log:\n  on-full: panic\n", `config: log.on-full (file FILE line 2): "panic": want reject or drop-oldest`},
		{"range env", nil, map[string]string{"RUNNEL_KAFKA_MAX_FRAME_BYTES": "0"}, "", "config: kafka.max-frame-bytes (RUNNEL_KAFKA_MAX_FRAME_BYTES): must be > 0, not 0"},
		{"range nested file", nil, nil, "kafka:\n  max-frame-bytes: -5\n", "config: kafka.max-frame-bytes (file FILE line 2): must be > 0, not -5"},
		{"not a number in file", nil, nil, "log:\n  default-partitions: many\n", `config: log.default-partitions (file FILE line 2): "many": want an integer`},
		{"not a duration in env", nil, map[string]string{"RUNNEL_RETENTION": "a week"}, "", `config: log.retention (RUNNEL_RETENTION): "a week": time: invalid duration`},
		{"bad flag value", []string{"--default-partitions", "x"}, nil, "", `config: log.default-partitions (flag --default-partitions): "x": want an integer`},
		{"bad bool flag", []string{"--mqtt-allow-anonymous=maybe"}, nil, "", `config: mqtt.allow-anonymous (flag --mqtt-allow-anonymous): "maybe": want true or false`},
		{"at least", []string{"--default-partitions", "0"}, nil, "", "config: log.default-partitions (flag --default-partitions): must be at least 1, not 0"},
		{"address", []string{"--kafka-addr", "nonsense"}, nil, "", `config: kafka.addr (flag --kafka-addr): "nonsense": want HOST:PORT`},
		{"port", nil, nil, "http:\n  addr: 127.0.0.1:99999\n", `config: http.addr (file FILE line 2): "127.0.0.1:99999": bad port "99999"`},
		{"kafka user", []string{"--kafka-user", "nopass"}, nil, "", "want NAME:PASSWORD"},
		{"kafka user in file", nil, nil, "kafka:\n  users: [nopass]\n", "config: kafka.users (file FILE line 2): [0]: want NAME:PASSWORD"},
		{"tls pair", []string{"--kafka-tls-cert", "c.pem"}, nil, "", "config: kafka.tls.cert-file (flag --kafka-tls-cert): needs kafka.tls.key-file too"},
		{"tls addr without cert", nil, nil, "mqtt:\n  tls:\n    addr: 127.0.0.1:8883\n", "config: mqtt.tls.addr (file FILE line 3): needs mqtt.tls.cert-file"},
		{"mqtt route", []string{"--mqtt-route", "a/#"}, nil, "", `config: mqtt.routes (flag --mqtt-route): `},
		{"mqtt route mapping", nil, nil, "mqtt:\n  routes:\n    - {filter: \"a/#\", topic: \"bad topic\"}\n", "config: mqtt.routes (file FILE line 2): [0]: mqtt: invalid route: bad log topic"},
		{"mqtt users", nil, nil, "mqtt:\n  users:\n    - {name: a, password-hash: plain}\n", `config: mqtt.users (file FILE line 2): [0]: user "a": password-hash is not a bcrypt hash`},
		{"mqtt acl", nil, nil, "mqtt:\n  acl:\n    - {topic: x, access: all}\n", `config: mqtt.acl (file FILE line 2): [0]: mqtt: invalid ACL rule: access "all"`},
		{"forward without upstream", []string{"--forward", "x"}, nil, "", "config: forward (flag --forward): needs upstream-kafka"},
		{"upstream", nil, nil, "upstreams:\n  central: {kind: kafka}\n", "config: upstreams (file FILE line 1): central: forward: invalid options: kafka upstream needs brokers"},
		{"mqtt upstream scheme", nil, nil, "upstreams:\n  c: {kind: mqtt, url: \"http://x\"}\n", `config: upstreams (file FILE line 1): c: forward: invalid options: mqtt url "http://x": scheme must be mqtt, tcp, mqtts, ssl or tls`},
		{"route target placeholder", nil, nil, "upstreams:\n  central: {brokers: [\"k:9092\"]}\nroutes:\n  - {name: r, upstream: central, topics: [a], target: \"{sight}.{topic}\"}\n", `config: routes (file FILE line 3): forward: invalid options: route "r": target "{sight}.{topic}": unknown placeholder {sight}`},
		{"route key on kafka", nil, nil, "upstreams:\n  central: {brokers: [\"k:9092\"]}\nroutes:\n  - {name: r, upstream: central, topics: [a], target: \"{key}\"}\n", `{key} is for MQTT upstreams only`},
		{"route names twice", nil, nil, "upstreams:\n  central: {brokers: [\"k:9092\"]}\nroutes:\n  - {name: r, upstream: central, topics: [a]}\n  - {name: r, upstream: central, topics: [b]}\n", `config: routes (file FILE line 3): forward: invalid options: duplicate route name "r"`},
		{"route to unknown upstream", nil, nil, "upstreams:\n  central: {brokers: [\"k:9092\"]}\nroutes:\n  - {name: r, upstream: centrl, topics: [a]}\n", `config: routes (file FILE line 3): [0] (r): unknown upstream "centrl"`},
		{"default upstream twice", []string{"--upstream-kafka", "k:9092"}, nil, "upstreams:\n  default: {brokers: [\"k:9092\"]}\n", `config: upstream-kafka (flag --upstream-kafka): upstreams has an entry named "default" too`},
		{"yaml type", nil, nil, "upstreams:\n  central: {brokers: 5}\n", "config: upstreams (file FILE line 1): yaml: unmarshal errors: line 2: cannot unmarshal"},
		{"branch not a mapping", nil, nil, "kafka: 9092\n", "config: kafka (file FILE line 1): want a mapping of keys"},
		{"list where a value goes", nil, nil, "data-dir: [a, b]\n", "config: data-dir (file FILE line 1): line 1: want a single value"},
		{"file only key as flag", []string{"--upstreams", "x"}, nil, "", "unknown flag: --upstreams"},
		{"config inside the file", nil, nil, "config: other.yaml\n", `unknown key "config"`},
		{"missing file", []string{"--config", "/nonexistent/runnel.yaml"}, nil, "", "config file: open /nonexistent/runnel.yaml"},
		{"unexpected argument", []string{"extra"}, nil, "", `unexpected argument "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			want := tc.want
			if tc.file != "" {
				f := writeFile(t, tc.file)
				args = append([]string{"--config", f}, args...)
				want = strings.ReplaceAll(want, "FILE", f)
			}
			_, _, err := loadServeConfig(args, envOf(tc.env), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

// TestConfigUnknownKeysRefused: a key the tree lacks is refused with its
// full path and line, at every depth, including inside structured keys.
func TestConfigUnknownKeysRefused(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"fsink: always\n", `line 1: unknown key "fsink"`},
		{"kafka:\n  max-frame-byte: 5\n", `line 2: unknown key "kafka.max-frame-byte"`},
		{"kafka:\n  tls:\n    cert: x\n", `line 3: unknown key "kafka.tls.cert"`},
		{"kafka:\n  kafka-addr: x\n", `line 2: unknown key "kafka.kafka-addr"`},
		{"log:\n  level: debug\n", `line 2: unknown key "log.level"`},
		{"mqtt:\n  users:\n    - {name: a, password: x}\n", `line 3: unknown key "mqtt.users[0].password"`},
		{"mqtt:\n  routes:\n    - {filter: a, topic: b, qos: 1}\n", `line 3: unknown key "mqtt.routes[0].qos"`},
		{"upstreams:\n  central:\n    brokers: [a]\n    tls: {enable: true}\n", `line 4: unknown key "upstreams.central.tls.enable"`},
		{"routes:\n  - name: r\n    topic: [a]\n", `line 3: unknown key "routes[0].topic"`},
	} {
		f := writeFile(t, tc.file)
		_, _, err := loadServeConfig([]string{"--config", f}, noEnv, &bytes.Buffer{})
		want := "config file " + f + " " + tc.want
		if err == nil || err.Error() != want {
			t.Errorf("%q:\n err  %v\n want %s", tc.file, err, want)
		}
	}
}

// TestConfigKeySetTwiceInFile: the flat and the nested form of one key in
// one file is an error, not a silent choice.
func TestConfigKeySetTwiceInFile(t *testing.T) {
	f := writeFile(t, "mqtt-allow-anonymous: false\nmqtt:\n  allow-anonymous: true\n")
	_, _, err := loadServeConfig([]string{"--config", f}, noEnv, &bytes.Buffer{})
	want := "config: mqtt.allow-anonymous set twice in the config file (file " + f + " line 1 and line 3)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

// TestConfigMQTTDerivedDefaults: allow-anonymous defaults to "no users
// configured" and require-client-cert to "a client CA is set"; any source
// that sets them wins by the one precedence rule.
func TestConfigMQTTDerivedDefaults(t *testing.T) {
	users := "mqtt:\n  users:\n    - {name: a, password-hash: \"$2y$10$x\"}\n"
	for _, tc := range []struct {
		name        string
		file        string
		args        []string
		env         map[string]string
		anon, reqCA bool
	}{
		{"zero config", "", nil, nil, true, false},
		{"users", users, nil, nil, false, false},
		{"users, flag allows", users, []string{"--mqtt-allow-anonymous"}, nil, true, false},
		{"users, env allows", users, nil, map[string]string{"RUNNEL_MQTT_ALLOW_ANONYMOUS": "true"}, true, false},
		{"no users, flat file key refuses", "mqtt-allow-anonymous: false\n", nil, nil, false, false},
		{"file refuses, flag allows", "mqtt:\n  allow-anonymous: false\n", []string{"--mqtt-allow-anonymous=true"}, nil, true, false},
		{"client CA flag", "", []string{"--mqtt-tls-client-ca", "ca.pem"}, nil, true, true},
		{"client CA nested", "mqtt:\n  tls: {client-ca-file: ca.pem}\n", nil, nil, true, true},
		{"client CA, certificate optional", "mqtt:\n  tls: {client-ca-file: ca.pem, require-client-cert: false}\n", nil, nil, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeFile(t, tc.file)}, args...)
			}
			c, _, err := loadServeConfig(args, envOf(tc.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			o := c.mqttOptions(nil, nil)
			if o.AllowAnonymous != tc.anon || o.TLS.RequireClientCert != tc.reqCA {
				t.Fatalf("allow-anonymous %v require-client-cert %v, want %v %v", o.AllowAnonymous, o.TLS.RequireClientCert, tc.anon, tc.reqCA)
			}
		})
	}
}

// uncommentExample turns the commented-out keys of an example file on.
var commentedKey = regexp.MustCompile(`(?m)^# ( *[a-z-]+:| *- )`)

// TestConfigExistingFilesLoad: the shipped example (as it is, and with
// every commented-out key turned on), the README's YAML and its serve
// command line load and build the Options they always meant.
func TestConfigExistingFilesLoad(t *testing.T) {
	example, err := os.ReadFile("../../systemd/runnel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("systemd/runnel.yaml", func(t *testing.T) {
		c, _, err := loadServeConfig([]string{"--config", writeFile(t, string(example))}, noEnv, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if c.DataDir != "/var/lib/runnel" || c.Log.DefaultPartitions != 4 || c.Log.MinFreeBytes != 256<<20 || c.Log.Retention != 168*time.Hour ||
			c.Log.OnFull != "reject" || c.Kafka.Addr != ":9092" || c.HTTP.Addr != ":8080" {
			t.Fatalf("%+v", c)
		}
		o := c.mqttOptions(nil, nil)
		wantRoutes := []mqtt.Route{{Filter: "sensors/#", Topic: "telemetry"}, {Filter: "alarms/#", Topic: "alarms"}}
		if o.AllowAnonymous || o.Addr != ":1883" || !reflect.DeepEqual(o.Routes, wantRoutes) {
			t.Fatalf("mqtt options %+v", o)
		}
	})
	t.Run("systemd/runnel.yaml, every example key on", func(t *testing.T) {
		on := commentedKey.ReplaceAllString(string(example), "$1")
		c, _, err := loadServeConfig([]string{"--config", writeFile(t, on)}, noEnv, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%v\n%s", err, on)
		}
		if c.NodeID != "gw-hall-3" || c.Site != "plant-berlin" || len(c.MQTT.Users) != 1 || len(c.MQTT.ACL) != 2 {
			t.Fatalf("%+v", c)
		}
		fo := c.forwardOptions(nil, nil, "n1")
		central, cloud := fo.Upstreams["central"], fo.Upstreams["cloud"]
		if len(fo.Upstreams) != 3 || central.SASL.Mechanism != "SCRAM-SHA-512" || !central.TLS.On() || central.BandwidthBytesPerSec != 125000 ||
			cloud.Kind != "mqtt" || cloud.URL != "mqtts://broker.example.com:8883" || !cloud.TLS.On() ||
			!reflect.DeepEqual(fo.Upstreams[forward.DefaultUpstream].Brokers, []string{"kafka-central.example.com:9093"}) {
			t.Fatalf("upstreams %+v", fo.Upstreams)
		}
		var names []string
		for _, r := range fo.Routes {
			names = append(names, r.Name+"→"+r.Target)
		}
		if want := []string{"alarms→{site}.alarms", "telemetry→{site}.{topic}", "devices-to-cloud→{site}/{key}", "forward-telemetry→plant-berlin.{topic}", "forward-alarms→plant-berlin.{topic}"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("routes %v, want %v", names, want)
		}
	})

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("README has no yaml example")
	}
	nested := 0
	for i, b := range blocks {
		if bytes.HasPrefix(b[1], []byte("data-dir:")) {
			nested++
		}
		t.Run("README yaml "+string(rune('0'+i)), func(t *testing.T) {
			c, _, err := loadServeConfig([]string{"--config", writeFile(t, string(b[1]))}, noEnv, &bytes.Buffer{})
			if err != nil {
				t.Fatalf("%v\n%s", err, b[1])
			}
			// The nested example (the one that sets the data dir) says
			// what systemd/runnel.yaml says flat.
			if bytes.HasPrefix(b[1], []byte("data-dir:")) {
				flat, _, err := loadServeConfig([]string{"--config", writeFile(t, string(example))}, noEnv, &bytes.Buffer{})
				if err != nil {
					t.Fatal(err)
				}
				if c.DataDir != flat.DataDir || c.Log != flat.Log || *c.MQTT.AllowAnonymous != *flat.MQTT.AllowAnonymous || len(c.MQTT.Routes) != 2 {
					t.Errorf("nested example differs from systemd/runnel.yaml: %+v", c)
				}
			}
		})
	}
	if nested != 1 {
		t.Fatalf("README has %d nested config examples (starting with data-dir:), want 1", nested)
	}
	cmds := regexp.MustCompile(`(?m)^bin/runnel serve (.*)$`).FindAllSubmatch(readme, -1)
	if len(cmds) == 0 {
		t.Fatal("README has no serve command line")
	}
	for _, m := range cmds {
		args := strings.Fields(strings.ReplaceAll(string(m[1]), "'", ""))
		c, _, err := loadServeConfig(args, noEnv, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%s: %v", m[0], err)
		}
		if fo := c.forwardOptions(nil, nil, "n1"); len(fo.Routes) != 2 || fo.Routes[0].Target != "site7.{topic}" {
			t.Fatalf("%s: routes %+v", m[0], fo.Routes)
		}
	}
}

// TestConfigTableCoversTree: every leaf of the tree is bound to exactly one
// key, names do not collide, and every key is documented.
func TestConfigTableCoversTree(t *testing.T) {
	c := newServeConfig()
	bound := map[uintptr]string{}
	paths, flags := map[string]bool{}, map[string]bool{}
	for _, k := range c.table {
		p := reflect.ValueOf(k.v).Elem().Field(0).Pointer()
		if prev, dup := bound[p]; dup {
			t.Errorf("%s and %s bind the same field", prev, k.path)
		}
		bound[p] = k.path
		if paths[k.path] || k.flag != "" && flags[k.flag] {
			t.Errorf("%s: path or flag %q used twice", k.path, k.flag)
		}
		paths[k.path], flags[k.flag] = true, k.flag != ""
		if k.doc == "" {
			t.Errorf("%s: no doc", k.path)
		}
		if k.flag == "" && k.def != "" {
			t.Errorf("%s: a file-only key has no default", k.path)
		}
	}
	for _, k := range c.table {
		// A flat name is a top-level alias: it must not be another key's
		// path or an inner node of the tree.
		for _, o := range c.table {
			if k.flag != "" && o != k && (o.path == k.flag || strings.HasPrefix(o.path, k.flag+".")) {
				t.Errorf("flat name %q of %s collides with %s", k.flag, k.path, o.path)
			}
		}
	}
	var walk func(v reflect.Value, at string)
	walk = func(v reflect.Value, at string) {
		for i := 0; i < v.NumField(); i++ {
			f, sf := v.Field(i), v.Type().Field(i)
			if sf.Name == "table" {
				continue
			}
			if f.Kind() == reflect.Struct {
				walk(f, at+sf.Name+".")
				continue
			}
			if _, ok := bound[f.Addr().Pointer()]; !ok {
				t.Errorf("tree field %s%s has no key", at, sf.Name)
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
}
