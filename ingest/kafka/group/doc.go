// Package group is runnel's Kafka consumer-group coordinator: the classic
// (pre-KIP-848) group protocol behind JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups,
// DeleteGroups and OffsetDelete. ingest/kafka's server hands it decoded
// kmsg requests through its GroupHandler interface (Versions, Handle).
//
// # Basics
//
// Assignment is client-side: the coordinator picks a leader and a protocol
// (the first of the leader's protocols that every member supports), gives
// the leader every member's metadata in its JoinGroup response and relays
// the leader's SyncGroup assignments to the others. Assignors (range,
// round-robin, sticky, cooperative-sticky) therefore need nothing here;
// cooperative rebalancing is a series of ordinary rebalances in which
// members rejoin with changed metadata.
//
// Each group moves through Kafka's states:
//
//	          first JoinGroup
//	Empty ───────────────────────▶ PreparingRebalance ◀─────────────┐
//	  ▲   (waits InitialRebalance-   │  every member rejoined,       │ join/leave/
//	  │    Delay for more members)   │  or rebalance timeout         │ expiry/leader
//	  │                              ▼                               │ rejoin/new
//	  │ last member gone      CompletingRebalance ──────────────────┤ metadata
//	  │                              │  leader's SyncGroup           │
//	  │                              ▼                               │
//	  └────────────────────────── Stable ───────────────────────────┘
//
// JoinGroup blocks until the rebalance completes (or the request's context
// ends); SyncGroup of a follower blocks until the leader's SyncGroup.
// Members are expired when no request of theirs arrives for their session
// timeout (a member blocked in JoinGroup or SyncGroup is alive); members
// that do not rejoin within the rebalance timeout are dropped (static
// members stay until their session expires), and so are members that do not
// SyncGroup within it after the join completed.
//
// JoinGroup v4+ without a member id gets MEMBER_ID_REQUIRED and a fresh id
// (KIP-394); the id is held for one session timeout. A static member
// (group.instance.id, KIP-345) that rejoins without its member id replaces
// its old id; the old id is fenced (FENCED_INSTANCE_ID), and a stable group
// is not rebalanced unless the chosen protocol would change.
//
// Committed offsets live in log/meta (bucket "groups") and survive restarts;
// group membership lives in memory only, as each client rejoins after a
// restart. A group with no members is dropped from memory and is then known
// (ListGroups, DescribeGroups, DeleteGroups) by its committed offsets.
// OffsetCommit with generation -1 and no member id (simple consumers, kcat
// -o stored offsets, admin tools) is accepted for groups with no members.
// As in Kafka, the empty group id is valid for OffsetCommit, OffsetFetch,
// DescribeGroups and DeleteGroups (old offset-storing clients), never for
// membership.
//
// # Caveats
//
//   - The KIP-848 consumer protocol (ConsumerGroupHeartbeat), topic ids
//     (OffsetCommit/OffsetFetch v10) and transactional offset commits are not
//     served.
//   - OffsetCommit is answered once the offsets are durable in meta.db.
//     Concurrent commits share one bbolt transaction and fsync (bbolt's
//     Batch), which adds up to 10 ms to a lone commit.
//   - Group membership does not survive a restart: members learn it from
//     UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION and rejoin; records they
//     fetched but could not commit in between are delivered again
//     (at-least-once, as after any rebalance). This is deliberate: on an
//     edge box the consumers often restart with runnel (power loss), and
//     restored ghost members would hold their partitions for a session
//     timeout before anyone could consume them.
//   - Client id and host of members come from the request context (see
//     WithClient); without them DescribeGroups shows empty strings.
package group
