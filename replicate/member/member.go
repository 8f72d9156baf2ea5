// Package member finds the other runnel boxes of a site with hashicorp/serf
// (SWIM gossip) and tells the rest of replicate who is there.
//
// Every box is one serf member named by its node id. Its tags carry what
// peers need to mirror it: the site, the Kafka address mirrors fetch from,
// an incarnation (a counter the box raises at every start; the origin
// epoch of its partitions) and a boot id (random per process). Members of
// another site are refused at merge.
//
// Node ids are unique on a site. Two live boxes with one node id are
// refused loudly: a box that finds, right after joining, another live box
// answering to its own node id (a serf query answered with a different
// boot id) does not start. A box that restarts with the same node id at a
// new address rejoins once the old address is declared failed (memberlist
// lets a dead node's name be reclaimed after DeadNodeReclaimTime; serf's
// own name-conflict resolution, which shuts the losing node down quietly,
// is off).
package member

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// DefaultPort is serf's usual gossip port.
const DefaultPort = 7946

// Tag names (never change: peers of different versions read them).
const (
	tagSite  = "site"
	tagKafka = "kafka"
	tagInc   = "inc"
	tagBoot  = "boot"
	tagData  = "dd"
	tagRoute = "routes"
)

const clashQuery = "runnel-node-id"

// Errors.
var (
	ErrInvalidOptions = errors.New("member: invalid options")
	// ErrNodeIDClash: another live box answers to this node id.
	ErrNodeIDClash = errors.New("member: node id in use by another live box")
	// ErrInsecure: a gossip address reachable from the network without a key.
	ErrInsecure = errors.New("member: gossip without a key on a non-loopback address")
)

// Options configures a Membership. NodeID, BindAddr and KafkaAddr are
// required.
type Options struct {
	// NodeID names this box on the site: 1-64 characters of
	// [A-Za-z0-9_-] (it prefixes topic names on peers).
	NodeID string
	// Site is carried as a tag; members of another site are refused.
	Site string
	// BindAddr is the gossip address, host:port (UDP and TCP). An empty
	// or unspecified host binds every interface and advertises the
	// address memberlist picks.
	BindAddr string
	// Join lists host:port (DNS names allowed) of peers to join at start;
	// more are retried in the background until one answers.
	Join []string
	// Keys is the serf keyring (16, 24 or 32-byte AES keys, the first is
	// used to encrypt). Empty = gossip in the clear.
	Keys [][]byte
	// Insecure allows gossip without Keys on a non-loopback address.
	Insecure bool
	// KafkaAddr is where peers fetch this box's partitions; an empty or
	// unspecified host is replaced by the advertised gossip address.
	KafkaAddr string
	// Incarnation is this start's number (raised at every start).
	Incarnation uint64
	// DataDirID names this box's data dir (made with it): a box back with
	// a new one lost its data.
	DataDirID string
	// Routes is a digest of this box's forwarding configuration
	// (forward.RoutesHash), carried as a tag: a peer forwards this box's
	// partitions only with the same routes. "" = not advertised.
	Routes string
	// SnapshotDir keeps serf's snapshot (known peers, to rejoin after a
	// restart). "" = none.
	SnapshotDir string
	// ClashCheck is how long the start waits for another live box
	// answering to NodeID (default 3s; <0 = no check).
	ClashCheck time.Duration
	// Logger gets one line per membership change; nil = slog.Default().
	Logger *slog.Logger
	// Tune, when set, adjusts the memberlist config before start (tests
	// shorten the failure detection; production keeps the LAN defaults).
	Tune func(*memberlist.Config)
}

// ValidNodeID reports whether id can name a box on a site.
func ValidNodeID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("node id %q: 1-64 characters of [A-Za-z0-9_-]", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("node id %q: 1-64 characters of [A-Za-z0-9_-] (it prefixes mirrored topic names)", id)
		}
	}
	return nil
}

// Validate reports the first invalid field.
func (o *Options) Validate() error {
	if err := ValidNodeID(o.NodeID); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidOptions, err)
	}
	host, _, err := net.SplitHostPort(o.BindAddr)
	if err != nil {
		return fmt.Errorf("%w: gossip address %q: %v", ErrInvalidOptions, o.BindAddr, err)
	}
	if _, _, err := net.SplitHostPort(o.KafkaAddr); err != nil {
		return fmt.Errorf("%w: Kafka address %q: %v", ErrInvalidOptions, o.KafkaAddr, err)
	}
	for _, k := range o.Keys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("%w: gossip key of %d bytes (want 16, 24 or 32)", ErrInvalidOptions, n)
		}
	}
	if len(o.Keys) == 0 && !o.Insecure && !isLoopback(host) {
		return fmt.Errorf("%w: %s (give --gossip-key-file, or --gossip-insecure on a trusted network)", ErrInsecure, o.BindAddr)
	}
	for _, j := range o.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return fmt.Errorf("%w: join address %q: %v", ErrInvalidOptions, j, err)
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ReadKeyFile reads a serf keyring file: one base64 key a line (16, 24 or
// 32 bytes decoded; `serf keygen` / `openssl rand -base64 32` make one),
// the first is the one used to encrypt; blank lines and # comments are
// skipped.
func ReadKeyFile(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: not base64: %v", path, line, err)
		}
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("%s line %d: key of %d bytes (want 16, 24 or 32)", path, line, n)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no key", path)
	}
	return keys, nil
}

// BrokerID maps a node id to the int32 Kafka broker id every box computes
// alike (FNV-1a, 31 bits).
func BrokerID(nodeID string) int32 {
	h := fnv.New32a()
	io.WriteString(h, nodeID)
	return int32(h.Sum32() & 0x7fffffff)
}

// State is a member's state as serf sees it.
type State string

const (
	Alive   State = "alive"
	Leaving State = "leaving"
	Left    State = "left"
	Failed  State = "failed"
)

// Member is one box of the site.
type Member struct {
	NodeID      string
	BrokerID    int32
	Site        string
	KafkaAddr   string
	GossipAddr  string
	Incarnation uint64
	Boot        string
	DataDir     string // the data dir id
	Routes      string // digest of its forwarding configuration ("" = unknown)
	State       State
	// LastContact is now for an alive member, else when it stopped being.
	LastContact time.Time
	Self        bool
}

// Membership is this box's view of the site.
type Membership struct {
	opts   Options
	logger *slog.Logger
	serf   *serf.Serf
	events chan serf.Event
	boot   string
	kafka  string // advertised Kafka address

	// mu guards the fields below.
	mu      sync.Mutex
	changed chan struct{} // closed at the next membership change
	since   map[string]time.Time

	done chan struct{}
	wg   sync.WaitGroup
}

// Start creates the serf member, joins opts.Join and checks that no other
// live box answers to this node id (ErrNodeIDClash). The returned
// Membership runs until Close.
func Start(ctx context.Context, opts Options) (*Membership, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ClashCheck == 0 {
		opts.ClashCheck = 3 * time.Second
	}
	m := &Membership{
		opts:    opts,
		logger:  opts.Logger,
		events:  make(chan serf.Event, 256),
		boot:    randomID(),
		changed: make(chan struct{}),
		since:   map[string]time.Time{},
		done:    make(chan struct{}),
	}
	host, ps, _ := net.SplitHostPort(opts.BindAddr)
	port, err := strconv.Atoi(ps)
	if err != nil {
		return nil, fmt.Errorf("%w: gossip port %q", ErrInvalidOptions, ps)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	conf := serf.DefaultConfig()
	conf.NodeName = opts.NodeID
	conf.EventCh = m.events
	conf.EnableNameConflictResolution = false
	conf.RejoinAfterLeave = true
	conf.LogOutput = &logWriter{logger: opts.Logger}
	conf.Merge = &mergeCheck{m: m}
	ml := memberlist.DefaultLANConfig()
	ml.Name = opts.NodeID
	ml.BindAddr, ml.BindPort = host, port
	ml.AdvertisePort = port
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		ml.AdvertiseAddr = host
	}
	ml.LogOutput = conf.LogOutput
	// A box back at a new address takes its name over once the old
	// address was declared dead (memberlist #157).
	ml.DeadNodeReclaimTime = time.Second
	if len(opts.Keys) > 0 {
		kr, err := memberlist.NewKeyring(opts.Keys, opts.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("%w: keyring: %v", ErrInvalidOptions, err)
		}
		ml.Keyring = kr
		ml.GossipVerifyIncoming, ml.GossipVerifyOutgoing = true, true
	}
	if opts.Tune != nil {
		opts.Tune(ml)
	}
	conf.MemberlistConfig = ml
	if opts.SnapshotDir != "" {
		if err := os.MkdirAll(opts.SnapshotDir, 0o755); err != nil {
			return nil, err
		}
		conf.SnapshotPath = filepath.Join(opts.SnapshotDir, "serf.snapshot")
	}
	conf.Tags = m.tags("")
	s, err := serf.Create(conf)
	if err != nil {
		return nil, fmt.Errorf("member: start gossip on %s: %v", opts.BindAddr, err)
	}
	m.serf = s
	m.kafka = advertise(opts.KafkaAddr, s.LocalMember().Addr)
	if err := s.SetTags(m.tags(m.kafka)); err != nil {
		s.Shutdown()
		return nil, fmt.Errorf("member: set tags: %v", err)
	}
	m.wg.Add(1)
	go m.run()
	joined := 0
	if len(opts.Join) > 0 {
		joined, err = s.Join(opts.Join, true)
		if err != nil && joined == 0 {
			m.logger.Warn("gossip: no peer answered yet; retrying in the background", "join", strings.Join(opts.Join, ","), "err", err)
			m.wg.Add(1)
			go m.rejoin()
		}
	}
	if joined > 0 {
		m.wg.Add(1)
		go m.settle()
	}
	if joined > 0 && opts.ClashCheck > 0 {
		if err := m.checkClash(ctx); err != nil {
			m.Close()
			return nil, err
		}
	}
	m.logger.Info("gossip started", "gossip_addr", m.gossipAddr(), "kafka", m.kafka, "incarnation", opts.Incarnation, "peers_joined", joined, "encrypted", len(opts.Keys) > 0)
	return m, nil
}

func (m *Membership) tags(kafka string) map[string]string {
	t := map[string]string{
		tagInc:  strconv.FormatUint(m.opts.Incarnation, 10),
		tagBoot: m.boot,
	}
	if m.opts.DataDirID != "" {
		t[tagData] = m.opts.DataDirID
	}
	if m.opts.Site != "" {
		t[tagSite] = m.opts.Site
	}
	if kafka != "" {
		t[tagKafka] = kafka
	}
	if m.opts.Routes != "" {
		t[tagRoute] = m.opts.Routes
	}
	return t
}

// advertise fills an empty or unspecified host of addr with ip.
func advertise(addr string, ip net.IP) string {
	host, port, _ := net.SplitHostPort(addr)
	if h := net.ParseIP(host); host == "" || h != nil && h.IsUnspecified() {
		host = ip.String()
	}
	return net.JoinHostPort(host, port)
}

func (m *Membership) gossipAddr() string {
	lm := m.serf.LocalMember()
	return net.JoinHostPort(lm.Addr.String(), strconv.Itoa(int(lm.Port)))
}

// rejoin retries the join addresses until one answers or Close.
func (m *Membership) rejoin() {
	defer m.wg.Done()
	wait := time.Second
	for {
		select {
		case <-m.done:
			return
		case <-time.After(wait):
		}
		if n, err := m.serf.Join(m.opts.Join, true); err == nil || n > 0 {
			m.logger.Info("gossip: joined", "join", strings.Join(m.opts.Join, ","), "peers_joined", n)
			return
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// Settling: a box back at a new address under its node id is refused by
// peers that still hold its old address alive (memberlist keeps the first
// address of a name until it is declared dead) and learns nothing of it:
// the peers gossip the old address's death to the old address. Its state
// would reach them at the next push-pull (30 s on a LAN). So for a while
// after start it joins again, each a push-pull that lets the peers take
// the new address once the old one is dead (DeadNodeReclaimTime).
const (
	settleEvery = 3 * time.Second
	settleFor   = time.Minute
)

// settle re-joins the join addresses every settleEvery for settleFor.
func (m *Membership) settle() {
	defer m.wg.Done()
	t := time.NewTicker(settleEvery)
	defer t.Stop()
	end := time.Now().Add(settleFor)
	for time.Now().Before(end) {
		select {
		case <-m.done:
			return
		case <-t.C:
		}
		m.serf.Join(m.opts.Join, true)
	}
}

// checkClash asks the site who answers to this node id; any answer with
// another boot id is another live box.
func (m *Membership) checkClash(ctx context.Context) error {
	resp, err := m.serf.Query(clashQuery, []byte(m.boot), &serf.QueryParam{FilterNodes: []string{m.opts.NodeID}, Timeout: m.opts.ClashCheck})
	if err != nil {
		return fmt.Errorf("member: node id check: %v", err)
	}
	defer resp.Close()
	for {
		select {
		case r, ok := <-resp.ResponseCh():
			if !ok {
				return nil
			}
			boot, addr, _ := strings.Cut(string(r.Payload), " ")
			if boot != m.boot {
				m.logger.Error("gossip: node id already in use by another live box; refusing to start", "peer", m.opts.NodeID, "peer_addr", addr)
				return fmt.Errorf("%w: %q answers from %s (give this box another --node-id)", ErrNodeIDClash, m.opts.NodeID, addr)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// run consumes serf events: one log line per membership change, answers
// to the node-id query, and wakes Changed waiters.
func (m *Membership) run() {
	defer m.wg.Done()
	for {
		select {
		case <-m.done:
			return
		case e := <-m.events:
			switch ev := e.(type) {
			case serf.MemberEvent:
				m.memberEvent(ev)
			case *serf.Query:
				// Our own query is not answered here: serf keeps one
				// answer per node name, and this one would hide the
				// other box's.
				if ev.Name == clashQuery && string(ev.Payload) != m.boot {
					m.logger.Error("gossip: another box starting with this node id was refused", "peer", m.opts.NodeID)
					ev.Respond([]byte(m.boot + " " + m.gossipAddr()))
				}
			}
		}
	}
}

func (m *Membership) memberEvent(ev serf.MemberEvent) {
	now := time.Now()
	m.mu.Lock()
	for _, mem := range ev.Members {
		m.since[mem.Name] = now
	}
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	for _, mem := range ev.Members {
		if mem.Name == m.opts.NodeID {
			continue
		}
		attrs := []any{"peer", mem.Name, "peer_addr", net.JoinHostPort(mem.Addr.String(), strconv.Itoa(int(mem.Port))), "kafka", mem.Tags[tagKafka], "incarnation", mem.Tags[tagInc]}
		switch ev.Type {
		case serf.EventMemberJoin:
			m.logger.Info("peer joined", attrs...)
		case serf.EventMemberLeave:
			m.logger.Info("peer left", attrs...)
		case serf.EventMemberFailed:
			m.logger.Warn("peer failed", attrs...)
		case serf.EventMemberUpdate:
			m.logger.Info("peer updated", attrs...)
		case serf.EventMemberReap:
			m.logger.Info("peer reaped (forgotten)", attrs...)
		}
	}
}

// Changed returns a channel closed at the next membership change.
func (m *Membership) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// NodeID is this box's node id.
func (m *Membership) NodeID() string { return m.opts.NodeID }

// KafkaAddr is the Kafka address this box advertises to peers.
func (m *Membership) KafkaAddr() string { return m.kafka }

// Members lists every member known (this box included), sorted by node id.
func (m *Membership) Members() []Member {
	now := time.Now()
	ms := m.serf.Members()
	m.mu.Lock()
	since := make(map[string]time.Time, len(m.since))
	for k, v := range m.since {
		since[k] = v
	}
	m.mu.Unlock()
	out := make([]Member, 0, len(ms))
	for _, sm := range ms {
		mem := Member{
			NodeID:     sm.Name,
			BrokerID:   BrokerID(sm.Name),
			Site:       sm.Tags[tagSite],
			KafkaAddr:  sm.Tags[tagKafka],
			GossipAddr: net.JoinHostPort(sm.Addr.String(), strconv.Itoa(int(sm.Port))),
			Boot:       sm.Tags[tagBoot],
			DataDir:    sm.Tags[tagData],
			Routes:     sm.Tags[tagRoute],
			Self:       sm.Name == m.opts.NodeID,
		}
		mem.Incarnation, _ = strconv.ParseUint(sm.Tags[tagInc], 10, 64)
		switch sm.Status {
		case serf.StatusAlive:
			mem.State, mem.LastContact = Alive, now
		case serf.StatusLeaving:
			mem.State, mem.LastContact = Leaving, now
		case serf.StatusLeft:
			mem.State, mem.LastContact = Left, since[sm.Name]
		default:
			mem.State, mem.LastContact = Failed, since[sm.Name]
		}
		out = append(out, mem)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// Close leaves the site (peers see "left", not "failed") and stops gossip.
// Idempotent.
func (m *Membership) Close() error {
	select {
	case <-m.done:
		return nil
	default:
	}
	close(m.done)
	err := m.serf.Leave()
	if e := m.serf.Shutdown(); err == nil {
		err = e
	}
	m.wg.Wait()
	return err
}

// mergeCheck refuses members of another site.
type mergeCheck struct{ m *Membership }

func (c *mergeCheck) NotifyMerge(members []*serf.Member) error {
	for _, mem := range members {
		if site := mem.Tags[tagSite]; site != c.m.opts.Site {
			return fmt.Errorf("member %s is of site %q, this box of site %q", mem.Name, site, c.m.opts.Site)
		}
		if mem.Name != c.m.opts.NodeID {
			if err := ValidNodeID(mem.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// logWriter turns serf and memberlist log lines ("[LEVEL] text") into slog
// records: warnings and errors as such, the rest at debug.
type logWriter struct{ logger *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	s := strings.TrimSpace(string(p))
	// Drop the standard logger's date and time.
	if i := strings.Index(s, "["); i >= 0 {
		s = s[i:]
	}
	switch {
	case strings.HasPrefix(s, "[ERR]"):
		w.logger.Error("gossip: " + strings.TrimSpace(s[5:]))
	case strings.HasPrefix(s, "[WARN]"):
		w.logger.Warn("gossip: " + strings.TrimSpace(s[6:]))
	default:
		w.logger.Debug("gossip: " + s)
	}
	return len(p), nil
}

func randomID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return hex.EncodeToString(b[:])
}
