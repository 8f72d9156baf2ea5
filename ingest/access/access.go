package access

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
)

// Anonymous is the principal of a client that presented no credentials.
const Anonymous = "ANONYMOUS"

// Op is a set of operations.
type Op uint16

// Operations. Their names are Kafka's ACL operations.
const (
	Read          Op = 1 << iota // fetch, consume, list offsets; group: join, commit, fetch offsets
	Write                        // produce
	Create                       // create a topic (cluster: create any topic)
	Delete                       // delete a topic (group: delete it)
	Alter                        // topic configs, add partitions; cluster: ACLs
	Describe                     // see it: Metadata, DescribeConfigs; group: describe, list
	ClusterAction                // cluster: site peer replication (follower fetches)

	All = Read | Write | Create | Delete | Alter | Describe | ClusterAction
)

var opNames = []struct {
	op   Op
	name string
}{{Read, "read"}, {Write, "write"}, {Create, "create"}, {Delete, "delete"}, {Alter, "alter"}, {Describe, "describe"}, {ClusterAction, "cluster-action"}}

// ParseOp parses one operation name or "all".
func ParseOp(s string) (Op, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "all" {
		return All, nil
	}
	for _, n := range opNames {
		if n.name == s {
			return n.op, nil
		}
	}
	return 0, fmt.Errorf("access: unknown operation %q (want read, write, create, delete, alter, describe, cluster-action or all)", s)
}

// String lists the operations, comma-separated.
func (o Op) String() string {
	if o == All {
		return "all"
	}
	var parts []string
	for _, n := range opNames {
		if o&n.op != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, ",")
}

// implied is what an allow rule listing o grants.
func (o Op) implied() Op {
	if o&(Read|Write|Create|Delete|Alter) != 0 {
		o |= Describe
	}
	return o
}

// Kind is a resource kind.
type Kind uint8

// Resource kinds.
const (
	Topic           Kind = iota + 1 // a log topic
	Group                           // a Kafka consumer group
	Cluster                         // the node itself (name "kafka-cluster")
	TransactionalID                 // a Kafka transactional id (Kafka's TRANSACTIONAL_ID resource)
)

// ClusterName is the name of the one Cluster resource, as in Kafka.
const ClusterName = "kafka-cluster"

func (k Kind) String() string {
	switch k {
	case Topic:
		return "topic"
	case Group:
		return "group"
	case Cluster:
		return "cluster"
	case TransactionalID:
		return "transactional-id"
	}
	return fmt.Sprintf("kind(%d)", k)
}

// ParseKind parses "topic", "group", "cluster" or "transactional-id".
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "topic", "":
		return Topic, nil
	case "group":
		return Group, nil
	case "cluster":
		return Cluster, nil
	case "transactional-id":
		return TransactionalID, nil
	}
	return 0, fmt.Errorf("access: unknown resource kind %q (want topic, group, cluster or transactional-id)", s)
}

// Rule allows (or denies) Ops on the resources of Kind whose names match
// Pattern, to User.
type Rule struct {
	User    string // a principal, or "*" for every principal
	Kind    Kind
	Pattern string // "*", "prefix*" or an exact name
	Ops     Op
	Deny    bool
}

// ErrInvalidRule is wrapped by Rule.Validate's errors.
var ErrInvalidRule = errors.New("access: invalid rule")

// Validate reports a rule that cannot match or grant anything.
func (r Rule) Validate() error {
	switch {
	case r.User == "":
		return fmt.Errorf("%w: no user (use \"*\" for everyone)", ErrInvalidRule)
	case r.Kind < Topic || r.Kind > TransactionalID:
		return fmt.Errorf("%w: unknown resource kind", ErrInvalidRule)
	case r.Pattern == "":
		return fmt.Errorf("%w: empty pattern", ErrInvalidRule)
	case r.Ops == 0 || r.Ops&^All != 0:
		return fmt.Errorf("%w: no operations", ErrInvalidRule)
	}
	return nil
}

// Matches reports whether name matches the rule's pattern.
func (r Rule) Matches(name string) bool { return MatchPattern(r.Pattern, name) }

// MatchPattern reports whether name matches pattern ("*", "prefix*" or an
// exact name).
func MatchPattern(pattern, name string) bool {
	if pattern == "*" {
		return true
	}
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(name, p)
	}
	return pattern == name
}

// applies reports whether the rule decides op on (kind, name) for user.
func (r *Rule) applies(user string, kind Kind, name string, op Op) bool {
	if r.Kind != kind || (r.User != "*" && r.User != user) || !MatchPattern(r.Pattern, name) {
		return false
	}
	if r.Deny {
		return r.Ops&op != 0
	}
	return r.Ops.implied()&op == op
}

// Policy is a set of rules: those it was made with, and the dynamic ones
// (Kafka's CreateAcls/DeleteAcls) replaced as a whole by SetDynamic.
type Policy struct {
	rules []Rule
	super map[string]bool
	dyn   atomic.Pointer[[]Rule] // copy on write
}

// SetDynamic replaces the dynamic rules (validated; copied).
func (p *Policy) SetDynamic(rules []Rule) error {
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("rule %d: %w", i, err)
		}
	}
	cp := append([]Rule(nil), rules...)
	p.dyn.Store(&cp)
	return nil
}

// Dynamic returns a copy of the dynamic rules.
func (p *Policy) Dynamic() []Rule {
	if d := p.dyn.Load(); d != nil {
		return append([]Rule(nil), (*d)...)
	}
	return nil
}

// NewPolicy returns the policy of rules (copied) and superusers.
func NewPolicy(rules []Rule, superusers []string) (*Policy, error) {
	p := &Policy{rules: append([]Rule(nil), rules...), super: map[string]bool{}}
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("rule %d: %w", i, err)
		}
	}
	for _, u := range superusers {
		p.super[u] = true
	}
	return p, nil
}

// Rules returns a copy of the rules.
func (p *Policy) Rules() []Rule { return append([]Rule(nil), p.rules...) }

// Superuser reports whether user may do everything.
func (p *Policy) Superuser(user string) bool { return p.super[user] }

// Allowed reports whether user may do every operation of op on the
// resource (kind, name). A nil Policy allows everything.
func (p *Policy) Allowed(user string, kind Kind, name string, op Op) bool {
	if p == nil || p.super[user] {
		return true
	}
	if op == 0 {
		return false
	}
	// Each operation is decided on its own: deny wins, then allow.
	for bit := Op(1); bit <= op && bit != 0; bit <<= 1 {
		if op&bit == 0 {
			continue
		}
		allowed := false
		rulesets := [2][]Rule{p.rules}
		if d := p.dyn.Load(); d != nil {
			rulesets[1] = *d
		}
		for _, rules := range rulesets {
			for i := range rules {
				r := &rules[i]
				if !r.applies(user, kind, name, bit) {
					continue
				}
				if r.Deny {
					return false
				}
				allowed = true
			}
		}
		if !allowed {
			return false
		}
	}
	return true
}
