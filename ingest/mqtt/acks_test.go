package mqtt

import (
	"errors"
	"testing"
)

func TestParseRouteAcks(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Route
		err  bool
	}{
		{in: "a/#=t,acks=all", want: Route{Filter: "a/#", Topic: "t", Acks: AcksAll}},
		{in: "a/#=t,key=client,acks=all", want: Route{Filter: "a/#", Topic: "t", Key: KeyClient, Acks: AcksAll}},
		{in: "a/#=t,acks=1,key=none", want: Route{Filter: "a/#", Topic: "t", Key: KeyNone, Acks: AcksLocal}},
		{in: "a/#=t", want: Route{Filter: "a/#", Topic: "t"}},
		{in: "a/#=t,acks=-1", err: true},
		{in: "a/#=t,acks=", err: true},
	} {
		r, err := ParseRoute(c.in)
		if c.err {
			if !errors.Is(err, ErrInvalidRoute) {
				t.Errorf("ParseRoute(%q) = %+v, %v: want ErrInvalidRoute", c.in, r, err)
			}
			continue
		}
		if err != nil || r != c.want {
			t.Errorf("ParseRoute(%q) = %+v, %v: want %+v", c.in, r, err, c.want)
		}
		if tgt, ok := (&router{routes: []Route{r}}).resolve("a/b", "c"); !ok || tgt.all != (c.want.Acks == AcksAll) {
			t.Errorf("%q: target %+v: acks=all %v", c.in, tgt, tgt.all)
		}
	}
}
