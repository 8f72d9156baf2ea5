// runnel: this file replaces memberlist's use of go-sockaddr (which links
// os/exec, text parsing of `ip route` output and a regexp-driven template
// language) with a few lines over net.Interfaces. See PATCHES.md.

package memberlist

import (
	"bufio"
	"net"
	"net/netip"
	"os"
	"strings"
)

// rfc6890Blocks are the blocks of RFC 6890 (Special-Purpose IP Address
// Registries) as go-sockaddr v1.0.7 lists them for IfByRFC("6890")
// (KnownRFCs; runnel_addr_test.go compares).
var rfc6890Blocks = []string{
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
	"169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.0.0.0/29",
	"192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
	"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4", "255.255.255.255/32",
	"::1/128", "::/128", "64:ff9b::/96", "::ffff:0:0/96", "100::/64",
	"2001::/16", "2002::/16", "fc00::/7", "fe80::/10",
}

// notForwardableBlocks are the blocks go-sockaddr v1.0.7 calls not
// forwardable (its ForwardingBlacklist): an address in one is never
// advertised.
var notForwardableBlocks = []string{
	"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "192.0.0.0/24",
	"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
	"255.255.255.255/32",
	"::1/128", "::/128", "::ffff:0:0/96", "2001:db8::/32", "2001:10::/28",
	"fe80::/10",
}

var (
	rfc6890        = prefixes(rfc6890Blocks...)
	notForwardable = prefixes(notForwardableBlocks...)
)

func prefixes(s ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(s))
	for i, p := range s {
		ps[i] = netip.MustParsePrefix(p)
	}
	return ps
}

// in reports whether ip is in one of ps. An IPv4 address matches the IPv4
// blocks only, also when held in 16 bytes (as go-sockaddr parses it).
func in(ps []netip.Prefix, ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// isRFC6890 reports whether ip is in a special-purpose block of RFC 6890
// (private, loopback, link-local, documentation, ...).
func isRFC6890(ip net.IP) bool { return in(rfc6890, ip) }

// getPrivateIP returns the address to advertise when bound to every
// interface, as go-sockaddr's GetPrivateIP picks it: an address of an
// interface that is up, forwardable and in RFC 6890; of those, one on the
// interface of the IPv4 default route first, then IPv4 before IPv6, then
// the larger network (shorter prefix) first, then interface order. "" if
// there is none.
func getPrivateIP() (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	def := defaultRouteInterface()
	var best net.IP
	var bestKey [3]int
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return "", err
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || !isRFC6890(ipn.IP) || in(notForwardable, ipn.IP) {
				continue
			}
			ones, _ := ipn.Mask.Size()
			key := [3]int{1, 0, ones}
			if ifc.Name == def {
				key[0] = 0
			}
			if ipn.IP.To4() == nil {
				key[1] = 1
			}
			if best == nil || key[0] < bestKey[0] ||
				key[0] == bestKey[0] && (key[1] < bestKey[1] || key[1] == bestKey[1] && key[2] < bestKey[2]) {
				best, bestKey = ipn.IP, key
			}
		}
	}
	if best == nil {
		return "", nil
	}
	return best.String(), nil
}

// defaultRouteInterface names the interface of the IPv4 default route
// (/proc/net/route); "" where there is none or no such file (not Linux).
// go-sockaddr ran `ip route` (`route -n get default` elsewhere) for it.
func defaultRouteInterface() string {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header: Iface Destination Gateway Flags RefCnt Use Metric Mask ...
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 8 && fs[1] == "00000000" && fs[7] == "00000000" {
			return fs[0]
		}
	}
	return ""
}
