package kafka

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel/runnel/ingest/access"
	"github.com/runnel/runnel/log/meta"
)

// Kafka's ACL APIs (DescribeAcls, CreateAcls, DeleteAcls: kafka-acls)
// over the access model. Served when Options.Access is set; an ACL
// created here is a dynamic rule of the policy (access.Policy.SetDynamic),
// stored in meta.db and loaded at start. The rules of the configuration
// file are listed too but cannot be deleted here (they come back from the
// file). One binding is one rule:
//
//	principal User:NAME (User:* = everyone)   → Rule.User
//	resource TOPIC, GROUP, CLUSTER            → Rule.Kind
//	pattern LITERAL NAME, LITERAL *           → Rule.Pattern NAME, *
//	pattern PREFIXED P                        → Rule.Pattern P*
//	operation READ … CLUSTER_ACTION, ALL      → the Op of the same name
//	DESCRIBE_CONFIGS, ALTER_CONFIGS           → Describe, Alter
//	permission ALLOW, DENY                    → Rule.Deny
//	host                                      → * only
//
// Describing needs describe on the cluster, creating and deleting alter
// on it (CLUSTER_AUTHORIZATION_FAILED otherwise).

const (
	keyDescribeACLs = 29
	keyCreateACLs   = 30
	keyDeleteACLs   = 31

	codeSecurityDisabled = 54

	aclsBucket = "kafka-acls"
)

// aclVersions are served when Options.Access is set.
var aclVersions = map[int16][2]int16{
	keyDescribeACLs: {1, 3},
	keyCreateACLs:   {1, 3},
	keyDeleteACLs:   {1, 3},
}

// acls persists the dynamic rules. mu serializes changes.
type acls struct {
	mu     sync.Mutex
	store  *meta.Store
	policy *access.Policy
}

// load reads the stored ACLs into the policy.
func (a *acls) load() error {
	if a.policy == nil || a.store == nil {
		return nil
	}
	var rules []access.Rule
	err := a.store.KVForEach(aclsBucket, func(_ string, v []byte) error {
		var spec access.RuleSpec
		if err := json.Unmarshal(v, &spec); err != nil {
			return err
		}
		rs, err := spec.Rules()
		if err != nil {
			return err
		}
		rules = append(rules, rs...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("kafka: stored ACLs: %w", err)
	}
	return a.policy.SetDynamic(rules)
}

func ruleKey(r access.Rule) string {
	return fmt.Sprintf("%d\x00%s\x00%s\x00%d\x00%t", r.Kind, r.User, r.Pattern, r.Ops, r.Deny)
}

var aclOps = map[kmsg.ACLOperation]access.Op{
	kmsg.ACLOperationAll: access.All, kmsg.ACLOperationRead: access.Read, kmsg.ACLOperationWrite: access.Write,
	kmsg.ACLOperationCreate: access.Create, kmsg.ACLOperationDelete: access.Delete, kmsg.ACLOperationAlter: access.Alter,
	kmsg.ACLOperationDescribe: access.Describe, kmsg.ACLOperationClusterAction: access.ClusterAction,
	kmsg.ACLOperationDescribeConfigs: access.Describe, kmsg.ACLOperationAlterConfigs: access.Alter,
}

var aclKinds = map[kmsg.ACLResourceType]access.Kind{
	kmsg.ACLResourceTypeTopic: access.Topic, kmsg.ACLResourceTypeGroup: access.Group, kmsg.ACLResourceTypeCluster: access.Cluster,
	kmsg.ACLResourceTypeTransactionalId: access.TransactionalID,
}

// bindingRule converts one ACL binding.
func bindingRule(rt kmsg.ACLResourceType, name string, pt kmsg.ACLResourcePatternType, principal, host string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) (access.Rule, error) {
	var r access.Rule
	kind, ok := aclKinds[rt]
	if !ok {
		return r, fmt.Errorf("resource type %v is not supported (TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID)", rt)
	}
	user, ok := strings.CutPrefix(principal, "User:")
	if !ok || user == "" {
		return r, fmt.Errorf("principal %q: want User:NAME or User:*", principal)
	}
	if host != "*" {
		return r, fmt.Errorf("host %q: only * (any host) is supported", host)
	}
	ops, ok := aclOps[op]
	if !ok {
		return r, fmt.Errorf("operation %v is not supported", op)
	}
	switch pt {
	case kmsg.ACLResourcePatternTypeLiteral:
		if name != "*" && strings.HasSuffix(name, "*") {
			return r, fmt.Errorf("literal resource name %q ends with *: use a prefixed pattern", name)
		}
	case kmsg.ACLResourcePatternTypePrefixed:
		name += "*"
	default:
		return r, fmt.Errorf("pattern type %v: want LITERAL or PREFIXED", pt)
	}
	if kind == access.Cluster {
		name = access.ClusterName
	}
	var deny bool
	switch perm {
	case kmsg.ACLPermissionTypeAllow:
	case kmsg.ACLPermissionTypeDeny:
		deny = true
	default:
		return r, fmt.Errorf("permission type %v: want ALLOW or DENY", perm)
	}
	r = access.Rule{User: user, Kind: kind, Pattern: name, Ops: ops, Deny: deny}
	return r, r.Validate()
}

// binding is one rule, one operation, as Kafka shows it.
type binding struct {
	rt        kmsg.ACLResourceType
	name      string
	pt        kmsg.ACLResourcePatternType
	principal string
	op        kmsg.ACLOperation
	perm      kmsg.ACLPermissionType
}

// bindings expands a rule into Kafka's bindings (one per operation).
func bindings(r access.Rule) []binding {
	b := binding{principal: "User:" + r.User, perm: kmsg.ACLPermissionTypeAllow, pt: kmsg.ACLResourcePatternTypeLiteral, name: r.Pattern}
	if r.Deny {
		b.perm = kmsg.ACLPermissionTypeDeny
	}
	for k, v := range aclKinds {
		if v == r.Kind {
			b.rt = k
		}
	}
	if p, ok := strings.CutSuffix(r.Pattern, "*"); ok && r.Pattern != "*" {
		b.pt, b.name = kmsg.ACLResourcePatternTypePrefixed, p
	}
	if r.Ops == access.All {
		b.op = kmsg.ACLOperationAll
		return []binding{b}
	}
	var out []binding
	for _, op := range []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationCreate, kmsg.ACLOperationDelete,
		kmsg.ACLOperationAlter, kmsg.ACLOperationDescribe, kmsg.ACLOperationClusterAction} {
		if r.Ops&aclOps[op] != 0 {
			b.op = op
			out = append(out, b)
		}
	}
	return out
}

// filter is a DescribeAcls or DeleteAcls filter.
type filter struct {
	rt        kmsg.ACLResourceType
	name      *string
	pt        kmsg.ACLResourcePatternType
	principal *string
	host      *string
	op        kmsg.ACLOperation
	perm      kmsg.ACLPermissionType
}

func (f filter) matches(b binding) bool {
	if f.rt != kmsg.ACLResourceTypeAny && f.rt != b.rt {
		return false
	}
	if f.principal != nil && *f.principal != b.principal {
		return false
	}
	if f.host != nil && *f.host != "*" {
		return false
	}
	if f.op != kmsg.ACLOperationAny && f.op != b.op {
		return false
	}
	if f.perm != kmsg.ACLPermissionTypeAny && f.perm != b.perm {
		return false
	}
	switch f.pt {
	case kmsg.ACLResourcePatternTypeAny:
		return f.name == nil || *f.name == b.name
	case kmsg.ACLResourcePatternTypeMatch:
		if f.name == nil {
			return true
		}
		pat := b.name
		if b.pt == kmsg.ACLResourcePatternTypePrefixed {
			pat += "*"
		}
		return access.MatchPattern(pat, *f.name)
	default:
		return f.pt == b.pt && (f.name == nil || *f.name == b.name)
	}
}

// allRules are the static and dynamic rules with which are dynamic.
func (a *acls) allRules() (rules []access.Rule, dynamic []bool) {
	for _, r := range a.policy.Rules() {
		rules, dynamic = append(rules, r), append(dynamic, false)
	}
	for _, r := range a.policy.Dynamic() {
		rules, dynamic = append(rules, r), append(dynamic, true)
	}
	return rules, dynamic
}

func (c *conn) describeACLs(req *kmsg.DescribeACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	if c.s.acls.policy == nil {
		resp.ErrorCode, resp.ErrorMessage = codeSecurityDisabled, strp("runnel: no access rules configured (access.*)")
		return resp
	}
	if !c.may(access.Cluster, access.ClusterName, access.Describe) {
		resp.ErrorCode, resp.ErrorMessage = codeClusterAuthorizationFailed, c.denyMsg()
		return resp
	}
	f := filter{req.ResourceType, req.ResourceName, req.ResourcePatternType, req.Principal, req.Host, req.Operation, req.PermissionType}
	if req.Version == 0 {
		f.pt = kmsg.ACLResourcePatternTypeLiteral
	}
	type resKey struct {
		rt   kmsg.ACLResourceType
		name string
		pt   kmsg.ACLResourcePatternType
	}
	idx := map[resKey]int{}
	rules, _ := c.s.acls.allRules()
	for _, r := range rules {
		for _, b := range bindings(r) {
			if !f.matches(b) {
				continue
			}
			k := resKey{b.rt, b.name, b.pt}
			i, ok := idx[k]
			if !ok {
				rr := kmsg.NewDescribeACLsResponseResource()
				rr.ResourceType, rr.ResourceName, rr.ResourcePatternType = b.rt, b.name, b.pt
				resp.Resources = append(resp.Resources, rr)
				i = len(resp.Resources) - 1
				idx[k] = i
			}
			acl := kmsg.NewDescribeACLsResponseResourceACL()
			acl.Principal, acl.Host, acl.Operation, acl.PermissionType = b.principal, "*", b.op, b.perm
			resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, acl)
		}
	}
	return resp
}

func (c *conn) createACLs(req *kmsg.CreateACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	a := &c.s.acls
	allowed := a.policy != nil && c.may(access.Cluster, access.ClusterName, access.Alter)
	a.mu.Lock()
	defer a.mu.Unlock()
	var dyn []access.Rule
	if a.policy != nil {
		dyn = a.policy.Dynamic()
	}
	have := map[string]bool{}
	for _, r := range dyn {
		have[ruleKey(r)] = true
	}
	var writes []meta.KVWrite
	for _, cr := range req.Creations {
		res := kmsg.NewCreateACLsResponseResult()
		pt := cr.ResourcePatternType
		if req.Version == 0 {
			pt = kmsg.ACLResourcePatternTypeLiteral
		}
		switch r, err := bindingRule(cr.ResourceType, cr.ResourceName, pt, cr.Principal, cr.Host, cr.Operation, cr.PermissionType); {
		case a.policy == nil:
			res.ErrorCode, res.ErrorMessage = codeSecurityDisabled, strp("runnel: no access rules configured (access.*)")
		case !allowed:
			res.ErrorCode, res.ErrorMessage = codeClusterAuthorizationFailed, c.denyMsg()
		case err != nil:
			res.ErrorCode, res.ErrorMessage = codeInvalidRequest, strp("runnel: "+err.Error())
		case !have[ruleKey(r)]:
			have[ruleKey(r)] = true
			dyn = append(dyn, r)
			v, _ := json.Marshal(r.Spec())
			writes = append(writes, meta.KVWrite{Key: ruleKey(r), Value: v})
		}
		resp.Results = append(resp.Results, res)
	}
	if len(writes) > 0 {
		if err := c.s.log.Meta().KVApply(aclsBucket, writes); err != nil {
			for i := range resp.Results {
				if resp.Results[i].ErrorCode == 0 {
					resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = codeUnknownServerError, strp("runnel: storing the ACLs: "+err.Error())
				}
			}
			return resp
		}
		a.policy.SetDynamic(dyn)
		c.s.logger.Info("kafka: ACLs created", "by", c.principal, "count", len(writes))
	}
	return resp
}

func (c *conn) deleteACLs(req *kmsg.DeleteACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	a := &c.s.acls
	allowed := a.policy != nil && c.may(access.Cluster, access.ClusterName, access.Alter)
	a.mu.Lock()
	defer a.mu.Unlock()
	var dyn []access.Rule
	if a.policy != nil {
		dyn = a.policy.Dynamic()
	}
	gone := map[int]bool{}
	for _, fr := range req.Filters {
		res := kmsg.NewDeleteACLsResponseResult()
		switch {
		case a.policy == nil:
			res.ErrorCode, res.ErrorMessage = codeSecurityDisabled, strp("runnel: no access rules configured (access.*)")
		case !allowed:
			res.ErrorCode, res.ErrorMessage = codeClusterAuthorizationFailed, c.denyMsg()
		default:
			f := filter{fr.ResourceType, fr.ResourceName, fr.ResourcePatternType, fr.Principal, fr.Host, fr.Operation, fr.PermissionType}
			if req.Version == 0 {
				f.pt = kmsg.ACLResourcePatternTypeLiteral
			}
			for i, r := range dyn {
				for _, b := range bindings(r) {
					if gone[i] || !f.matches(b) {
						continue
					}
					gone[i] = true
					m := kmsg.NewDeleteACLsResponseResultMatchingACL()
					m.ResourceType, m.ResourceName, m.ResourcePatternType = b.rt, b.name, b.pt
					m.Principal, m.Host, m.Operation, m.PermissionType = b.principal, "*", b.op, b.perm
					res.MatchingACLs = append(res.MatchingACLs, m)
				}
			}
		}
		resp.Results = append(resp.Results, res)
	}
	if len(gone) == 0 {
		return resp
	}
	var keep []access.Rule
	var writes []meta.KVWrite
	for i, r := range dyn {
		if gone[i] {
			writes = append(writes, meta.KVWrite{Key: ruleKey(r)})
		} else {
			keep = append(keep, r)
		}
	}
	if err := c.s.log.Meta().KVApply(aclsBucket, writes); err != nil {
		for i := range resp.Results {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = codeUnknownServerError, strp("runnel: storing the ACLs: "+err.Error())
			resp.Results[i].MatchingACLs = nil
		}
		return resp
	}
	a.policy.SetDynamic(keep)
	c.s.logger.Info("kafka: ACLs deleted", "by", c.principal, "count", len(writes))
	return resp
}
