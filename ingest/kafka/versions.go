package kafka

import (
	"github.com/runnel/runnel/ingest/kafka/group"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// API keys served by the server itself (the consumer-group keys are
// ingest/kafka/group's). Never renumber: they are Kafka's.
const (
	keyProduce                 = 0
	keyFetch                   = 1
	keyListOffsets             = 2
	keyMetadata                = 3
	keyFindCoordinator         = 10
	keySASLHandshake           = 17
	keyApiVersions             = 18
	keyCreateTopics            = 19
	keyDeleteTopics            = 20
	keyInitProducerID          = 22
	keyOffsetForLeaderEpoch    = 23
	keyDescribeConfigs         = 32
	keyAlterConfigs            = 33
	keySASLAuthenticate        = 36
	keyCreatePartitions        = 37
	keyIncrementalAlterConfigs = 44
	keyDescribeCluster         = 60

	maxKey = 128 // keys at or above are never served (array bound)
)

// ownVersions are the [min, max] versions this package serves.
var ownVersions = map[int16][2]int16{
	keyProduce:                 {3, 12},
	keyFetch:                   {4, 12},
	keyListOffsets:             {1, 8},
	keyMetadata:                {0, 12},
	keyFindCoordinator:         {0, 6},
	keySASLHandshake:           {0, 1},
	keyApiVersions:             {0, 4},
	keyCreateTopics:            {2, 7},
	keyDeleteTopics:            {1, 6},
	keyInitProducerID:          {0, 5},
	keyDescribeConfigs:         {1, 4},
	keyAlterConfigs:            {0, 2},
	keySASLAuthenticate:        {0, 2},
	keyCreatePartitions:        {0, 3},
	keyIncrementalAlterConfigs: {0, 1},
	keyDescribeCluster:         {0, 1},
}

// epochVersions are served when the log implements log.LeaderEpochs.
var epochVersions = map[int16][2]int16{
	keyOffsetForLeaderEpoch: {0, 4},
}

// versionTable is what a Server serves: for each key, whether and which
// versions, plus the precomputed ApiVersions key list.
type versionTable struct {
	served [maxKey]bool
	rng    [maxKey][2]int16
	group  [maxKey]bool // forwarded to GroupHandler (or answered unavailable)
	keys   []kmsg.ApiVersionsResponseApiKey
}

func newVersionTable(g GroupHandler, epochs, acls bool) *versionTable {
	t := &versionTable{}
	add := func(k int16, r [2]int16, group bool) {
		if k < 0 || k >= maxKey || r[0] > r[1] || r[0] < 0 {
			return
		}
		// Never advertise what the server cannot decode.
		if req := newRequest(k); req == nil {
			return
		} else if r[1] > req.MaxVersion() {
			r[1] = req.MaxVersion()
		}
		t.served[k], t.rng[k], t.group[k] = true, r, group
	}
	// Without a handler the group APIs are answered
	// COORDINATOR_NOT_AVAILABLE, at the versions the coordinator serves
	// (its table is the only one).
	gv := group.Versions()
	if g != nil {
		gv = g.Versions()
	}
	for k, r := range gv {
		if _, own := ownVersions[k]; own {
			continue // the server keeps its own keys (FindCoordinator)
		}
		add(k, r, true)
	}
	for k, r := range ownVersions {
		add(k, r, false)
	}
	for k, r := range txnVersions {
		add(k, r, false)
	}
	if epochs {
		for k, r := range epochVersions {
			add(k, r, false)
		}
	}
	if acls {
		for k, r := range aclVersions {
			add(k, r, false)
		}
	}
	for k := int16(0); k < maxKey; k++ {
		if t.served[k] {
			ak := kmsg.NewApiVersionsResponseApiKey()
			ak.ApiKey, ak.MinVersion, ak.MaxVersion = k, t.rng[k][0], t.rng[k][1]
			t.keys = append(t.keys, ak)
		}
	}
	return t
}

// serves reports whether key at version is served.
func (t *versionTable) serves(key, version int16) bool {
	return key >= 0 && key < maxKey && t.served[key] && version >= t.rng[key][0] && version <= t.rng[key][1]
}

// newRequest returns an empty request of key, for the keys this package
// serves (ownVersions, epochVersions) and the consumer-group keys
// (group.Versions, marked "group"); nil for any other key. It names each
// request type on purpose, instead of kmsg.RequestForKey: that one names
// every request kmsg knows (about 90), so the linker keeps every request
// decoder and response encoder in the binary, several hundred KB of code
// for keys that are never decoded (an unserved key is answered from
// unsupportedAnswers).
func newRequest(key int16) kmsg.Request {
	switch key {
	case keyProduce:
		return kmsg.NewPtrProduceRequest()
	case keyDescribeACLs:
		return kmsg.NewPtrDescribeACLsRequest()
	case keyCreateACLs:
		return kmsg.NewPtrCreateACLsRequest()
	case keyDeleteACLs:
		return kmsg.NewPtrDeleteACLsRequest()
	case keyFetch:
		return kmsg.NewPtrFetchRequest()
	case keyListOffsets:
		return kmsg.NewPtrListOffsetsRequest()
	case keyMetadata:
		return kmsg.NewPtrMetadataRequest()
	case int16(kmsg.OffsetCommit): // group
		return kmsg.NewPtrOffsetCommitRequest()
	case int16(kmsg.OffsetFetch): // group
		return kmsg.NewPtrOffsetFetchRequest()
	case keyFindCoordinator:
		return kmsg.NewPtrFindCoordinatorRequest()
	case int16(kmsg.JoinGroup): // group
		return kmsg.NewPtrJoinGroupRequest()
	case int16(kmsg.Heartbeat): // group
		return kmsg.NewPtrHeartbeatRequest()
	case int16(kmsg.LeaveGroup): // group
		return kmsg.NewPtrLeaveGroupRequest()
	case int16(kmsg.SyncGroup): // group
		return kmsg.NewPtrSyncGroupRequest()
	case int16(kmsg.DescribeGroups): // group
		return kmsg.NewPtrDescribeGroupsRequest()
	case int16(kmsg.ListGroups): // group
		return kmsg.NewPtrListGroupsRequest()
	case keySASLHandshake:
		return kmsg.NewPtrSASLHandshakeRequest()
	case keyApiVersions:
		return kmsg.NewPtrApiVersionsRequest()
	case keyCreateTopics:
		return kmsg.NewPtrCreateTopicsRequest()
	case keyDeleteTopics:
		return kmsg.NewPtrDeleteTopicsRequest()
	case keyInitProducerID:
		return kmsg.NewPtrInitProducerIDRequest()
	case keyOffsetForLeaderEpoch:
		return kmsg.NewPtrOffsetForLeaderEpochRequest()
	case keyDescribeConfigs:
		return kmsg.NewPtrDescribeConfigsRequest()
	case keyAlterConfigs:
		return kmsg.NewPtrAlterConfigsRequest()
	case keySASLAuthenticate:
		return kmsg.NewPtrSASLAuthenticateRequest()
	case keyCreatePartitions:
		return kmsg.NewPtrCreatePartitionsRequest()
	case int16(kmsg.DeleteGroups): // group
		return kmsg.NewPtrDeleteGroupsRequest()
	case keyIncrementalAlterConfigs:
		return kmsg.NewPtrIncrementalAlterConfigsRequest()
	case int16(kmsg.OffsetDelete): // group
		return kmsg.NewPtrOffsetDeleteRequest()
	case keyDescribeCluster:
		return kmsg.NewPtrDescribeClusterRequest()
	case int16(kmsg.ConsumerGroupHeartbeat): // group
		return kmsg.NewPtrConsumerGroupHeartbeatRequest()
	case int16(kmsg.ConsumerGroupDescribe): // group
		return kmsg.NewPtrConsumerGroupDescribeRequest()
	}
	return newTxnRequest(key)
}
