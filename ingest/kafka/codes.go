package kafka

import (
	"encoding/binary"
	"errors"
	"reflect"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/log"
)

// Kafka error codes used here. Never change: they are Kafka's.
const (
	codeNone                      int16 = 0
	codeUnknownServerError        int16 = -1
	codeOffsetOutOfRange          int16 = 1
	codeCorruptMessage            int16 = 2
	codeInvalidRecord             int16 = 87
	codeUnknownTopicOrPartition   int16 = 3
	codeLeaderNotAvailable        int16 = 5
	codeNotLeaderForPartition     int16 = 6
	codeMessageTooLarge           int16 = 10
	codeCoordinatorLoadInProgress int16 = 14
	codeCoordinatorNotAvailable   int16 = 15
	codeInvalidTopic              int16 = 17
	codeNotEnoughReplicas         int16 = 19
	codeInvalidRequiredAcks       int16 = 21
	codeUnsupportedSASLMechanism  int16 = 33
	codeIllegalSASLState          int16 = 34
	codeUnsupportedVersion        int16 = 35
	codeTopicAlreadyExists        int16 = 36
	codeInvalidPartitions         int16 = 37
	codeInvalidReplicationFactor  int16 = 38
	codeInvalidReplicaAssignment  int16 = 39
	codeInvalidConfig             int16 = 40
	codeInvalidRequest            int16 = 42
	codeOutOfOrderSequence        int16 = 45
	codeInvalidProducerEpoch      int16 = 47
	codeTransactionalIDAuthFailed int16 = 53
	codeKafkaStorageError         int16 = 56
	codeSASLAuthenticationFailed  int16 = 58
	codeFencedLeaderEpoch         int16 = 74
	codeUnknownLeaderEpoch        int16 = 75
	codeUnknownTopicID            int16 = 100
)

// errorCode maps a log error to a Kafka error code.
//
//   - ErrDiskFull answers KAFKA_STORAGE_ERROR (56): retriable in librdkafka,
//     franz-go and the Java client (which also refresh metadata), and the
//     closest meaning; the produce error message says the disk is full.
//   - ErrReadOnly (a failed fsync or write) also answers KAFKA_STORAGE_ERROR.
//   - ErrTooManyOpenFiles (out of descriptors: nothing written, the
//     partition stays writable) answers KAFKA_STORAGE_ERROR too, so
//     clients retry.
//   - ErrCorrupt (stored data that fails its checks, or offsets lost to
//     damage) answers CORRUPT_MESSAGE: a consumer that reaches it learns
//     the data is damaged (the Java consumer raises it; runnel repair
//     skips the range). Any other error of a read answers
//     KAFKA_STORAGE_ERROR (fetch.go).
//   - ErrClosed answers NOT_LEADER_OR_FOLLOWER so clients retry elsewhere
//     or later (the server is shutting down).
func errorCode(err error) int16 {
	switch {
	case err == nil, errors.Is(err, log.ErrDuplicateSequence):
		return codeNone
	case errors.Is(err, log.ErrUnknownTopic), errors.Is(err, log.ErrUnknownPartition):
		return codeUnknownTopicOrPartition
	case errors.Is(err, log.ErrOffsetOutOfRange):
		return codeOffsetOutOfRange
	case errors.Is(err, log.ErrCorruptBatch), errors.Is(err, log.ErrCorrupt):
		return codeCorruptMessage
	case errors.Is(err, log.ErrBatchTooLarge):
		return codeMessageTooLarge
	case errors.Is(err, log.ErrOutOfOrderSequence):
		return codeOutOfOrderSequence
	case errors.Is(err, log.ErrInvalidProducerEpoch):
		return codeInvalidProducerEpoch
	case errors.Is(err, log.ErrDiskFull), errors.Is(err, log.ErrReadOnly), errors.Is(err, log.ErrTooManyOpenFiles):
		return codeKafkaStorageError
	case errors.Is(err, log.ErrClosed), errors.Is(err, log.ErrNotLeader):
		return codeNotLeaderForPartition
	case errors.Is(err, log.ErrNotEnoughReplicas):
		return codeNotEnoughReplicas
	case errors.Is(err, log.ErrTopicExists):
		return codeTopicAlreadyExists
	case errors.Is(err, log.ErrInvalidTopic):
		return codeInvalidTopic
	case errors.Is(err, log.ErrInvalidConfig):
		return codeInvalidConfig
	case errors.Is(err, log.ErrInvalidPartitions):
		return codeInvalidPartitions
	}
	return codeUnknownServerError
}

// unsupportedResponse fills sl with an answer for a request the server does
// not serve at that version: the response of the key at the requested
// version with every error code UNSUPPORTED_VERSION (unsupportedAnswers),
// or, for a key or version kmsg does not know, the correlation id and the
// int16 error code alone.
func unsupportedResponse(sl *slot, key, version int16) {
	sl.raw = binary.BigEndian.AppendUint32(make([]byte, 0, 16), uint32(sl.corr))
	if key >= 0 && int(key) < len(unsupportedAnswers) && version >= 0 && int(version) < len(unsupportedAnswers[key]) {
		sl.raw = append(sl.raw, unsupportedAnswers[key][version]...)
	} else {
		sl.raw = binary.BigEndian.AppendUint16(sl.raw, uint16(codeUnsupportedVersion))
	}
	sl.rawSet = true
}

// groupUnavailable answers a group request when no GroupHandler is set.
func groupUnavailable(req kmsg.Request) kmsg.Response {
	resp := req.ResponseKind()
	switch r := req.(type) {
	case *kmsg.OffsetCommitRequest:
		rr := resp.(*kmsg.OffsetCommitResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				rt.Partitions = append(rt.Partitions, rp)
			}
			rr.Topics = append(rr.Topics, rt)
		}
	case *kmsg.OffsetFetchRequest:
		rr := resp.(*kmsg.OffsetFetchResponse)
		for _, g := range r.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group = g.Group
			rr.Groups = append(rr.Groups, rg)
		}
	case *kmsg.DescribeGroupsRequest:
		rr := resp.(*kmsg.DescribeGroupsResponse)
		for _, g := range r.Groups {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group = g
			rr.Groups = append(rr.Groups, rg)
		}
	case *kmsg.ConsumerGroupDescribeRequest:
		rr := resp.(*kmsg.ConsumerGroupDescribeResponse)
		for _, g := range r.Groups {
			rg := kmsg.NewConsumerGroupDescribeResponseGroup()
			rg.Group = g
			rr.Groups = append(rr.Groups, rg)
		}
	case *kmsg.DeleteGroupsRequest:
		rr := resp.(*kmsg.DeleteGroupsResponse)
		for _, g := range r.Groups {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group = g
			rr.Groups = append(rr.Groups, rg)
		}
	}
	setErrorCodes(resp, codeCoordinatorNotAvailable)
	return resp
}

// setErrorCodes sets every int16 field named ErrorCode in v (recursively
// through structs and slices) to code.
func setErrorCodes(v any, code int16) {
	setErrorCodesValue(reflect.ValueOf(v), code, 0)
}

func setErrorCodesValue(v reflect.Value, code int16, depth int) {
	if depth > 8 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			setErrorCodesValue(v.Elem(), code, depth+1)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			if !f.CanSet() {
				continue
			}
			if t.Field(i).Name == "ErrorCode" && f.Kind() == reflect.Int16 {
				f.SetInt(int64(code))
				continue
			}
			setErrorCodesValue(f, code, depth+1)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			setErrorCodesValue(v.Index(i), code, depth+1)
		}
	}
}
