package kafka

import "github.com/twmb/franz-go/pkg/kmsg"

// API keys served by the server itself. Never renumber: they are Kafka's.
const (
	keyProduce                 = 0
	keyFetch                   = 1
	keyListOffsets             = 2
	keyMetadata                = 3
	keyOffsetCommit            = 8
	keyOffsetFetch             = 9
	keyFindCoordinator         = 10
	keyJoinGroup               = 11
	keyHeartbeat               = 12
	keyLeaveGroup              = 13
	keySyncGroup               = 14
	keyDescribeGroups          = 15
	keyListGroups              = 16
	keySASLHandshake           = 17
	keyApiVersions             = 18
	keyCreateTopics            = 19
	keyDeleteTopics            = 20
	keyInitProducerID          = 22
	keyDescribeConfigs         = 32
	keyAlterConfigs            = 33
	keySASLAuthenticate        = 36
	keyCreatePartitions        = 37
	keyDeleteGroups            = 42
	keyIncrementalAlterConfigs = 44
	keyOffsetDelete            = 47
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

// groupKeys are answered COORDINATOR_NOT_AVAILABLE when Options.Groups is
// nil, at these versions.
var groupKeys = map[int16][2]int16{
	keyOffsetCommit:   {2, 9},
	keyOffsetFetch:    {1, 9},
	keyJoinGroup:      {2, 9},
	keyHeartbeat:      {0, 4},
	keyLeaveGroup:     {0, 5},
	keySyncGroup:      {0, 5},
	keyDescribeGroups: {0, 5},
	keyListGroups:     {0, 5},
	keyDeleteGroups:   {0, 2},
	keyOffsetDelete:   {0, 0},
}

// versionTable is what a Server serves: for each key, whether and which
// versions, plus the precomputed ApiVersions key list.
type versionTable struct {
	served [maxKey]bool
	rng    [maxKey][2]int16
	group  [maxKey]bool // forwarded to GroupHandler (or answered unavailable)
	keys   []kmsg.ApiVersionsResponseApiKey
}

func newVersionTable(g GroupHandler) *versionTable {
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
	gv := groupKeys
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

// newRequest returns an empty request of key, for the keys this package or
// a GroupHandler serves; nil for any other key. It names each request type
// on purpose, instead of kmsg.RequestForKey: that one names every request
// kmsg knows (about 90), so the linker keeps every request decoder and
// response encoder in the binary, several hundred KB of code for keys that
// are never decoded (an unserved key is answered from unsupportedAnswers).
func newRequest(key int16) kmsg.Request {
	switch key {
	case keyProduce:
		return kmsg.NewPtrProduceRequest()
	case keyFetch:
		return kmsg.NewPtrFetchRequest()
	case keyListOffsets:
		return kmsg.NewPtrListOffsetsRequest()
	case keyMetadata:
		return kmsg.NewPtrMetadataRequest()
	case keyOffsetCommit:
		return kmsg.NewPtrOffsetCommitRequest()
	case keyOffsetFetch:
		return kmsg.NewPtrOffsetFetchRequest()
	case keyFindCoordinator:
		return kmsg.NewPtrFindCoordinatorRequest()
	case keyJoinGroup:
		return kmsg.NewPtrJoinGroupRequest()
	case keyHeartbeat:
		return kmsg.NewPtrHeartbeatRequest()
	case keyLeaveGroup:
		return kmsg.NewPtrLeaveGroupRequest()
	case keySyncGroup:
		return kmsg.NewPtrSyncGroupRequest()
	case keyDescribeGroups:
		return kmsg.NewPtrDescribeGroupsRequest()
	case keyListGroups:
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
	case keyDescribeConfigs:
		return kmsg.NewPtrDescribeConfigsRequest()
	case keyAlterConfigs:
		return kmsg.NewPtrAlterConfigsRequest()
	case keySASLAuthenticate:
		return kmsg.NewPtrSASLAuthenticateRequest()
	case keyCreatePartitions:
		return kmsg.NewPtrCreatePartitionsRequest()
	case keyDeleteGroups:
		return kmsg.NewPtrDeleteGroupsRequest()
	case keyIncrementalAlterConfigs:
		return kmsg.NewPtrIncrementalAlterConfigsRequest()
	case keyOffsetDelete:
		return kmsg.NewPtrOffsetDeleteRequest()
	case keyDescribeCluster:
		return kmsg.NewPtrDescribeClusterRequest()
	}
	return nil
}
