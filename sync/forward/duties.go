package forward

// partDuty says on whose behalf a part forwards: the origin partition
// (origin node and topic name) and the duty epoch. Guarded by route.mu
// like the rest of the part.
type partDuty struct {
	origin string // node id in runnel-node and {node}
	topic  string // origin topic name in runnel-topic and {topic}
	epoch  uint64
	logged int64 // offset last written to the cursor log; -1 = none
}

// ownDuty is the duty of a partition of this node's own topic.
func ownDuty(node, topic string) partDuty {
	return partDuty{origin: node, topic: topic, logged: -1}
}
