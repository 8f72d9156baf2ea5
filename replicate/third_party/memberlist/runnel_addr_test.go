// runnel: runnel_addr.go against the go-sockaddr v1.0.7 code it replaces
// (upstream's go.mod still has go-sockaddr: test-upstream.sh runs this
// file in upstream's module).

package memberlist

import (
	"net"
	"sort"
	"testing"

	sockaddr "github.com/hashicorp/go-sockaddr"
)

func prefixStrings(t *testing.T, sas sockaddr.SockAddrs) []string {
	var out []string
	seen := map[string]bool{}
	for _, sa := range sas {
		s := sa.String()
		if ip, ok := sa.(sockaddr.IPAddr); ok {
			s = ip.NetIPNet().String()
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func ourStrings(ps []string) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		_, n, _ := net.ParseCIDR(p)
		out = append(out, n.String())
	}
	sort.Strings(out)
	return out
}

// TestRunnelBlocksAreSockaddrs checks the RFC 6890 and non-forwardable
// blocks against go-sockaddr's own tables.
func TestRunnelBlocksAreSockaddrs(t *testing.T) {
	for _, c := range []struct {
		rfc  uint
		ours []string
	}{
		{6890, rfc6890Blocks},
		{sockaddr.ForwardingBlacklist, notForwardableBlocks},
	} {
		want := prefixStrings(t, sockaddr.KnownRFCs()[c.rfc])
		got := ourStrings(c.ours)
		if len(got) != len(want) {
			t.Fatalf("RFC %d: %d blocks %v, go-sockaddr has %d %v", c.rfc, len(got), got, len(want), want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("RFC %d: block %s, go-sockaddr %s", c.rfc, got[i], want[i])
			}
		}
	}
}

// TestRunnelIsRFC6890 compares isRFC6890 and the forwardable check with
// go-sockaddr's IsRFC for each block's edges and the addresses around them.
func TestRunnelIsRFC6890(t *testing.T) {
	var ips []net.IP
	for _, p := range append(append([]string{}, rfc6890Blocks...), notForwardableBlocks...) {
		_, n, _ := net.ParseCIDR(p)
		first := n.IP
		last := make(net.IP, len(first))
		for i := range first {
			last[i] = first[i] | ^n.Mask[i]
		}
		ips = append(ips, first, last, step(first, -1), step(last, 1))
	}
	ips = append(ips, net.ParseIP("8.8.8.8"), net.ParseIP("192.0.2.2"), net.ParseIP("10.1.2.3").To16(),
		net.ParseIP("2a00:1450::1"), net.ParseIP("fd00::2"))
	for _, ip := range ips {
		sa, err := sockaddr.NewIPAddr(ip.String())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := isRFC6890(ip), sockaddr.IsRFC(6890, sa); got != want {
			t.Errorf("isRFC6890(%s) = %v, go-sockaddr %v", ip, got, want)
		}
		if got, want := in(notForwardable, ip), sockaddr.IsRFC(sockaddr.ForwardingBlacklist, sa); got != want {
			t.Errorf("not forwardable(%s) = %v, go-sockaddr %v", ip, got, want)
		}
	}
}

// step returns ip plus d (±1), wrapping.
func step(ip net.IP, d int) net.IP {
	out := append(net.IP{}, ip...)
	for i := len(out) - 1; i >= 0; i-- {
		b := int(out[i]) + d
		out[i] = byte(b)
		if b >= 0 && b <= 255 {
			break
		}
	}
	return out
}

// TestRunnelDefaultRouteInterface compares /proc/net/route with go-sockaddr
// (which runs `ip route`).
func TestRunnelDefaultRouteInterface(t *testing.T) {
	ri, err := sockaddr.NewRouteInfo()
	if err != nil {
		t.Skip(err)
	}
	want, err := ri.GetDefaultInterfaceName()
	if err != nil {
		want = ""
	}
	if got := defaultRouteInterface(); got != want {
		t.Fatalf("defaultRouteInterface() = %q, go-sockaddr %q", got, want)
	}
}

// TestRunnelGetPrivateIP compares getPrivateIP with go-sockaddr's
// GetPrivateIP on this machine's interfaces: the same address, or one
// go-sockaddr's sort ties with it (its sort is not stable).
func TestRunnelGetPrivateIP(t *testing.T) {
	got, err := getPrivateIP()
	if err != nil {
		t.Fatal(err)
	}
	want, err := sockaddr.GetPrivateIP()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("getPrivateIP %q, go-sockaddr %q", got, want)
	if got == want {
		return
	}
	ifs, err := sockaddr.GetPrivateInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	if got == "" || len(ifs) == 0 {
		t.Fatalf("getPrivateIP() = %q, go-sockaddr %q", got, want)
	}
	def := defaultRouteInterface()
	first := ifs[0]
	for _, ia := range ifs {
		ip := *sockaddr.ToIPAddr(ia.SockAddr)
		if ip.NetIP().String() != got {
			continue
		}
		if (ia.Name == def) == (first.Name == def) && ia.Type() == first.Type() &&
			ip.Maskbits() == (*sockaddr.ToIPAddr(first.SockAddr)).Maskbits() {
			return // a tie in go-sockaddr's order
		}
	}
	t.Fatalf("getPrivateIP() = %q, go-sockaddr %q (candidates %v)", got, want, ifs)
}
