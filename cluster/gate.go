package cluster

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"sluice/policy"
)

// Gate is the scheduler's policy in cluster mode: *policy.Policy with
// the session and rate gates shared through Redis. Every question goes
// to the local policy first (the control law, pauses, this node's
// sessions), then to the cluster's share.
type Gate struct {
	*policy.Policy
	n *Node
}

// Gate wraps the node's policy.
func (n *Node) Gate() *Gate { return &Gate{Policy: n.pol, n: n} }

// Node is the cluster membership behind g.
func (g *Gate) Node() *Node { return g.n }

// share is a destination's fallback state while Redis is away: its rate
// divided by the live nodes.
type share struct {
	r   rate.Limit
	lim *rate.Limiter
}

// view is a destination as the cluster holds it.
type view struct {
	leases int           // unexpired leases, all nodes
	sh     policy.Shared // the shared hash, parsed
	known  bool          // the hash has levels
	probe  string        // lease id holding the probe token, "" = none
	tat    int64         // GCRA theoretical arrival time (µs), 0 = none
}

// unexpired is the lower bound (exclusive) of the lease scores still in
// force at now.
func unexpired(now time.Time) string { return "(" + strconv.FormatInt(now.UnixMilli(), 10) }

func msTime(s string) time.Time {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// parseShared reads a destination's hash (HGETALL, as a map or as the
// flat list a script returns).
func parseShared(m map[string]string) (policy.Shared, bool) {
	var s policy.Shared
	s.Conc, _ = strconv.Atoi(m["conc"])
	if r, err := strconv.ParseFloat(m["rate"], 64); err == nil && r > 0 {
		s.Rate = rate.Limit(r)
	}
	s.ConcCut, s.RateCut = msTime(m["conc_cut"]), msTime(m["rate_cut"])
	s.PausedUntil = msTime(m["paused"])
	s.HalfOpen = m["half"] == "1"
	if v, err := strconv.ParseInt(m["grey_lo"], 10, 64); err == nil {
		s.GreyLo = time.Duration(v) * time.Millisecond
	}
	if v, err := strconv.ParseInt(m["grey_hi"], 10, 64); err == nil {
		s.GreyHi = time.Duration(v) * time.Millisecond
	}
	_, known := m["conc"]
	return s, known
}

func flatMap(v any) map[string]string {
	l, _ := v.([]any)
	m := make(map[string]string, len(l)/2)
	for i := 0; i+1 < len(l); i += 2 {
		k, _ := l[i].(string)
		s, _ := l[i+1].(string)
		m[k] = s
	}
	return m
}

// view reads dest's shared state in one round trip; a destination the
// cluster knows nothing of is seeded with this node's levels.
func (n *Node) view(dest string, now time.Time) (view, error) {
	ctx, cancel := n.ctx()
	defer cancel()
	pipe := n.rdb.Pipeline()
	lc := pipe.ZCount(ctx, n.key("lease", dest), unexpired(now), "+inf")
	h := pipe.HGetAll(ctx, n.key("dest", dest))
	pr := pipe.Get(ctx, n.key("probe", dest))
	tat := pipe.Get(ctx, n.key("rate", dest))
	n.trips.Add(1)
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return view{}, err
	}
	var v view
	v.leases = int(lc.Val())
	v.sh, v.known = parseShared(h.Val())
	v.probe = pr.Val()
	v.tat, _ = strconv.ParseInt(tat.Val(), 10, 64)
	if !v.known {
		sh := n.pol.Shared(dest)
		n.trips.Add(1)
		res, err := seedScript.Run(ctx, n.rdb, []string{n.key("dest", dest)}, sh.Conc, fmtRate(sh.Rate), stateTTL.Milliseconds()).Result()
		if err != nil {
			return view{}, err
		}
		v.sh, v.known = parseShared(flatMap(res))
	}
	return v, nil
}

// viewFresh is how long Ready answers from the cluster's state as last
// read: the scheduler asks after every job a session takes, and Admit,
// not Ready, takes a slot (so a stale view costs at most a refused
// Admit). A slot this node takes or frees, or a change it publishes,
// drops the copy at once.
const viewFresh = 100 * time.Millisecond

type cached struct {
	v  view
	at time.Time
}

func (n *Node) cachedView(dest string, now time.Time) (view, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.views[dest]
	if !ok || now.Sub(c.at) >= viewFresh || now.Before(c.at) {
		return view{}, false
	}
	return c.v, true
}

func (n *Node) keepView(dest string, v view, now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.views[dest] = cached{v: v, at: now}
}

func (n *Node) dropView(dest string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.views, dest)
}

// gcraParams are the emission interval and tolerance (µs) of rate r: the
// burst is the local bucket's (policy.Burst).
func gcraParams(r rate.Limit) (T, tau float64) {
	T = 1e6 / float64(r)
	return T, float64(policy.Burst(r)-1) * T
}

// Ready answers for the cluster: the local answer (pauses, this node's
// sessions, the local bucket), bounded by the cluster's free slots, its
// single probe and its rate bucket. When the cluster is full it says to
// ask again shortly (a slot another node frees is not announced).
func (g *Gate) Ready(name string) (int, time.Time) {
	n := g.n
	now := n.now()
	if !n.Up() {
		return g.fallbackReady(name, now)
	}
	v, ok := n.cachedView(name, now)
	if !ok {
		var err error
		if v, err = n.view(name, now); err != nil {
			n.failed(err)
			return g.fallbackReady(name, now)
		}
		n.keepView(name, v, now)
	}
	sh := g.Policy.Adopt(name, v.sh)
	k, at := g.Policy.Ready(name)
	if k == 0 {
		return 0, at
	}
	if t, ok := n.holding(now); ok {
		return 0, t
	}
	if v.sh.HalfOpen && !v.sh.PausedUntil.After(now) {
		if v.probe != "" {
			return 0, now.Add(n.poll)
		}
		k = 1
	}
	free := sh.Conc - v.leases
	n.noteLeases(name, v.leases)
	if free <= 0 {
		n.want(name)
		return 0, now.Add(n.poll)
	}
	k = min(k, free)
	if sh.Rate > 0 && v.tat > 0 {
		_, tau := gcraParams(sh.Rate)
		if next := float64(v.tat) - tau; next > float64(now.UnixMicro()) {
			return 0, time.UnixMicro(int64(math.Ceil(next)))
		}
	}
	return k, time.Time{}
}

// Admit takes a local slot, then a lease in Redis (the probe token too
// when the destination is half-open); refused by the cluster, the local
// slot is given back.
func (g *Gate) Admit(name string) (bool, time.Time) {
	n := g.n
	now := n.now()
	if !n.Up() {
		return g.fallbackAdmit(name, now)
	}
	if t, ok := n.holding(now); ok {
		return false, t
	}
	ok, at := g.Policy.Admit(name)
	if !ok {
		return ok, at
	}
	n.dropView(name)
	sh := g.Policy.Shared(name)
	probe := sh.HalfOpen && !sh.PausedUntil.After(now)
	id := n.leaseID()
	ctx, cancel := n.ctx()
	defer cancel()
	n.trips.Add(1)
	res, err := acquireScript.Run(ctx, n.rdb, []string{n.key("lease", name), n.key("probe", name)},
		now.UnixMilli(), now.Add(n.o.LeaseTTL).UnixMilli(), id, sh.Conc, b2s(probe), n.o.LeaseTTL.Milliseconds()).Int64Slice()
	if err != nil {
		// The session goes on this node's share: it is counted here
		// and registered in Redis on rejoin.
		n.failed(err)
		n.hold(name, "")
		return true, time.Time{}
	}
	n.noteLeases(name, int(res[1]))
	if res[0] != 1 {
		n.log.Debug("cluster: no slot", "dest", name, "level", sh.Conc, "leases", res[1], "probe", probe)
		g.Policy.Release(name)
		n.want(name)
		return false, now.Add(n.poll)
	}
	n.hold(name, id)
	return true, time.Time{}
}

// hold counts a session open here, with its lease id ("" = none: taken
// while Redis was away).
func (n *Node) hold(dest, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.active[dest]++
	if id != "" {
		n.leases[dest] = append(n.leases[dest], id)
	}
}

// drop ends a session here and returns a lease id to release ("" = none).
func (n *Node) drop(dest string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := n.active[dest] - 1
	if a <= 0 {
		delete(n.active, dest)
	} else {
		n.active[dest] = a
	}
	ids := n.leases[dest]
	if len(ids) == 0 || len(ids) <= a {
		// More leases than sessions cannot be; fewer: the session
		// ending had none (taken while Redis was away).
		return ""
	}
	id := ids[len(ids)-1]
	if len(ids) == 1 {
		delete(n.leases, dest)
	} else {
		n.leases[dest] = ids[:len(ids)-1]
	}
	return id
}

func (n *Node) activeAt(dest string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.active[dest]
}

// Release ends a session: the local slot, then the lease.
func (g *Gate) Release(name string) {
	n := g.n
	g.Policy.Release(name)
	n.dropView(name)
	id := n.drop(name)
	if id == "" || !n.Up() {
		return // a lease not released expires within lease_ttl
	}
	ctx, cancel := n.ctx()
	defer cancel()
	n.trips.Add(1)
	if err := releaseScript.Run(ctx, n.rdb, []string{n.key("lease", name), n.key("probe", name)}, id).Err(); err != nil {
		n.failed(err)
	}
}

// Reserve takes a local token (the local control law's quiet after a cut
// and its own bucket), then one of the cluster's GCRA bucket.
func (g *Gate) Reserve(name string) time.Duration {
	n := g.n
	if w := g.Policy.Reserve(name); w > 0 {
		return w
	}
	now := n.now()
	if !n.Up() {
		return g.fallbackReserve(name, now)
	}
	if ok, wait := n.spareToken(name, now); ok {
		return 0
	} else if wait > 0 {
		g.Policy.RateWaited(name)
		return wait
	}
	// An unlimited rate is asked too: the script counts the fleet's
	// pace, which a rate cut needs (see fleet). Tokens come in small
	// batches (tokenBatch): the round trips per message stay low.
	r := g.Policy.Shared(name).Rate
	want := tokenBatch(r)
	ctx, cancel := n.ctx()
	defer cancel()
	n.trips.Add(1)
	res, err := gcraScript.Run(ctx, n.rdb, []string{n.key("rate", name), n.key("pace", name), n.key("dest", name)},
		now.UnixMicro(), fmtRate(r), want).Int64Slice()
	if err != nil {
		n.failed(err)
		return g.fallbackReserve(name, now)
	}
	if res[0] >= 1 {
		first := time.UnixMicro(res[1])
		if r <= 0 || !first.After(now) {
			n.keepTokens(name, int(res[0]), first, r, 1)
			return 0
		}
		// The batch starts a little later (within the burst): every
		// token waits for its own slot.
		n.keepTokens(name, int(res[0]), first, r, 0)
		g.Policy.RateWaited(name)
		return first.Sub(now)
	}
	// The fleet's rate holds mail back: the local law must know it, or
	// it never grows the rate (it grows only a rate that binds).
	g.Policy.RateWaited(name)
	return max(time.Duration(res[1])*time.Microsecond, time.Millisecond)
}

// tokenBatch is how many tokens one Reserve takes from the shared
// bucket at rate r: a fortieth of a second's worth (2 at 100/s, 25 at
// 1,000/s), at least 1, so that a busy destination costs well under one
// round trip per message. The spares are spent within their own time
// (see keepTokens): the fleet's total still never exceeds the rate, and
// a batch is at most half the bucket's burst.
func tokenBatch(r rate.Limit) int {
	if r <= 0 {
		// Unlimited: the script only counts the fleet's pace, and a
		// batch of 32 counts it well enough (within 100 ms).
		return 32
	}
	return max(1, int(float64(r)/40))
}

type spare struct {
	n    int           // tokens left
	next time.Time     // when the next may go
	step time.Duration // one emission interval
}

// keepTokens keeps the k tokens of a batch less the used ones: token i
// is usable i intervals after first (its reserved slot in the bucket).
func (n *Node) keepTokens(dest string, k int, first time.Time, r rate.Limit, used int) {
	if k-used <= 0 {
		return
	}
	var step time.Duration // unlimited: no pacing
	if r > 0 {
		step = time.Duration(float64(time.Second) / float64(r))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.spares[dest] = spare{n: k - used, next: first.Add(step * time.Duration(used)), step: step}
}

// spareTokenLate bounds how late a kept token may still go: one kept
// past its slot by more is dropped rather than add to a burst.
const spareTokenLate = 100 * time.Millisecond

// spareToken takes a kept token when its slot has come (ok), or says how
// long until it comes (wait > 0); neither when none is kept.
func (n *Node) spareToken(dest string, now time.Time) (ok bool, wait time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, have := n.spares[dest]
	if !have || s.n <= 0 || now.Sub(s.next) > spareTokenLate {
		delete(n.spares, dest)
		return false, 0
	}
	if now.Before(s.next) {
		return false, s.next.Sub(now)
	}
	s.n--
	s.next = s.next.Add(s.step)
	n.spares[dest] = s
	return true, 0
}

// Continue is the local answer, and, in the cluster, not while this node
// holds more than its share of a destination whose sessions exceed the
// level (after a cut, the extra sessions drain away across the fleet).
func (g *Gate) Continue(name string) bool {
	if !g.Policy.Continue(name) {
		return false
	}
	n := g.n
	sh := g.Policy.Shared(name)
	mine := n.activeAt(name)
	share := n.shareOf(sh.Conc)
	if !n.Up() {
		// In fallback every node keeps to its share: the sessions
		// above it end after their message.
		return mine <= share
	}
	// The scheduler asks under its lock: the fleet's sessions are the
	// count last seen (Ready, Admit, heartbeat), not a round trip.
	return mine <= max(share, 1) || n.seenLeases(name) <= sh.Conc
}

// noteLeases records the fleet's sessions at dest as last seen.
func (n *Node) noteLeases(dest string, c int) {
	n.mu.Lock()
	n.seen[dest] = c
	n.mu.Unlock()
}

func (n *Node) seenLeases(dest string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.seen[dest]
}

// want marks that this node waits for a slot at dest (one second): the
// other nodes' idle sessions there end (Yield). The mark is renewed at
// most every wantEvery: the scheduler asks Ready after every job a
// session takes, and a SET each time was most of cluster mode's round
// trips while the fleet's slots were full.
func (n *Node) want(dest string) {
	now := n.now()
	n.mu.Lock()
	w := n.wanted[dest]
	if !w.said.IsZero() && now.Sub(w.said) < wantEvery && !now.Before(w.said) {
		n.mu.Unlock()
		return
	}
	w.said = now
	n.wanted[dest] = w
	n.mu.Unlock()
	ctx, cancel := n.ctx()
	defer cancel()
	n.trips.Add(1)
	if err := n.rdb.Set(ctx, n.key("want", dest), n.o.NodeID, time.Second).Err(); err != nil {
		n.failed(err)
	}
}

// Yield reports whether another node waits for a slot at dest, so that
// an idle session here ends (scheduler.Yielder). The scheduler asks
// under its lock: the answer is the one last read, and a read older than
// yieldFresh starts another in the background.
func (g *Gate) Yield(dest string) bool {
	n := g.n
	if !n.Up() {
		return false
	}
	now := n.now()
	n.mu.Lock()
	w := n.wanted[dest]
	refresh := now.Sub(w.read) >= yieldFresh && !w.reading
	if refresh {
		w.reading = true
		n.wanted[dest] = w
	}
	n.mu.Unlock()
	if refresh {
		go n.readWant(dest)
	}
	return w.other
}

// yieldFresh is how old Yield's answer may be.
const yieldFresh = 150 * time.Millisecond

// wantEvery is how often a waiting node renews its mark (its key lives
// one second, so it never lapses while the node waits).
const wantEvery = 500 * time.Millisecond

type wantState struct {
	read    time.Time
	reading bool
	other   bool      // another node waits
	said    time.Time // this node last marked that it waits
}

func (n *Node) readWant(dest string) {
	ctx, cancel := n.ctx()
	defer cancel()
	n.trips.Add(1)
	v, err := n.rdb.Get(ctx, n.key("want", dest)).Result()
	if err != nil && err != redis.Nil {
		n.failed(err)
	}
	n.mu.Lock()
	w := n.wanted[dest]
	w.read, w.reading, w.other = n.now(), false, v != "" && v != n.o.NodeID
	n.wanted[dest] = w
	n.mu.Unlock()
}

// Observe judges the reply locally, then publishes what changed (a cut,
// a raise, a pause, a reopening, the greylisting bracket) and adopts the
// cluster's answer: a cut another node made within the window wins.
func (g *Gate) Observe(name string, o policy.Outcome) policy.Decision {
	n := g.n
	// Only a refusal can be a throttle or a suspension: a 2xx is not
	// classified twice.
	if n.Up() && o.Fleet == nil && (o.Reply.Code >= 400 || o.Reply.Err != nil) {
		switch g.Policy.Classify(o.Reply).Class {
		case policy.ClassThrottle, policy.ClassSuspend:
			// A refusal cuts from what the fleet did, not from this
			// node's share of it.
			if f, err := n.fleet(name); err == nil {
				o.Fleet = &f
			}
		}
	}
	// One destination's observations publish in turn on this node: a
	// change judged after another must not reach Redis before it (a
	// raise from 6 to 7 ahead of the raise from 5 to 6 would be refused
	// and the node would adopt 5).
	mu := &n.pub[stripe(name)]
	mu.Lock()
	defer mu.Unlock()
	before := g.Policy.Shared(name)
	dec := g.Policy.Observe(name, o)
	if dec.Alarm != "" {
		n.publishAlarm(dec.Alarm)
	}
	if !n.Up() {
		return dec
	}
	after := g.Policy.Shared(name)
	now := n.now()
	if after.Rate != before.Rate {
		// Tokens taken at the old rate go back unused: after a cut
		// they would be a burst at the rate just refused.
		n.mu.Lock()
		delete(n.spares, name)
		n.mu.Unlock()
	}
	args, changed := publishArgs(before, after, now, g.Policy.DecreaseWindow())
	if !changed {
		return dec
	}
	n.dropView(name)
	ctx, cancel := n.ctx()
	defer cancel()
	n.trips.Add(1)
	res, err := publishScript.Run(ctx, n.rdb, []string{n.key("dest", name), n.key("probe", name)}, args...).Result()
	if err != nil {
		n.failed(err)
		return dec
	}
	sh, _ := parseShared(flatMap(res))
	g.Policy.Adopt(name, sh)
	return dec
}

// fleet reads what the whole fleet does at dest: its sessions (leases)
// and its pace (tokens taken, per 100 ms slot), one round trip.
func (n *Node) fleet(dest string) (policy.Fleet, error) {
	now := n.now()
	ctx, cancel := n.ctx()
	defer cancel()
	pipe := n.rdb.Pipeline()
	lc := pipe.ZCount(ctx, n.key("lease", dest), unexpired(now), "+inf")
	pc := pipe.HGetAll(ctx, n.key("pace", dest))
	n.trips.Add(1)
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		n.failed(err)
		return policy.Fleet{}, err
	}
	f := policy.Fleet{Sessions: int(lc.Val())}
	f.Pace, f.LongPace = paceOf(pc.Val(), now)
	return f, nil
}

// paceOf reads the pace hash as policy's successRing reads its ring:
// over the last second when it holds at least 20, and over the last 10 s
// from the oldest slot in them.
func paceOf(slots map[string]string, now time.Time) (recent, long rate.Limit) {
	const slot = 100 * time.Millisecond
	cur := now.UnixMicro() / int64(slot/time.Microsecond)
	var rec, total int64
	oldest := cur + 1
	for k, v := range slots {
		s, err1 := strconv.ParseInt(k, 10, 64)
		c, err2 := strconv.ParseInt(v, 10, 64)
		if err1 != nil || err2 != nil || s > cur || s <= cur-100 {
			continue
		}
		total += c
		oldest = min(oldest, s)
		if s > cur-10 {
			rec += c
		}
	}
	if total == 0 {
		return 0, 0
	}
	span := max(now.Sub(time.UnixMicro(oldest*int64(slot/time.Microsecond))), time.Second)
	long = rate.Limit(float64(total) / span.Seconds())
	recent = long
	if rec >= 20 {
		recent = rate.Limit(rec)
	}
	return recent, long
}

// pubStripes is the number of publish locks (Node.pub).
const pubStripes = 64

// stripe picks one of the publish locks for a destination.
func stripe(dest string) int {
	h := uint32(2166136261)
	for i := 0; i < len(dest); i++ {
		h = (h ^ uint32(dest[i])) * 16777619
	}
	return int(h % pubStripes)
}

// rateOp compares rates where 0 is unlimited.
func rateOp(a, b rate.Limit) string {
	inf := func(r rate.Limit) float64 {
		if r <= 0 {
			return math.Inf(1)
		}
		return float64(r)
	}
	switch x, y := inf(a), inf(b); {
	case y < x:
		return "cut"
	case y > x:
		return "raise"
	}
	return ""
}

func publishArgs(before, after policy.Shared, now time.Time, window time.Duration) ([]any, bool) {
	concOp := ""
	switch {
	case after.Conc < before.Conc:
		concOp = "cut"
	case after.Conc > before.Conc:
		concOp = "raise"
	}
	rOp := rateOp(before.Rate, after.Rate)
	var until int64
	if after.PausedUntil.After(before.PausedUntil) && after.PausedUntil.After(now) {
		until = after.PausedUntil.UnixMilli()
	}
	reopen := before.HalfOpen && !after.HalfOpen
	var lo, hi int64
	if after.GreyLo > before.GreyLo {
		lo = after.GreyLo.Milliseconds()
	}
	if after.GreyHi > 0 && after.GreyHi != before.GreyHi {
		hi = after.GreyHi.Milliseconds()
	}
	if concOp == "" && rOp == "" && until == 0 && !reopen && lo == 0 && hi == 0 {
		return nil, false
	}
	return []any{now.UnixMilli(), window.Milliseconds(), stateTTL.Milliseconds(),
		concOp, before.Conc, after.Conc, rOp, fmtRate(before.Rate), fmtRate(after.Rate),
		until, b2s(reopen), lo, hi}, true
}

// The fallback: each destination's limits divided by the last known
// number of live nodes, counted here.

func (n *Node) fallbackLimiter(dest string, r rate.Limit, now time.Time) *rate.Limiter {
	r /= rate.Limit(n.LiveNodes())
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.shares[dest]
	if s == nil {
		s = &share{}
		n.shares[dest] = s
	}
	if s.lim == nil || s.r != r {
		burst := policy.Burst(r)
		if s.lim == nil {
			s.lim = rate.NewLimiter(r, burst)
		} else {
			s.lim.SetLimitAt(now, r)
			s.lim.SetBurstAt(now, burst)
		}
		s.r = r
	}
	return s.lim
}

func (g *Gate) fallbackReady(name string, now time.Time) (int, time.Time) {
	k, at := g.Policy.Ready(name)
	if k == 0 {
		return 0, at
	}
	if t, ok := g.n.holding(now); ok {
		return 0, t
	}
	sh := g.Policy.Shared(name)
	limit := g.n.shareOf(sh.Conc)
	free := limit - g.n.activeAt(name)
	if free <= 0 {
		if limit == 0 {
			// This node's share of a limit below the node count is
			// nothing: look again when Redis may be back.
			return 0, now.Add(g.n.o.Heartbeat)
		}
		return 0, time.Time{} // a Release here frees one
	}
	k = min(k, free)
	if sh.Rate > 0 {
		l := g.n.fallbackLimiter(name, sh.Rate, now)
		if t := l.TokensAt(now); t < 1 {
			wait := time.Duration((1 - t) / float64(l.Limit()) * float64(time.Second))
			return 0, now.Add(max(wait, time.Millisecond))
		}
	}
	return k, time.Time{}
}

func (g *Gate) fallbackAdmit(name string, now time.Time) (bool, time.Time) {
	if t, ok := g.n.holding(now); ok {
		return false, t
	}
	sh := g.Policy.Shared(name)
	if g.n.activeAt(name) >= g.n.shareOf(sh.Conc) {
		return false, time.Time{}
	}
	ok, at := g.Policy.Admit(name)
	if ok {
		g.n.hold(name, "")
	}
	return ok, at
}

func (g *Gate) fallbackReserve(name string, now time.Time) time.Duration {
	r := g.Policy.Shared(name).Rate
	if r <= 0 {
		return 0
	}
	l := g.n.fallbackLimiter(name, r, now)
	res := l.ReserveN(now, 1)
	if !res.OK() {
		return g.n.poll
	}
	d := res.DelayFrom(now)
	if d > 0 {
		res.CancelAt(now)
	}
	return d
}

// Share is one destination's sessions across the cluster: the level, the
// leases held, and how many each node holds.
type Share struct {
	Dest   string         `json:"dest"`
	Level  int            `json:"level"`
	Leases int            `json:"leases"`
	ByNode map[string]int `json:"by_node"`
}

// Shares reads the leases of dests (one round trip).
func (n *Node) Shares(ctx context.Context, dests []string) (map[string]Share, error) {
	out := map[string]Share{}
	if !n.Up() {
		return out, ErrDown
	}
	now := unexpired(n.now())
	pipe := n.rdb.Pipeline()
	zs := make([]*redis.StringSliceCmd, len(dests))
	hs := make([]*redis.StringCmd, len(dests))
	for i, d := range dests {
		zs[i] = pipe.ZRangeByScore(ctx, n.key("lease", d), &redis.ZRangeBy{Min: now, Max: "+inf"})
		hs[i] = pipe.HGet(ctx, n.key("dest", d), "conc")
	}
	n.trips.Add(1)
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		n.failed(err)
		return out, err
	}
	for i, d := range dests {
		s := Share{Dest: d, ByNode: map[string]int{}}
		s.Level, _ = strconv.Atoi(hs[i].Val())
		for _, id := range zs[i].Val() {
			node, _, _ := strings.Cut(id, "/")
			s.ByNode[node]++
			s.Leases++
		}
		out[d] = s
	}
	return out, nil
}
