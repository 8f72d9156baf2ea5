package access

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func mustPolicy(t testing.TB, rules []Rule, super ...string) *Policy {
	t.Helper()
	p, err := NewPolicy(rules, super)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyDecisions(t *testing.T) {
	p := mustPolicy(t, []Rule{
		{User: "writer", Kind: Topic, Pattern: "sensors.*", Ops: Write},
		{User: "dash", Kind: Topic, Pattern: "*", Ops: Read},
		{User: "dash", Kind: Group, Pattern: "dash-*", Ops: Read},
		{User: "dash", Kind: Topic, Pattern: "secret", Ops: Read, Deny: true},
		{User: "*", Kind: Topic, Pattern: "public", Ops: Read},
	}, "admin")
	cases := []struct {
		user string
		kind Kind
		name string
		op   Op
		want bool
	}{
		{"admin", Cluster, ClusterName, Alter, true},
		{"admin", Topic, "anything", Delete, true},
		{"writer", Topic, "sensors.a", Write, true},
		{"writer", Topic, "sensors.a", Describe, true}, // implied
		{"writer", Topic, "sensors.a", Read, false},
		{"writer", Topic, "sensorsX", Write, false},
		{"writer", Topic, "sensors.a", Write | Read, false},
		{"writer", Topic, "sensors.a", Delete, false},
		{"dash", Topic, "sensors.a", Read, true},
		{"dash", Topic, "sensors.a", Write, false},
		{"dash", Topic, "secret", Read, false},
		{"dash", Topic, "secret", Describe, true}, // deny read does not deny describe
		{"dash", Group, "dash-1", Read, true},
		{"dash", Group, "other", Read, false},
		{"dash", Cluster, ClusterName, Create, false},
		{Anonymous, Topic, "public", Read, true},
		{Anonymous, Topic, "sensors.a", Read, false},
		{"nobody", Topic, "x", Describe, false},
		{"writer", Topic, "sensors.a", 0, false},
	}
	for _, c := range cases {
		if got := p.Allowed(c.user, c.kind, c.name, c.op); got != c.want {
			t.Errorf("Allowed(%s, %s, %q, %s) = %v, want %v", c.user, c.kind, c.name, c.op, got, c.want)
		}
	}
	var nilp *Policy
	if !nilp.Allowed("x", Topic, "y", All) {
		t.Error("nil policy denies")
	}
}

func TestRuleValidate(t *testing.T) {
	for _, r := range []Rule{
		{Kind: Topic, Pattern: "a", Ops: Read},
		{User: "u", Pattern: "a", Ops: Read},
		{User: "u", Kind: Topic, Ops: Read},
		{User: "u", Kind: Topic, Pattern: "a"},
		{User: "u", Kind: Topic, Pattern: "a", Ops: 1 << 12},
	} {
		if err := r.Validate(); err == nil {
			t.Errorf("%+v: valid", r)
		}
	}
}

// FuzzOneRuleGrantsOnlyWhatItSays: a policy of one allow rule grants an
// operation on a resource exactly when the rule's user, kind and pattern
// match and the operation is among those it lists (or Describe, implied by
// the others); a deny rule added for the same user, kind and pattern takes
// all of its operations away.
func FuzzOneRuleGrantsOnlyWhatItSays(f *testing.F) {
	f.Add("writer", uint8(1), "sensors.*", uint16(Write), "writer", uint8(1), "sensors.a", uint16(Write), uint16(Read))
	f.Add("*", uint8(2), "*", uint16(Read), "x", uint8(2), "g", uint16(Describe), uint16(0))
	f.Add("a", uint8(1), "t*x", uint16(Read), "a", uint8(1), "t*x", uint16(Read), uint16(Read))
	f.Fuzz(func(t *testing.T, ruser string, rkind uint8, pattern string, rops uint16, user string, kind uint8, name string, op uint16, denyOps uint16) {
		r := Rule{User: ruser, Kind: Kind(rkind%3 + 1), Pattern: pattern, Ops: Op(rops) & All}
		if r.Validate() != nil || user == "" {
			return
		}
		k, o := Kind(kind%3+1), Op(op)&All
		p := mustPolicy(t, []Rule{r})
		got := p.Allowed(user, k, name, o)
		nameOK := pattern == "*" || pattern == name ||
			(strings.HasSuffix(pattern, "*") && strings.HasPrefix(name, pattern[:len(pattern)-1]))
		granted := r.Ops
		if r.Ops&(Read|Write|Create|Delete|Alter) != 0 {
			granted |= Describe
		}
		want := o != 0 && (ruser == "*" || ruser == user) && r.Kind == k && nameOK && o&^granted == 0
		if got != want {
			t.Fatalf("rule %+v: Allowed(%q, %s, %q, %s) = %v, want %v", r, user, k, name, o, got, want)
		}
		if d := Op(denyOps) & All; d != 0 {
			dr := r
			dr.Deny, dr.Ops = true, d
			p2 := mustPolicy(t, []Rule{r, dr})
			got2 := p2.Allowed(user, k, name, o)
			want2 := want && !((ruser == "*" || ruser == user) && nameOK && o&d != 0)
			if got2 != want2 {
				t.Fatalf("rules %+v, %+v: Allowed(%q, %s, %q, %s) = %v, want %v", r, dr, user, k, name, o, got2, want2)
			}
		}
	})
}

// TestPolicyGrantsOnlyWhatRulesSay: random policies (users, kinds,
// literal, prefixed and wildcard patterns, allow and deny, static and
// dynamic rules) against random questions. Every yes must be backed, for
// each operation asked, by an allow rule of that user (or "*"), kind and
// a pattern matching the name that lists the operation (or implies
// Describe), with no deny rule for it; every no must lack such backing.
func TestPolicyGrantsOnlyWhatRulesSay(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	users := []string{"a", "b", "*", Anonymous}
	names := []string{"s", "s.1", "s.2", "t", "", "s*"}
	patterns := []string{"*", "s*", "s.*", "s.1", "t", "x*"}
	ops := []Op{Read, Write, Create, Delete, Alter, Describe, ClusterAction}
	randOps := func() Op {
		var o Op
		for o == 0 {
			o = Op(rng.IntN(int(All) + 1))
		}
		return o
	}
	for range 3000 {
		var static, dyn []Rule
		for range rng.IntN(6) {
			r := Rule{User: users[rng.IntN(len(users))], Kind: Kind(rng.IntN(3) + 1), Pattern: patterns[rng.IntN(len(patterns))], Ops: randOps(), Deny: rng.IntN(4) == 0}
			if rng.IntN(2) == 0 {
				static = append(static, r)
			} else {
				dyn = append(dyn, r)
			}
		}
		p := mustPolicy(t, static)
		if err := p.SetDynamic(dyn); err != nil {
			t.Fatal(err)
		}
		all := append(append([]Rule(nil), static...), dyn...)
		for range 20 {
			user := []string{"a", "b", Anonymous}[rng.IntN(3)]
			kind, name := Kind(rng.IntN(3)+1), names[rng.IntN(len(names))]
			q := ops[rng.IntN(len(ops))]
			if rng.IntN(3) == 0 {
				q |= ops[rng.IntN(len(ops))]
			}
			backed := true
			for _, bit := range ops {
				if q&bit == 0 {
					continue
				}
				allow, deny := false, false
				for _, r := range all {
					if r.Kind != kind || (r.User != "*" && r.User != user) {
						continue
					}
					if !(r.Pattern == "*" || r.Pattern == name || (strings.HasSuffix(r.Pattern, "*") && strings.HasPrefix(name, strings.TrimSuffix(r.Pattern, "*")))) {
						continue
					}
					if r.Deny && r.Ops&bit != 0 {
						deny = true
					}
					if !r.Deny && (r.Ops&bit != 0 || (bit == Describe && r.Ops&(Read|Write|Create|Delete|Alter) != 0)) {
						allow = true
					}
				}
				if deny || !allow {
					backed = false
				}
			}
			if got := p.Allowed(user, kind, name, q); got != backed {
				t.Fatalf("rules %+v: Allowed(%q, %s, %q, %s) = %v, the rules say %v", all, user, kind, name, q, got, backed)
			}
		}
	}
}
