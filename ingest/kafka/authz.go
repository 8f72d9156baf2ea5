package kafka

import (
	"crypto/tls"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/ingest/access"
)

// Authorization: every request that touches a topic, a group or the
// cluster is checked here, before its handler, against Options.Access for
// the connection's principal. The operations are Kafka's:
//
//	Produce                      Write on the topic
//	Fetch                        Read on the topic (a site peer's follower fetch: ClusterAction on the cluster)
//	Metadata, ListOffsets,       Describe on the topic (an all-topics Metadata lists only those)
//	OffsetForLeaderEpoch
//	auto-creation                Create on the topic (or the cluster)
//	CreateTopics                 Create on the topic (or the cluster)
//	DeleteTopics                 Delete on the topic
//	CreatePartitions,            Alter on the topic (a broker resource: Alter on the cluster)
//	AlterConfigs, Incremental…
//	DescribeConfigs              Describe on the topic (a broker resource: Describe on the cluster)
//	DescribeCluster              Describe on the cluster
//	FindCoordinator (group)      Describe on the group
//	Join/Sync/Heartbeat/Leave    Read on the group
//	OffsetCommit                 Read on the group and on each topic
//	OffsetFetch                  Describe on the group and on each topic
//	DescribeGroups               Describe on the group
//	ListGroups                   lists only groups the user may Describe
//	DeleteGroups, OffsetDelete   Delete on the group (OffsetDelete: Read on each topic)
//
// A refused topic is answered TOPIC_AUTHORIZATION_FAILED, a group
// GROUP_AUTHORIZATION_FAILED, the cluster CLUSTER_AUTHORIZATION_FAILED, in
// the request's own response (the others in the request are served).
// A denied part is taken out of the request before the handler runs and
// put back into its response by slot.fix.

const (
	codeTopicAuthorizationFailed   int16 = 29
	codeGroupAuthorizationFailed   int16 = 30
	codeClusterAuthorizationFailed int16 = 31
)

// refusedAnonymousMsg is the reason given to (and logged for) an anonymous
// client that is not on the loopback interface.
const refusedAnonymousMsg = "runnel: anonymous Kafka clients are allowed from the loopback interface only: authenticate with SASL (kafka.users), or set allow-remote-anonymous on a trusted, isolated network"

// initPrincipal sets the principal of a new connection: anonymous until
// SASL succeeds; an anonymous client off the loopback interface gets no
// rights unless Options.AllowRemoteAnonymous.
func (c *conn) initPrincipal() {
	c.principal = access.Anonymous
	if !c.s.saslRequired() && !c.s.opts.AllowRemoteAnonymous && !isLoopback(c.nc.RemoteAddr()) {
		c.noRights = true
		if !c.s.saslOn() { // else it may still authenticate (OptionalSASL)
			c.s.stats.anonymousRefused.Add(1)
			c.s.logger.Warn("kafka: anonymous client off loopback has no rights", "peer", c.peer, "reason", refusedAnonymousMsg)
		}
	}
}

// certPrincipal: over TLS with a client certificate verified against the
// listener's client CAs (mutual TLS), the certificate's common name is
// the user, authenticated without SASL (Kafka's SSL principal, mapped to
// the CN).
func (c *conn) certPrincipal() {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return
	}
	if cn := st.PeerCertificates[0].Subject.CommonName; cn != "" {
		c.authed, c.principal, c.noRights = true, cn, false
	}
}

// isLoopback reports whether a is an address on the loopback interface.
func isLoopback(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// may reports whether the connection's principal may do op on (kind, name).
func (c *conn) may(kind access.Kind, name string, op access.Op) bool {
	if c.noRights {
		return false
	}
	return c.s.opts.Access.Allowed(c.principal, kind, name, op)
}

// mayCreate: Create on the topic or on the cluster.
func (c *conn) mayCreate(topic string) bool {
	return c.may(access.Topic, topic, access.Create) || c.may(access.Cluster, access.ClusterName, access.Create)
}

// open reports whether no check is needed (everyone may do everything).
func (c *conn) open() bool { return !c.noRights && c.s.opts.Access == nil }

// denyMsg is the error message of a refusal.
func (c *conn) denyMsg() *string {
	if c.noRights {
		return strp(refusedAnonymousMsg)
	}
	return strp("runnel: user " + c.principal + " is not authorized for this operation")
}

// authorize checks req before its handler runs. It returns true when the
// whole request was answered (sl.resp set, not finished); otherwise it may
// have removed the refused parts of req and set sl.fix to add their
// errors to the handler's response.
func (c *conn) authorize(sl *slot, req kmsg.Request) bool {
	if c.open() {
		return false
	}
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		return c.authzProduce(sl, r)
	case *kmsg.FetchRequest:
		return c.authzFetch(sl, r)
	case *kmsg.MetadataRequest:
		c.authzMetadata(sl, r)
	case *kmsg.ListOffsetsRequest:
		var denied []kmsg.ListOffsetsRequestTopic
		r.Topics, denied = split(r.Topics, func(t kmsg.ListOffsetsRequestTopic) bool { return c.may(access.Topic, t.Topic, access.Describe) })
		if len(denied) > 0 {
			sl.fix = func(resp kmsg.Response) {
				rr := resp.(*kmsg.ListOffsetsResponse)
				for _, t := range denied {
					rt := kmsg.NewListOffsetsResponseTopic()
					rt.Topic = t.Topic
					for _, p := range t.Partitions {
						rp := kmsg.NewListOffsetsResponseTopicPartition()
						rp.Partition, rp.ErrorCode = p.Partition, codeTopicAuthorizationFailed
						rt.Partitions = append(rt.Partitions, rp)
					}
					rr.Topics = append(rr.Topics, rt)
				}
			}
		}
	case *kmsg.OffsetForLeaderEpochRequest:
		var denied []kmsg.OffsetForLeaderEpochRequestTopic
		r.Topics, denied = split(r.Topics, func(t kmsg.OffsetForLeaderEpochRequestTopic) bool {
			return c.may(access.Topic, t.Topic, access.Describe)
		})
		if len(denied) > 0 {
			sl.fix = func(resp kmsg.Response) {
				rr := resp.(*kmsg.OffsetForLeaderEpochResponse)
				for _, t := range denied {
					rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
					rt.Topic = t.Topic
					for _, p := range t.Partitions {
						rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
						rp.Partition, rp.ErrorCode = p.Partition, codeTopicAuthorizationFailed
						rp.LeaderEpoch, rp.EndOffset = -1, -1
						rt.Partitions = append(rt.Partitions, rp)
					}
					rr.Topics = append(rr.Topics, rt)
				}
			}
		}
	case *kmsg.CreateTopicsRequest:
		var denied []kmsg.CreateTopicsRequestTopic
		r.Topics, denied = split(r.Topics, func(t kmsg.CreateTopicsRequestTopic) bool { return c.mayCreate(t.Topic) })
		if len(denied) > 0 {
			msg := c.denyMsg()
			sl.fix = func(resp kmsg.Response) {
				rr := resp.(*kmsg.CreateTopicsResponse)
				for _, t := range denied {
					rt := kmsg.NewCreateTopicsResponseTopic()
					rt.Topic, rt.ErrorCode, rt.ErrorMessage = t.Topic, codeTopicAuthorizationFailed, msg
					rt.NumPartitions, rt.ReplicationFactor = -1, -1
					rr.Topics = append(rr.Topics, rt)
				}
			}
		}
	case *kmsg.DeleteTopicsRequest:
		c.authzDeleteTopics(sl, r)
	case *kmsg.CreatePartitionsRequest:
		var denied []kmsg.CreatePartitionsRequestTopic
		r.Topics, denied = split(r.Topics, func(t kmsg.CreatePartitionsRequestTopic) bool { return c.may(access.Topic, t.Topic, access.Alter) })
		if len(denied) > 0 {
			msg := c.denyMsg()
			sl.fix = func(resp kmsg.Response) {
				rr := resp.(*kmsg.CreatePartitionsResponse)
				for _, t := range denied {
					rt := kmsg.NewCreatePartitionsResponseTopic()
					rt.Topic, rt.ErrorCode, rt.ErrorMessage = t.Topic, codeTopicAuthorizationFailed, msg
					rr.Topics = append(rr.Topics, rt)
				}
			}
		}
	case *kmsg.DescribeConfigsRequest:
		var denied []kmsg.DescribeConfigsRequestResource
		r.Resources, denied = split(r.Resources, func(x kmsg.DescribeConfigsRequestResource) bool {
			return c.mayResource(x.ResourceType, x.ResourceName, access.Describe)
		})
		if len(denied) > 0 {
			msg := c.denyMsg()
			sl.fix = func(resp kmsg.Response) {
				rr := resp.(*kmsg.DescribeConfigsResponse)
				for _, x := range denied {
					rx := kmsg.NewDescribeConfigsResponseResource()
					rx.ResourceType, rx.ResourceName = x.ResourceType, x.ResourceName
					rx.ErrorCode, rx.ErrorMessage = resourceDenied(x.ResourceType), msg
					rr.Resources = append(rr.Resources, rx)
				}
			}
		}
	case *kmsg.AlterConfigsRequest:
		var denied []kmsg.AlterConfigsRequestResource
		r.Resources, denied = split(r.Resources, func(x kmsg.AlterConfigsRequestResource) bool {
			return c.mayResource(x.ResourceType, x.ResourceName, access.Alter)
		})
		if len(denied) > 0 {
			msg := c.denyMsg()
			sl.fix = func(resp kmsg.Response) {
				rr := resp.(*kmsg.AlterConfigsResponse)
				for _, x := range denied {
					rx := kmsg.NewAlterConfigsResponseResource()
					rx.ResourceType, rx.ResourceName = x.ResourceType, x.ResourceName
					rx.ErrorCode, rx.ErrorMessage = resourceDenied(x.ResourceType), msg
					rr.Resources = append(rr.Resources, rx)
				}
			}
		}
	case *kmsg.IncrementalAlterConfigsRequest:
		var denied []kmsg.IncrementalAlterConfigsRequestResource
		r.Resources, denied = split(r.Resources, func(x kmsg.IncrementalAlterConfigsRequestResource) bool {
			return c.mayResource(x.ResourceType, x.ResourceName, access.Alter)
		})
		if len(denied) > 0 {
			msg := c.denyMsg()
			sl.fix = func(resp kmsg.Response) {
				rr := resp.(*kmsg.IncrementalAlterConfigsResponse)
				for _, x := range denied {
					rx := kmsg.NewIncrementalAlterConfigsResponseResource()
					rx.ResourceType, rx.ResourceName = x.ResourceType, x.ResourceName
					rx.ErrorCode, rx.ErrorMessage = resourceDenied(x.ResourceType), msg
					rr.Resources = append(rr.Resources, rx)
				}
			}
		}
	case *kmsg.DescribeClusterRequest:
		if !c.may(access.Cluster, access.ClusterName, access.Describe) {
			resp := r.ResponseKind().(*kmsg.DescribeClusterResponse)
			resp.ErrorCode, resp.ErrorMessage = codeClusterAuthorizationFailed, c.denyMsg()
			sl.resp = resp
			return true
		}
	case *kmsg.FindCoordinatorRequest:
		return c.authzFindCoordinator(sl, r)
	case *kmsg.InitProducerIDRequest, *kmsg.AddPartitionsToTxnRequest, *kmsg.AddOffsetsToTxnRequest,
		*kmsg.EndTxnRequest, *kmsg.TxnOffsetCommitRequest, *kmsg.DescribeTransactionsRequest, *kmsg.ListTransactionsRequest:
		return c.authzTxn(sl, req)
	default:
		if c.s.versions.group[req.Key()] {
			return c.authzGroup(sl, req)
		}
	}
	return false
}

// mayResource checks a configs resource: a topic, or a broker (the cluster).
func (c *conn) mayResource(t kmsg.ConfigResourceType, name string, op access.Op) bool {
	if t == kmsg.ConfigResourceTypeTopic {
		return c.may(access.Topic, name, op)
	}
	return c.may(access.Cluster, access.ClusterName, op)
}

func resourceDenied(t kmsg.ConfigResourceType) int16 {
	if t == kmsg.ConfigResourceTypeTopic {
		return codeTopicAuthorizationFailed
	}
	return codeClusterAuthorizationFailed
}

// split partitions xs into the allowed (kept in place order) and the
// denied.
func split[T any](xs []T, ok func(T) bool) (allowed, denied []T) {
	for _, x := range xs {
		if ok(x) {
			allowed = append(allowed, x)
		} else {
			denied = append(denied, x)
		}
	}
	if denied == nil {
		return xs, nil
	}
	return allowed, denied
}

func (c *conn) authzProduce(sl *slot, r *kmsg.ProduceRequest) bool {
	if r.TransactionID != nil && !c.may(access.TransactionalID, *r.TransactionID, access.Write) {
		// As Kafka: a transactional produce needs Write on its
		// transactional id; every partition is refused.
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		msg := c.denyMsg()
		for _, t := range r.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode, rp.BaseOffset = p.Partition, codeTransactionalIDAuthFailed, -1
				if r.Version >= 8 {
					rp.ErrorMessage = msg
				}
				rt.Partitions = append(rt.Partitions, rp)
				c.s.stats.produceErrors.Add(1)
				c.s.stats.errors.Add(1)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		sl.resp = resp
		return true
	}
	var denied []kmsg.ProduceRequestTopic
	r.Topics, denied = split(r.Topics, func(t kmsg.ProduceRequestTopic) bool { return c.may(access.Topic, t.Topic, access.Write) })
	if len(denied) == 0 {
		return false
	}
	msg := c.denyMsg()
	add := func(resp kmsg.Response) {
		rr := resp.(*kmsg.ProduceResponse)
		for _, t := range denied {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode, rp.BaseOffset = p.Partition, codeTopicAuthorizationFailed, -1
				if r.Version >= 8 {
					rp.ErrorMessage = msg
				}
				rt.Partitions = append(rt.Partitions, rp)
				c.s.stats.produceErrors.Add(1)
				c.s.stats.errors.Add(1)
			}
			rr.Topics = append(rr.Topics, rt)
		}
	}
	if len(r.Topics) == 0 {
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		add(resp)
		sl.resp, sl.noResp = resp, r.Acks == 0
		return true
	}
	sl.fix = add
	return false
}

func (c *conn) authzFetch(sl *slot, r *kmsg.FetchRequest) bool {
	if (r.ReplicaID >= 0 || r.ReplicaID == DebugReplicaID) && !c.may(access.Cluster, access.ClusterName, access.ClusterAction) {
		// A follower's (or debugging) fetch reads what consumers may
		// not see yet.
		resp := r.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = codeClusterAuthorizationFailed
		sl.resp = resp
		return true
	}
	var denied []kmsg.FetchRequestTopic
	r.Topics, denied = split(r.Topics, func(t kmsg.FetchRequestTopic) bool { return c.may(access.Topic, t.Topic, access.Read) })
	if len(denied) == 0 {
		return false
	}
	add := func(resp kmsg.Response) {
		rr := resp.(*kmsg.FetchResponse)
		for _, t := range denied {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, codeTopicAuthorizationFailed
				rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
				rp.RecordBatches = noRecords
				rt.Partitions = append(rt.Partitions, rp)
			}
			rr.Topics = append(rr.Topics, rt)
		}
	}
	if len(r.Topics) == 0 {
		resp := r.ResponseKind().(*kmsg.FetchResponse)
		add(resp)
		sl.resp = resp
		return true
	}
	sl.fix = add
	return false
}

func (c *conn) authzMetadata(sl *slot, r *kmsg.MetadataRequest) {
	all := r.Topics == nil || (r.Version == 0 && len(r.Topics) == 0)
	if all {
		sl.fix = func(resp kmsg.Response) {
			rr := resp.(*kmsg.MetadataResponse)
			rr.Topics, _ = split(rr.Topics, func(t kmsg.MetadataResponseTopic) bool {
				return t.Topic != nil && c.may(access.Topic, *t.Topic, access.Describe)
			})
			if rr.Topics == nil {
				rr.Topics = []kmsg.MetadataResponseTopic{}
			}
		}
		return
	}
	var denied []kmsg.MetadataRequestTopic
	r.Topics, denied = split(r.Topics, func(t kmsg.MetadataRequestTopic) bool {
		return t.Topic == nil || c.may(access.Topic, *t.Topic, access.Describe)
	})
	if r.Topics == nil {
		r.Topics = []kmsg.MetadataRequestTopic{} // not nil: nil asks for all topics
	}
	if len(denied) > 0 {
		sl.fix = func(resp kmsg.Response) {
			rr := resp.(*kmsg.MetadataResponse)
			for _, t := range denied {
				rt := kmsg.NewMetadataResponseTopic()
				rt.Topic, rt.TopicID, rt.ErrorCode = t.Topic, t.TopicID, codeTopicAuthorizationFailed
				rr.Topics = append(rr.Topics, rt)
			}
		}
	}
}

func (c *conn) authzDeleteTopics(sl *slot, r *kmsg.DeleteTopicsRequest) {
	ok := func(name string) bool { return name != "" && c.may(access.Topic, name, access.Delete) }
	var deniedNames []string
	r.TopicNames, deniedNames = split(r.TopicNames, ok)
	var denied []kmsg.DeleteTopicsRequestTopic
	r.Topics, denied = split(r.Topics, func(t kmsg.DeleteTopicsRequestTopic) bool {
		if t.Topic == nil {
			// By id: resolved here so that the check sees the name.
			for _, info := range c.s.log.Topics() {
				if topicID(info.Name) == t.TopicID {
					return ok(info.Name)
				}
			}
			return true // unknown id: the handler answers UNKNOWN_TOPIC_ID
		}
		return ok(*t.Topic)
	})
	if len(deniedNames)+len(denied) == 0 {
		return
	}
	msg := c.denyMsg()
	sl.fix = func(resp kmsg.Response) {
		rr := resp.(*kmsg.DeleteTopicsResponse)
		for _, n := range deniedNames {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic, rt.ErrorCode, rt.ErrorMessage = strp(n), codeTopicAuthorizationFailed, msg
			rr.Topics = append(rr.Topics, rt)
		}
		for _, t := range denied {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic, rt.TopicID, rt.ErrorCode, rt.ErrorMessage = t.Topic, t.TopicID, codeTopicAuthorizationFailed, msg
			rr.Topics = append(rr.Topics, rt)
		}
	}
}

func (c *conn) authzFindCoordinator(sl *slot, r *kmsg.FindCoordinatorRequest) bool {
	if r.CoordinatorType != 0 {
		return false // transactional ids: checked by their own requests
	}
	keys := r.CoordinatorKeys
	if r.Version < 4 {
		keys = []string{r.CoordinatorKey}
	}
	var denied []string
	keys, denied = split(keys, func(g string) bool { return c.may(access.Group, g, access.Describe) })
	if len(denied) == 0 {
		return false
	}
	resp := r.ResponseKind().(*kmsg.FindCoordinatorResponse)
	if r.Version < 4 {
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID = codeGroupAuthorizationFailed, c.denyMsg(), -1
		sl.resp = resp
		return true
	}
	r.CoordinatorKeys = keys
	msg := c.denyMsg()
	add := func(resp kmsg.Response) {
		rr := resp.(*kmsg.FindCoordinatorResponse)
		for _, g := range denied {
			co := kmsg.NewFindCoordinatorResponseCoordinator()
			co.Key, co.NodeID, co.ErrorCode, co.ErrorMessage = g, -1, codeGroupAuthorizationFailed, msg
			rr.Coordinators = append(rr.Coordinators, co)
		}
	}
	if len(keys) == 0 {
		add(resp)
		sl.resp = resp
		return true
	}
	sl.fix = add
	return false
}

// authzGroup checks the group APIs (handled by Options.Groups).
func (c *conn) authzGroup(sl *slot, req kmsg.Request) bool {
	groupOK := func(g string, op access.Op) bool { return c.may(access.Group, g, op) }
	topicOK := func(t string, op access.Op) bool { return c.may(access.Topic, t, op) }
	deny := func(resp kmsg.Response) bool { sl.resp = resp; return true }
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		if !groupOK(r.Group, access.Read) {
			resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
			resp.ErrorCode, resp.Generation, resp.MemberID = codeGroupAuthorizationFailed, -1, r.MemberID
			return deny(resp)
		}
	case *kmsg.SyncGroupRequest:
		if !groupOK(r.Group, access.Read) {
			resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
			resp.ErrorCode = codeGroupAuthorizationFailed
			return deny(resp)
		}
	case *kmsg.HeartbeatRequest:
		if !groupOK(r.Group, access.Read) {
			resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
			resp.ErrorCode = codeGroupAuthorizationFailed
			return deny(resp)
		}
	case *kmsg.LeaveGroupRequest:
		if !groupOK(r.Group, access.Read) {
			resp := r.ResponseKind().(*kmsg.LeaveGroupResponse)
			resp.ErrorCode = codeGroupAuthorizationFailed
			return deny(resp)
		}
	case *kmsg.OffsetCommitRequest:
		code := codeNone
		if !groupOK(r.Group, access.Read) {
			code = codeGroupAuthorizationFailed
		}
		var denied []kmsg.OffsetCommitRequestTopic
		if code != codeNone {
			denied, r.Topics = r.Topics, nil
		} else {
			r.Topics, denied = split(r.Topics, func(t kmsg.OffsetCommitRequestTopic) bool { return topicOK(t.Topic, access.Read) })
		}
		if len(denied) == 0 {
			return false
		}
		if code == codeNone {
			code = codeTopicAuthorizationFailed
		}
		add := func(resp kmsg.Response) {
			rr := resp.(*kmsg.OffsetCommitResponse)
			for _, t := range denied {
				rt := kmsg.NewOffsetCommitResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetCommitResponseTopicPartition()
					rp.Partition, rp.ErrorCode = p.Partition, code
					rt.Partitions = append(rt.Partitions, rp)
				}
				rr.Topics = append(rr.Topics, rt)
			}
		}
		if len(r.Topics) == 0 {
			resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
			add(resp)
			return deny(resp)
		}
		sl.fix = add
	case *kmsg.OffsetFetchRequest:
		return c.authzOffsetFetch(sl, r)
	case *kmsg.DescribeGroupsRequest:
		var denied []string
		r.Groups, denied = split(r.Groups, func(g string) bool { return groupOK(g, access.Describe) })
		if len(denied) == 0 {
			return false
		}
		add := func(resp kmsg.Response) {
			rr := resp.(*kmsg.DescribeGroupsResponse)
			for _, g := range denied {
				rg := kmsg.NewDescribeGroupsResponseGroup()
				rg.Group, rg.ErrorCode, rg.AuthorizedOperations = g, codeGroupAuthorizationFailed, -2147483648
				rr.Groups = append(rr.Groups, rg)
			}
		}
		if len(r.Groups) == 0 {
			resp := r.ResponseKind().(*kmsg.DescribeGroupsResponse)
			add(resp)
			return deny(resp)
		}
		sl.fix = add
	case *kmsg.ListGroupsRequest:
		sl.fix = func(resp kmsg.Response) {
			rr := resp.(*kmsg.ListGroupsResponse)
			rr.Groups, _ = split(rr.Groups, func(g kmsg.ListGroupsResponseGroup) bool { return groupOK(g.Group, access.Describe) })
			if rr.Groups == nil {
				rr.Groups = []kmsg.ListGroupsResponseGroup{}
			}
		}
	case *kmsg.DeleteGroupsRequest:
		var denied []string
		r.Groups, denied = split(r.Groups, func(g string) bool { return groupOK(g, access.Delete) })
		if len(denied) == 0 {
			return false
		}
		add := func(resp kmsg.Response) {
			rr := resp.(*kmsg.DeleteGroupsResponse)
			for _, g := range denied {
				rg := kmsg.NewDeleteGroupsResponseGroup()
				rg.Group, rg.ErrorCode = g, codeGroupAuthorizationFailed
				rr.Groups = append(rr.Groups, rg)
			}
		}
		if len(r.Groups) == 0 {
			resp := r.ResponseKind().(*kmsg.DeleteGroupsResponse)
			add(resp)
			return deny(resp)
		}
		sl.fix = add
	case *kmsg.OffsetDeleteRequest:
		if !groupOK(r.Group, access.Delete) {
			resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
			resp.ErrorCode = codeGroupAuthorizationFailed
			return deny(resp)
		}
	case *kmsg.ConsumerGroupHeartbeatRequest, *kmsg.ConsumerGroupDescribeRequest:
		return c.authzConsumerGroup(sl, req)
	default:
		// A group API added later without a rule here is refused rather
		// than let through.
		if !c.may(access.Cluster, access.ClusterName, access.All) {
			unsupportedResponse(sl, req.Key(), req.GetVersion())
			return true
		}
	}
	return false
}

func (c *conn) authzOffsetFetch(sl *slot, r *kmsg.OffsetFetchRequest) bool {
	if r.Version < 8 {
		if !c.may(access.Group, r.Group, access.Describe) {
			resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
			resp.ErrorCode = codeGroupAuthorizationFailed
			sl.resp = resp
			return true
		}
		var denied []kmsg.OffsetFetchRequestTopic
		r.Topics, denied = split(r.Topics, func(t kmsg.OffsetFetchRequestTopic) bool { return c.may(access.Topic, t.Topic, access.Describe) })
		if r.Topics == nil && denied != nil {
			r.Topics = []kmsg.OffsetFetchRequestTopic{} // nil asks for all topics
		}
		sl.fix = func(resp kmsg.Response) {
			rr := resp.(*kmsg.OffsetFetchResponse)
			rr.Topics, _ = split(rr.Topics, func(t kmsg.OffsetFetchResponseTopic) bool { return c.may(access.Topic, t.Topic, access.Describe) })
			for _, t := range denied {
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = p, -1, -1, codeTopicAuthorizationFailed
					rt.Partitions = append(rt.Partitions, rp)
				}
				rr.Topics = append(rr.Topics, rt)
			}
		}
		return false
	}
	var denied []kmsg.OffsetFetchRequestGroup
	r.Groups, denied = split(r.Groups, func(g kmsg.OffsetFetchRequestGroup) bool { return c.may(access.Group, g.Group, access.Describe) })
	add := func(resp kmsg.Response) {
		rr := resp.(*kmsg.OffsetFetchResponse)
		for i := range rr.Groups {
			g := &rr.Groups[i]
			g.Topics, _ = split(g.Topics, func(t kmsg.OffsetFetchResponseGroupTopic) bool { return c.may(access.Topic, t.Topic, access.Describe) })
		}
		for _, g := range denied {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g.Group, codeGroupAuthorizationFailed
			rr.Groups = append(rr.Groups, rg)
		}
	}
	if len(r.Groups) == 0 {
		resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
		add(resp)
		sl.resp = resp
		return true
	}
	sl.fix = add
	return false
}
