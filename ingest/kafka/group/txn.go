package group

import "github.com/twmb/franz-go/pkg/kmsg"

// CheckTxnCommit validates the member and generation a TxnOffsetCommit
// names (v3+, KIP-447) as OffsetCommit's are: a zombie of an older
// generation is refused (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
// FENCED_INSTANCE_ID). Generation -1 with no member (v0-2) passes, as a
// simple commit does. The transaction coordinator (ingest/kafka) calls it.
func (c *Coordinator) CheckTxnCommit(group, member string, instanceID *string, generation int32) int16 {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group, req.MemberID, req.InstanceID, req.Generation = group, member, instanceID, generation
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return codeCoordinatorNotAvailable
	}
	return c.commitCheckLocked(req)
}
