// Package cluster lets several sluice nodes share per-destination
// throttle state through Redis (issue 15), so that a fleet respects a
// receiver's limits as one sender: concurrency slots are leases with a
// TTL, the rate is one GCRA bucket, a pause and its single half-open
// probe are cluster-wide, and what one node learns (levels, pauses,
// greylisting windows, runtime limits, suppressions, the sender-wide
// alarm) the others act on within one heartbeat.
//
// The policy logic stays in package policy: this package only carries
// shared counters and decisions. Gate wraps a *policy.Policy with the
// scheduler's interface; every question goes to the local policy first
// (pauses, local slots, the control law), then to Redis for the cluster's
// share. When Redis is unreachable a node falls back to local state, each
// destination's limits divided by the last known number of live nodes,
// and rejoins when Redis answers again.
//
// Promises:
//   - Redis is asked with a short timeout (half a heartbeat) and never
//     while it is known to be down: a dead Redis slows nothing but the
//     one call that finds it so.
//   - A node never holds a slot it did not take in Redis, except while
//     down (its share) and the sessions still open across a transition,
//     which re-register on rejoin.
//   - No secret is logged: the Redis URL is logged without its password.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/policy"
)

// Options configures a Node. They are complete: New fills nothing in
// (the config layer holds the defaults).
type Options struct {
	URL       string        // redis:// or rediss:// (TLS); user, password and database in the URL
	NodeID    string        // this node's name in the registry and in its lease ids
	Prefix    string        // of every key
	LeaseTTL  time.Duration // a slot not renewed for this long comes free; also the liveness bound of a node
	Heartbeat time.Duration // registry, lease renewal and sync period
	Version   string        // shown by `sluice cluster status`

	Policy *policy.Policy
	// QueueSize reports this node's queued recipients for the registry.
	QueueSize func() int
	// StateFile keeps the last known number of live nodes across
	// restarts ("" = none): a node that starts while Redis is down
	// falls back to its share of the fleet it last saw, not to all of
	// each destination's limits.
	StateFile string
	// Suppress applies a suppression another node learned to this
	// node's list; nil = suppressions are not shared.
	Suppress func(addr, reason string) error

	Now    func() time.Time // nil = time.Now
	Logger *slog.Logger     // nil = slog.Default()
}

func (o *Options) check() error {
	var errs []error
	if o.URL == "" || o.NodeID == "" || o.Prefix == "" || o.Policy == nil {
		errs = append(errs, errors.New("cluster: URL, NodeID, Prefix and Policy are required"))
	}
	if o.LeaseTTL <= 0 || o.Heartbeat <= 0 || o.Heartbeat >= o.LeaseTTL {
		errs = append(errs, fmt.Errorf("cluster: heartbeat (%v) must be positive and shorter than lease_ttl (%v)", o.Heartbeat, o.LeaseTTL))
	}
	return errors.Join(errs...)
}

// stateTTL is how long a destination's shared hash outlives its last
// update: learned state of a destination nobody sends to goes, as the
// local policy drops idle state.
const stateTTL = 7 * 24 * time.Hour

// suppressKeep bounds the shared suppression log (entries; each node
// keeps its own durable list).
const suppressKeep = 100000

// Node is this process's membership of the cluster. Create it with New,
// run Run in a goroutine, and wrap the policy with Gate.
type Node struct {
	o    Options
	rdb  *redis.Client
	log  *slog.Logger
	pol  *policy.Policy
	now  func() time.Time
	tmo  time.Duration
	poll time.Duration
	tag  string // this run's lease id prefix: node id and a random part

	up   atomic.Bool
	live atomic.Int64 // last known live nodes (≥ 1)
	rank atomic.Int64 // this node's place among them, by node id (0-based)
	// holdUntil: no new session before (unix ns) after a transition
	// (see hold).
	holdUntil atomic.Int64
	seq       atomic.Uint64
	trips     atomic.Uint64 // Redis round trips
	falls     atomic.Uint64 // transitions to fallback
	wasUp     bool          // under mu: for the transition log lines
	everSeen  bool          // under mu: Redis answered once

	pub [pubStripes]sync.Mutex // per destination (striped): publishes in the order of the observations (see Gate.Observe)

	mu       sync.Mutex
	leases   map[string][]string // dest -> lease ids held (last = newest)
	active   map[string]int      // dest -> sessions open here (with or without a lease)
	shares   map[string]*share   // dest -> fallback state
	epoch    string              // the cluster epoch this node synced with
	rejoin   bool                // re-add leases and re-seed at the next heartbeat
	pending  []suppEntry         // suppressions to publish
	echo     map[string]int      // addresses being applied from the log (not to publish back)
	suppSeq  int64               // last log entry applied
	limitsAt map[string]policy.Limits
	seen     map[string]int       // dest -> the fleet's sessions, as last seen
	views    map[string]cached    // dest -> the cluster's state as last read (Ready)
	spares   map[string]spare     // dest -> rate tokens taken ahead
	wanted   map[string]wantState // dest -> whether another node waits for a slot (Yield)
	alarm    Alarm
}

// Alarm is the cluster's sender-wide alarm as last published.
type Alarm struct {
	Node   string    `json:"node"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

type suppEntry struct {
	Addr   string `json:"addr"`
	Reason string `json:"reason"`
	Node   string `json:"node"`
	At     int64  `json:"at"`
}

// New connects to nothing yet (Run does): it parses the URL and checks
// the options.
func New(o Options) (*Node, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	rdb, tmo, err := dial(o)
	if err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	n := &Node{
		o: o, rdb: rdb, log: o.Logger, pol: o.Policy, now: o.Now, tmo: tmo,
		poll:   max(o.Heartbeat/8, 10*time.Millisecond),
		tag:    o.NodeID + "/" + hex.EncodeToString(rnd[:]),
		leases: map[string][]string{}, active: map[string]int{}, shares: map[string]*share{},
		echo: map[string]int{}, limitsAt: map[string]policy.Limits{},
		seen: map[string]int{}, wanted: map[string]wantState{}, views: map[string]cached{}, spares: map[string]spare{},
	}
	n.live.Store(1)
	if o.StateFile != "" {
		if b, err := os.ReadFile(o.StateFile); err == nil {
			f := strings.Fields(string(b))
			if len(f) == 2 {
				v, err1 := strconv.Atoi(f[0])
				r, err2 := strconv.Atoi(f[1])
				if err1 == nil && err2 == nil && v > 0 && r >= 0 && r < v {
					n.live.Store(int64(v))
					n.rank.Store(int64(r))
				}
			}
		}
	}
	return n, nil
}

// transitionHold is how long a node opens no new session after it falls
// back or rejoins: long enough for every other node to notice the same
// transition (each talks to Redis at least once a heartbeat) and for the
// sessions above the new shares to drain, so that the receiver never
// sees the old and the new allotments at once (no storm either way).
func (n *Node) transitionHold() time.Duration { return 2 * n.o.Heartbeat }

// holding reports whether new sessions wait for a transition to settle,
// and until when.
func (n *Node) holding(now time.Time) (time.Time, bool) {
	t := time.Unix(0, n.holdUntil.Load())
	return t, now.Before(t)
}

// dial builds the client of o.URL: a redis:// or rediss:// (TLS) URL
// names one server (or a managed Redis's endpoint, which follows its own
// failover); with a master_name query parameter it names Redis Sentinels
// instead (the host, and more in addr= parameters), and the client asks
// them for the current master and follows a failover. Every call has a
// timeout of half a heartbeat and no retry: a node falls back at once
// and its heartbeat finds Redis again.
func dial(o Options) (*redis.Client, time.Duration, error) {
	tmo := o.Heartbeat / 2
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, 0, fmt.Errorf("cluster: redis URL %s: %w", Redact(o.URL), err)
	}
	if u.Query().Has("master_name") {
		fo, err := redis.ParseFailoverURL(o.URL)
		if err != nil {
			return nil, 0, fmt.Errorf("cluster: redis URL %s: %w", Redact(o.URL), err)
		}
		fo.DialTimeout, fo.ReadTimeout, fo.WriteTimeout = tmo, tmo, tmo
		fo.MaxRetries, fo.DialerRetries, fo.PoolSize = -1, 1, 32
		return redis.NewFailoverClient(fo), tmo, nil
	}
	ro, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, 0, fmt.Errorf("cluster: redis URL %s: %w", Redact(o.URL), err)
	}
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = tmo, tmo, tmo
	ro.MaxRetries = -1   // a failed call falls back at once; the heartbeat retries
	ro.DialerRetries = 1 // likewise for a refused connection
	ro.PoolSize = 32
	return redis.NewClient(ro), tmo, nil
}

// quiet silences the client library's own log lines (a refused dial is
// printed to stderr on every attempt): the node logs each transition once.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// Redact is a Redis URL without its password, for logs and status.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	// A Sentinel URL carries the master's password as a parameter.
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// NodeID is this node's name.
func (n *Node) NodeID() string { return n.o.NodeID }

func (n *Node) key(parts ...string) string {
	return n.o.Prefix + strings.Join(parts, ":")
}

// leaseID is a new lease id of this node: its tag and a sequence number
// (Shares reads the node id back from before the first '/').
func (n *Node) leaseID() string { return n.tag + "/" + strconv.FormatUint(n.seq.Add(1), 10) }

func (n *Node) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), n.tmo)
}

// Up reports whether this node uses the shared state now (false: local
// fallback).
func (n *Node) Up() bool { return n.up.Load() }

// LiveNodes is the last known number of live nodes (≥ 1).
func (n *Node) LiveNodes() int { return int(n.live.Load()) }

// Stats are the node's counters, for metrics.
type Stats struct {
	Up         bool
	LiveNodes  int
	Fallbacks  uint64 // transitions to local fallback
	RoundTrips uint64 // Redis round trips
}

func (n *Node) Stats() Stats {
	return Stats{Up: n.Up(), LiveNodes: n.LiveNodes(), Fallbacks: n.falls.Load(), RoundTrips: n.trips.Load()}
}

// failed records a Redis error: the node falls back to local state until
// the heartbeat finds Redis again. Logged once per transition.
func (n *Node) failed(err error) {
	if !n.up.Swap(false) {
		return
	}
	n.falls.Add(1)
	n.holdUntil.Store(n.now().Add(n.transitionHold()).UnixNano())
	n.mu.Lock()
	n.wasUp = false
	n.rejoin = true
	n.mu.Unlock()
	n.log.Warn("cluster: Redis unreachable: falling back to local state, each destination's limits divided by the last known live nodes",
		"redis", Redact(n.o.URL), "live_nodes", n.LiveNodes(), "err", err)
}

// Run keeps the node's heartbeat until ctx ends, then releases this
// node's leases and closes the connection. The first heartbeat runs at
// once.
func (n *Node) Run(ctx context.Context) {
	t := time.NewTicker(n.o.Heartbeat)
	defer t.Stop()
	for {
		n.Beat()
		select {
		case <-ctx.Done():
			n.leave()
			return
		case <-t.C:
		}
	}
}

// leave drops this node's leases and registry entry (a clean shutdown
// frees its slots at once rather than at lease expiry).
func (n *Node) leave() {
	if n.Up() {
		ctx, cancel := n.ctx()
		n.mu.Lock()
		pipe := n.rdb.Pipeline()
		for dest, ids := range n.leases {
			for _, id := range ids {
				releaseScript.Eval(ctx, pipe, []string{n.key("lease", dest), n.key("probe", dest)}, id)
			}
		}
		n.mu.Unlock()
		pipe.HDel(ctx, n.key("nodes"), n.o.NodeID)
		_, _ = pipe.Exec(ctx)
		cancel()
	}
	_ = n.rdb.Close()
}

// nodeInfo is one node's registry entry.
type nodeInfo struct {
	Version string `json:"version"`
	Queue   int    `json:"queue"`
	Seen    int64  `json:"seen"` // ms
	Tag     string `json:"tag"`
}

// Beat is one heartbeat: register this node, count the live ones, renew
// leases, sync runtime limits, suppressions and the alarm, and find Redis
// again after a failure. Exported for tests, which drive it.
func (n *Node) Beat() {
	now := n.now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*n.tmo)
	defer cancel()
	if err := n.beat(ctx, now); err != nil {
		n.failed(err)
		return
	}
	n.mu.Lock()
	back := !n.wasUp
	n.wasUp = true
	first := !n.everSeen
	n.everSeen = true
	n.mu.Unlock()
	n.up.Store(true)
	switch {
	case back && first:
		n.log.Info("cluster: joined", "redis", Redact(n.o.URL), "node", n.o.NodeID, "live_nodes", n.LiveNodes())
	case back:
		n.holdUntil.Store(now.Add(n.transitionHold()).UnixNano())
		n.log.Warn("cluster: Redis reachable again: shared state resumed", "redis", Redact(n.o.URL), "live_nodes", n.LiveNodes())
	}
}

func (n *Node) beat(ctx context.Context, now time.Time) error {
	// The epoch names the data set: a Redis that lost its data (restart
	// without persistence, failover to an empty replica) has a new one,
	// and every node puts back what it holds.
	// SETNX then GET in one pipeline (one round trip): Redis runs them
	// in order, so the GET reads the epoch whoever set it.
	fresh := hex.EncodeToString([]byte(strconv.FormatInt(now.UnixNano(), 36)))
	ep := n.rdb.Pipeline()
	ep.SetNX(ctx, n.key("epoch"), fresh, 0)
	get := ep.Get(ctx, n.key("epoch"))
	n.trips.Add(1)
	if _, err := ep.Exec(ctx); err != nil {
		return err
	}
	epoch := get.Val()
	n.mu.Lock()
	lost := n.epoch != epoch
	if lost {
		n.suppSeq = 0
		if n.epoch != "" {
			// Redis lost its data: the other nodes' sessions are not
			// in it until their next heartbeat.
			n.holdUntil.Store(now.Add(n.transitionHold()).UnixNano())
		}
	}
	readd := lost || n.rejoin
	n.epoch, n.rejoin = epoch, false
	if readd {
		// Sessions opened while Redis was away take a lease now: they
		// count against the cluster's slots until they end.
		for d, a := range n.active {
			for len(n.leases[d]) < a {
				n.leases[d] = append(n.leases[d], n.leaseID())
			}
		}
	}
	leases := make(map[string][]string, len(n.leases))
	for d, ids := range n.leases {
		leases[d] = append([]string(nil), ids...)
	}
	pend := n.pending
	n.pending = nil
	n.mu.Unlock()

	q := 0
	if n.o.QueueSize != nil {
		q = n.o.QueueSize()
	}
	info, _ := json.Marshal(nodeInfo{Version: n.o.Version, Queue: q, Seen: now.UnixMilli(), Tag: n.tag})
	exp := now.Add(n.o.LeaseTTL).UnixMilli()
	pipe := n.rdb.Pipeline()
	pipe.HSet(ctx, n.key("nodes"), n.o.NodeID, info)
	all := pipe.HGetAll(ctx, n.key("nodes"))
	for dest, ids := range leases {
		args := []any{exp, n.o.LeaseTTL.Milliseconds(), b2s(readd)}
		for _, id := range ids {
			args = append(args, id)
		}
		renewScript.Eval(ctx, pipe, []string{n.key("lease", dest), n.key("probe", dest)}, args...)
	}
	if readd {
		// Put back what this node knows where the cluster has nothing:
		// levels of the destinations in use here, runtime limits.
		for _, dest := range n.pol.Names() {
			sh := n.pol.Shared(dest)
			seedScript.Eval(ctx, pipe, []string{n.key("dest", dest)}, sh.Conc, fmtRate(sh.Rate), stateTTL.Milliseconds())
		}
		for dest, l := range n.pol.RuntimeLimits() {
			pipe.HSetNX(ctx, n.key("limits"), dest, fmtLimits(l))
		}
	}
	for _, e := range pend {
		b, _ := json.Marshal(e)
		suppressScript.Eval(ctx, pipe, []string{n.key("suppress"), n.key("suppress", "seq")}, string(b), suppressKeep)
	}
	lim := pipe.HGetAll(ctx, n.key("limits"))
	n.mu.Lock()
	from := n.suppSeq
	n.mu.Unlock()
	supp := pipe.ZRangeByScoreWithScores(ctx, n.key("suppress"), &redis.ZRangeBy{Min: "(" + strconv.FormatInt(from, 10), Max: "+inf"})
	alarm := pipe.Get(ctx, n.key("alarm"))
	n.trips.Add(1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		n.mu.Lock()
		n.pending = append(pend, n.pending...)
		n.rejoin = n.rejoin || readd
		n.mu.Unlock()
		return err
	}
	n.countLive(all.Val(), now)
	n.syncLimits(lim.Val())
	n.applySuppressions(supp.Val())
	var a Alarm
	if b, err := alarm.Bytes(); err == nil {
		_ = json.Unmarshal(b, &a)
	}
	n.mu.Lock()
	n.alarm = a
	n.pruneLocked(now)
	n.mu.Unlock()
	return nil
}

// pruneLocked drops the per-destination copies of destinations this node
// has no session at and has not looked at for a minute: a node that
// mails ten thousand domains keeps state for those in use only. Caller
// holds n.mu.
func (n *Node) pruneLocked(now time.Time) {
	const idle = time.Minute
	for d, c := range n.views {
		if now.Sub(c.at) > idle {
			delete(n.views, d)
		}
	}
	for d, w := range n.wanted {
		if now.Sub(w.read) > idle && now.Sub(w.said) > idle && !w.reading {
			delete(n.wanted, d)
		}
	}
	for d, sp := range n.spares {
		if now.Sub(sp.next) > idle {
			delete(n.spares, d)
		}
	}
	for d := range n.seen {
		if _, ok := n.views[d]; !ok && n.active[d] == 0 {
			delete(n.seen, d)
		}
	}
	for d, sh := range n.shares {
		if n.active[d] == 0 && sh.lim != nil && sh.lim.TokensAt(now) >= float64(sh.lim.Burst()) {
			delete(n.shares, d)
		}
	}
}

func b2s(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// countLive counts the nodes seen within lease_ttl (this one included),
// finds this node's rank among them (by id: every node computes the same
// order, so that the shares of a fallback add up to the limit), keeps
// both in the state file, and drops registry entries a day old.
func (n *Node) countLive(all map[string]string, now time.Time) {
	var ids []string
	for id, v := range all {
		var ni nodeInfo
		if json.Unmarshal([]byte(v), &ni) != nil {
			continue
		}
		age := now.Sub(time.UnixMilli(ni.Seen))
		if age <= n.o.LeaseTTL {
			ids = append(ids, id)
		} else if age > 24*time.Hour {
			ctx, cancel := n.ctx()
			n.rdb.HDel(ctx, n.key("nodes"), id)
			cancel()
		}
	}
	if !slices.Contains(ids, n.o.NodeID) {
		ids = append(ids, n.o.NodeID)
	}
	sort.Strings(ids)
	rank := sort.SearchStrings(ids, n.o.NodeID)
	live := len(ids)
	oldLive, oldRank := n.live.Swap(int64(live)), n.rank.Swap(int64(rank))
	if (oldLive != int64(live) || oldRank != int64(rank)) && n.o.StateFile != "" {
		tmp := n.o.StateFile + ".tmp"
		err := os.WriteFile(tmp, []byte(strconv.Itoa(live)+" "+strconv.Itoa(rank)+"\n"), 0o600)
		if err == nil {
			err = os.Rename(tmp, n.o.StateFile)
		}
		if err != nil {
			n.log.Warn("cluster: saving the live node count", "err", err)
		}
	}
}

// shareOf is this node's part of limit when the live nodes divide it:
// limit/live each, and one more for the first limit%live nodes by rank,
// so that the parts add up to limit exactly (a limit below the node
// count leaves some nodes nothing rather than exceed it).
func (n *Node) shareOf(limit int) int {
	live, rank := n.LiveNodes(), int(n.rank.Load())
	s := limit / live
	if rank < limit%live {
		s++
	}
	return s
}

// NodeStatus is one node of `sluice cluster status`.
type NodeStatus struct {
	ID            string        `json:"id"`
	Version       string        `json:"version"`
	QueueSize     int           `json:"queue_size"`
	LastHeartbeat time.Time     `json:"last_heartbeat"`
	Age           time.Duration `json:"age"`
	Live          bool          `json:"live"`
	Self          bool          `json:"self"`
}

// Status is the cluster as this node sees it.
type Status struct {
	Node      string       `json:"node"`
	Redis     string       `json:"redis"` // URL without password
	RedisUp   bool         `json:"redis_up"`
	LiveNodes int          `json:"live_nodes"`
	Nodes     []NodeStatus `json:"nodes"`
	Alarm     *Alarm       `json:"alarm,omitempty"`
}

// Status reads the registry (one round trip; a Redis down shows as
// such, with this node alone).
func (n *Node) Status(ctx context.Context) Status {
	now := n.now()
	st := Status{Node: n.o.NodeID, Redis: Redact(n.o.URL), RedisUp: n.Up(), LiveNodes: n.LiveNodes()}
	n.mu.Lock()
	if n.alarm.Reason != "" {
		a := n.alarm
		st.Alarm = &a
	}
	n.mu.Unlock()
	var all map[string]string
	if st.RedisUp {
		n.trips.Add(1)
		var err error
		if all, err = n.rdb.HGetAll(ctx, n.key("nodes")).Result(); err != nil {
			n.failed(err)
			st.RedisUp = false
		}
	}
	if all == nil {
		st.Nodes = []NodeStatus{{ID: n.o.NodeID, Version: n.o.Version, Live: true, Self: true, LastHeartbeat: now}}
		return st
	}
	for id, v := range all {
		var ni nodeInfo
		if json.Unmarshal([]byte(v), &ni) != nil {
			continue
		}
		seen := time.UnixMilli(ni.Seen)
		st.Nodes = append(st.Nodes, NodeStatus{ID: id, Version: ni.Version, QueueSize: ni.Queue, LastHeartbeat: seen,
			Age: now.Sub(seen), Live: now.Sub(seen) <= n.o.LeaseTTL, Self: id == n.o.NodeID})
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].ID < st.Nodes[j].ID })
	return st
}
