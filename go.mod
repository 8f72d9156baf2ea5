module github.com/runnel/runnel

go 1.26.0

require (
	github.com/chromedp/cdproto v0.160.1
	github.com/chromedp/chromedp v0.23.1
	github.com/eclipse/paho.golang v0.23.0
	github.com/gorilla/websocket v1.5.3
	github.com/hashicorp/memberlist v0.7.0
	github.com/hashicorp/serf v0.11.0
	github.com/klauspost/compress v1.20.3
	github.com/mochi-mqtt/server/v2 v2.7.9
	github.com/pierrec/lz4/v4 v4.1.33
	github.com/shirou/gopsutil/v4 v4.26.10
	github.com/spf13/pflag v1.1.0
	github.com/twmb/franz-go v1.22.3
	github.com/twmb/franz-go/pkg/kfake v0.0.0-20260918054303-01f206a7e32c
	github.com/twmb/franz-go/pkg/kmsg v1.15.1
	go.etcd.io/bbolt v1.5.0
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/ebitengine/purego v0.11.2 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/go-ole/go-ole v1.2.6 // indirect
	github.com/google/btree v1.1.3 // indirect
	github.com/hashicorp/errwrap v1.1.0 // indirect
	github.com/hashicorp/go-immutable-radix v1.3.1 // indirect
	github.com/hashicorp/go-metrics v0.7.0 // indirect
	github.com/hashicorp/go-msgpack/v2 v2.1.5 // indirect
	github.com/hashicorp/go-multierror v1.1.1 // indirect
	github.com/hashicorp/golang-lru v1.0.2 // indirect
	github.com/power-devops/perfstat v0.0.0-20260805114148-88456608a4f6 // indirect
	github.com/rs/xid v1.4.0 // indirect
	github.com/sean-/seed v0.0.0-20170313163322-e2103e2c3529 // indirect
	github.com/yusufpapurcu/wmi v1.2.4 // indirect
	golang.org/x/sync v0.22.0 // indirect
)

// runnel carries a patched copy of mochi-mqtt v2.7.9 (ingest/mqtt/third_party/mochi,
// PATCHES.md there lists every change) for idle-connection memory.
replace github.com/mochi-mqtt/server/v2 => ./ingest/mqtt/third_party/mochi

// runnel carries patched copies of hashicorp/memberlist v0.7.0 and
// hashicorp/go-msgpack v2.1.5 (replicate/third_party, PATCHES.md there lists
// every change) for the binary's size: no miekg/dns, go-sockaddr or net/rpc.
replace github.com/hashicorp/memberlist => ./replicate/third_party/memberlist

replace github.com/hashicorp/go-msgpack/v2 => ./replicate/third_party/go-msgpack

// runnel carries a patched copy of twmb/franz-go v1.22.3 (sync/third_party/franz-go,
// PATCHES.md there lists every change) for the binary's size: no share groups,
// no KIP-848 group protocol (release builds: tag kgoomitkip848), no client-metrics push, no sharders for requests
// runnel never sends, and the standard library's gzip.
replace github.com/twmb/franz-go => ./sync/third_party/franz-go
