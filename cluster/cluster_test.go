package cluster

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"sluice/config"
	"sluice/internal/fakeclock"
	"sluice/internal/redistest"
	"sluice/internal/syncbuf"
	"sluice/policy"
	"sluice/reply"
)

const dest = "example.net"

// fleet is n nodes sharing one Redis under one key prefix, on one fake
// clock, each with its own policy.
type fleet struct {
	clk   *fakeclock.Clock
	nodes []*Node
	gates []*Gate
	logs  []*syncbuf.Buffer
	supp  []*suppressed
}

type suppressed struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *suppressed) get(a string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[a]
	return r, ok
}

func policyOptions(clk *fakeclock.Clock, tweak func(*policy.Options)) policy.Options {
	o := policy.OptionsFrom(config.Default())
	o.MaxConcurrency, o.InitialConcurrency, o.Rate = 3, 0, 0
	o.Now, o.Rand = clk.Now, func() float64 { return 0.5 }
	o.Logger = slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	if tweak != nil {
		tweak(&o)
	}
	return o
}

func newFleet(t *testing.T, srv *redistest.Server, count int, tweak func(*policy.Options)) *fleet {
	t.Helper()
	f := &fleet{clk: fakeclock.New()}
	prefix := fmt.Sprintf("t:%s:", t.Name())
	for i := range count {
		pol, err := policy.New(policyOptions(f.clk, tweak))
		if err != nil {
			t.Fatal(err)
		}
		buf := &syncbuf.Buffer{}
		s := &suppressed{m: map[string]string{}}
		var node *Node
		node, err = New(Options{
			URL: srv.URL(), NodeID: fmt.Sprintf("n%d", i+1), Prefix: prefix, LeaseTTL: 15 * time.Second, Heartbeat: 2 * time.Second,
			Version: "test", Policy: pol, QueueSize: func() int { return 10 * (i + 1) },
			Suppress: func(addr, reason string) error {
				s.mu.Lock()
				s.m[addr] = reason
				s.mu.Unlock()
				node.NoteSuppressed(addr, reason) // as the queue's hook would
				return nil
			},
			Now: f.clk.Now, Logger: slog.New(slog.NewTextHandler(buf, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = node.rdb.Close() })
		node.Beat()
		if !node.Up() {
			t.Fatalf("node %d did not join: %s", i+1, buf.String())
		}
		f.nodes = append(f.nodes, node)
		f.gates = append(f.gates, node.Gate())
		f.logs = append(f.logs, buf)
		f.supp = append(f.supp, s)
	}
	f.beat()
	return f
}

func (f *fleet) beat() {
	for _, n := range f.nodes {
		n.Beat()
	}
}

// admitted counts the sessions each node gets when it asks k times.
func (f *fleet) admitAll(k int) []int {
	got := make([]int, len(f.gates))
	for range k {
		for i, g := range f.gates {
			if n, _ := g.Ready(dest); n > 0 {
				if ok, _ := g.Admit(dest); ok {
					got[i]++
				}
			}
		}
	}
	return got
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

// Three nodes sharing a destination limited to 3 sessions open 3 in all,
// not 3 each; a slot one node frees another takes.
func TestConcurrencySharedAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, srv, 3, nil)
	got := f.admitAll(3)
	if sum(got) != 3 {
		t.Fatalf("sessions per node %v: want 3 in all", got)
	}
	for i, g := range f.gates {
		if ok, _ := g.Admit(dest); ok {
			t.Fatalf("node %d got a 4th session", i+1)
		}
	}
	var holder int
	for i, n := range got {
		if n > 0 {
			holder = i
			break
		}
	}
	f.gates[holder].Release(dest)
	other := (holder + 1) % 3
	if n, _ := f.gates[other].Ready(dest); n != 1 {
		t.Fatalf("after a release, node %d Ready = %d, want 1", other+1, n)
	}
	if ok, _ := f.gates[other].Admit(dest); !ok {
		t.Fatal("the freed slot was not admitted on another node")
	}
	sh, err := f.nodes[0].Shares(t.Context(), []string{dest})
	if err != nil || sh[dest].Leases != 3 {
		t.Fatalf("shares %+v, %v: want 3 leases", sh, err)
	}
}

// A node that dies holding slots frees them within lease_ttl; while it
// lives, its heartbeat keeps them.
func TestDeadNodeLeasesExpire(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, srv, 2, nil)
	for range 3 {
		if ok, _ := f.gates[0].Admit(dest); !ok {
			t.Fatal("node 1 could not open 3 sessions")
		}
	}
	// Alive: two heartbeats of 10 s each (under lease_ttl) keep them.
	for range 2 {
		f.clk.Advance(10 * time.Second)
		f.beat()
		if ok, _ := f.gates[1].Admit(dest); ok {
			t.Fatal("node 2 took a slot node 1 still holds")
		}
	}
	// Node 1 dies: no release, no heartbeat. Within lease_ttl its slots
	// are free.
	f.clk.Advance(10 * time.Second)
	f.nodes[1].Beat()
	if ok, _ := f.gates[1].Admit(dest); ok {
		t.Fatal("a slot came free before lease_ttl")
	}
	f.clk.Advance(5*time.Second + time.Millisecond)
	n := 0
	for range 3 {
		if ok, _ := f.gates[1].Admit(dest); ok {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("after lease_ttl node 2 got %d of the dead node's 3 slots", n)
	}
	st := f.nodes[1].Status(t.Context())
	if len(st.Nodes) != 2 || st.Nodes[0].Live || !st.Nodes[1].Live || st.Nodes[1].QueueSize != 20 {
		t.Fatalf("status %+v: want n1 dead, n2 live with queue 20", st.Nodes)
	}
}

func throttle() policy.Outcome {
	return policy.Outcome{Reply: reply.Reply{Stage: reply.StageConnect, Code: 421, Enhanced: "4.7.0", Text: "Too many connections, slow down"}, Attempts: 1}
}

func success() policy.Outcome {
	return policy.Outcome{Reply: reply.Reply{Stage: reply.StageDataEnd, Code: 250, Enhanced: "2.0.0", Text: "ok"}, Rcpt: "a@example.net", Attempts: 1}
}

// A pause one node learns stops every node; when it ends, exactly one
// node sends the probe, and its success reopens the destination for all.
func TestOneProbeAfterPause(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, srv, 3, nil)
	if ok, _ := f.gates[0].Admit(dest); !ok {
		t.Fatal("admit")
	}
	dec := f.gates[0].Observe(dest, throttle())
	if dec.Verdict.Class != policy.ClassThrottle {
		t.Fatalf("class %v, want throttle", dec.Verdict.Class)
	}
	f.gates[0].Release(dest)
	until := f.gates[0].Shared(dest).PausedUntil
	if !until.After(f.clk.Now()) {
		t.Fatal("node 1 is not paused")
	}
	for i, g := range f.gates[1:] {
		n, at := g.Ready(dest)
		if n != 0 || !at.Equal(until) {
			t.Fatalf("node %d during the pause: Ready = %d, %v; want 0 until %v", i+2, n, at, until)
		}
	}
	f.clk.Set(until.Add(time.Millisecond))
	got := f.admitAll(3)
	if sum(got) != 1 {
		t.Fatalf("probes per node after the pause: %v, want exactly one in all", got)
	}
	prober := 0
	for i, n := range got {
		if n == 1 {
			prober = i
		}
	}
	f.gates[prober].Observe(dest, success())
	f.clk.Advance(viewFresh) // the others' copy of the cluster's state ages out
	for i, g := range f.gates {
		g.Ready(dest) // each node looks at the cluster
		if st, _ := g.State(dest); st.State != policy.StateOpen {
			t.Fatalf("node %d: state %s after the probe's success, want open", i+1, st.State)
		}
	}
	// The throttle cut the level to the one session the probe holds:
	// when it ends, another node may take it.
	f.gates[prober].Release(dest)
	f.clk.Advance(viewFresh)
	other := (prober + 1) % 3
	if n, _ := f.gates[other].Ready(dest); n < 1 {
		t.Fatalf("node %d: Ready %d after the probe ended", other+1, n)
	}
}

// The same burst of refusals seen by three nodes is one decrease
// cluster-wide: the level is halved once, not three times, and every
// node adopts it.
func TestOneDecreasePerWindowClusterWide(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, srv, 3, func(o *policy.Options) { o.MaxConcurrency = 16 })
	// Node 1 holds 6 sessions, node 2 four, node 3 one: 11 in all.
	for i, k := range []int{6, 4, 1} {
		for range k {
			if ok, _ := f.gates[i].Admit(dest); !ok {
				t.Fatal("admit")
			}
		}
	}
	// A refusal of one session too many is about the fleet's 11
	// sessions, not node 1's 6: the level comes down to 10, not 5.
	dec := f.gates[0].Observe(dest, throttle())
	first := f.gates[0].Shared(dest).Conc
	if dec.Verdict.Scope != policy.ScopeConnections || first != 10 {
		t.Fatalf("node 1's cut: scope %q, level %d; want connections, 11-1 = 10", dec.Verdict.Scope, first)
	}
	// Node 2 looked at the cluster since (one heartbeat's worth): its
	// refusal of the same burst cuts nothing more. Node 3 did not, and
	// cuts from a stale view of one session (to 1); the cluster refuses
	// its cut within the window and hands back the level node 1 set.
	f.gates[1].Ready(dest)
	f.gates[1].Observe(dest, throttle())
	stale := throttle()
	stale.Fleet = &policy.Fleet{Sessions: 1}
	f.gates[2].Observe(dest, stale)
	for i, g := range f.gates {
		if l := g.Shared(dest).Conc; l != first {
			t.Fatalf("node %d: level %d after one burst, want the one cut to %d", i+1, l, first)
		}
	}
	// After the window, a new refusal is news: one more cut.
	f.clk.Advance(f.gates[0].DecreaseWindow() + time.Minute)
	f.gates[2].Ready(dest)
	f.gates[2].Observe(dest, throttle())
	if l := f.gates[2].Shared(dest).Conc; l >= first {
		t.Fatalf("after the window the level stayed %d (was %d)", l, first)
	}
	f.gates[0].Ready(dest)
	if l, l3 := f.gates[0].Shared(dest).Conc, f.gates[2].Shared(dest).Conc; l != l3 {
		t.Fatalf("node 1 did not adopt the second cut: %d vs %d", l, l3)
	}
}

// The rate is one bucket: three nodes asking at once get one token.
func TestRateSharedGCRA(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, srv, 3, func(o *policy.Options) { o.Rate, o.MinRate = 10, 1 })
	granted := 0
	for _, g := range f.gates {
		if g.Reserve(dest) == 0 {
			granted++
		}
	}
	if granted != 1 {
		t.Fatalf("tokens granted at one instant: %d, want 1 (burst 1 at 10/s)", granted)
	}
	f.clk.Advance(100 * time.Millisecond)
	granted = 0
	for _, g := range f.gates {
		if g.Reserve(dest) == 0 {
			granted++
		}
	}
	if granted != 1 {
		t.Fatalf("tokens granted 100 ms later: %d, want 1", granted)
	}
	// One second: ten tokens in all across the fleet.
	total := 0
	for range 100 {
		f.clk.Advance(10 * time.Millisecond)
		for _, g := range f.gates {
			if g.Reserve(dest) == 0 {
				total++
			}
		}
	}
	if total < 9 || total > 11 {
		t.Fatalf("tokens in one second across 3 nodes: %d, want 10", total)
	}
}

// Runtime limits, suppressions and the alarm set on one node reach the
// others at their next heartbeat.
func TestLimitsSuppressionAlarmShared(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, srv, 2, nil)
	if err := f.nodes[0].SetLimits(dest, policy.Limits{MaxConcurrency: 1, Rate: 5}); err != nil {
		t.Fatal(err)
	}
	f.nodes[1].Beat()
	if st, ok := f.gates[1].State(dest); !ok || st.MaxConcurrency != 1 || st.MaxRate != 5 {
		t.Fatalf("node 2 after a heartbeat: %+v, want max 1 session at 5/s", st)
	}
	f.nodes[0].NoteSuppressed("gone@example.net", "5.1.1 unknown")
	f.beat()
	if r, ok := f.supp[1].get("gone@example.net"); !ok || r != "5.1.1 unknown" {
		t.Fatalf("node 2 suppression list: %v", f.supp[1].m)
	}
	f.beat() // not echoed back
	if _, ok := f.supp[0].get("gone@example.net"); ok {
		t.Fatal("node 1 got its own suppression back")
	}
	if err := f.nodes[1].ResetLimits(dest); err != nil {
		t.Fatal(err)
	}
	f.nodes[0].Beat()
	if st, _ := f.gates[0].State(dest); st.MaxConcurrency != 3 || st.MaxRate != 0 {
		t.Fatalf("node 1 after reset: %+v, want the config's 3 and no rate", st)
	}
	f.nodes[0].publishAlarm("5 of 6 destinations throttling")
	f.nodes[1].Beat()
	if a, ok := f.nodes[1].ClusterAlarm(); !ok || a.Node != "n1" || !strings.Contains(a.Reason, "throttling") {
		t.Fatalf("node 2 alarm: %+v %v", a, ok)
	}
}

// Redis goes away: each node falls back to its share (3 sessions / 3
// live nodes = 1), logs it once, and rejoins when Redis is back, its open
// sessions counted again.
func TestFallbackAndRejoin(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, srv, 3, func(o *policy.Options) { o.Rate, o.MinRate = 30, 1 })
	if f.nodes[0].LiveNodes() != 3 {
		t.Fatalf("live nodes %d, want 3", f.nodes[0].LiveNodes())
	}
	srv.Stop()
	g := f.gates[0]
	if ok, _ := g.Admit(dest); !ok {
		t.Fatal("the first session was refused when Redis went away")
	}
	if f.nodes[0].Up() {
		t.Fatal("node still up with Redis gone")
	}
	// No new session while the other nodes notice (two heartbeats),
	// then this node's share: 3 sessions / 3 live nodes = 1, which the
	// session already open takes.
	if ok, at := g.Admit(dest); ok || !at.Equal(f.clk.Now().Add(4*time.Second)) {
		t.Fatalf("fallback admitted a session during the transition (%v, %v)", ok, at)
	}
	f.clk.Advance(4 * time.Second)
	if ok, _ := g.Admit(dest); ok {
		t.Fatal("fallback admitted a 2nd session: the share is 3/3 = 1")
	}
	if n, _ := g.Ready(dest); n != 0 {
		t.Fatal("fallback Ready above the share")
	}
	// A share of a limit below the node count: 2 sessions over 3
	// nodes are 1, 1 and 0 by rank, never 3.
	shares := []int{}
	for _, n := range f.nodes {
		shares = append(shares, n.shareOf(2))
	}
	if fmt.Sprint(shares) != "[1 1 0]" {
		t.Fatalf("shares of 2 sessions over 3 nodes: %v", shares)
	}
	// The rate share: 30/s / 3 = 10/s.
	taken := 0
	for range 100 {
		f.clk.Advance(10 * time.Millisecond)
		if g.Reserve(dest) == 0 {
			taken++
		}
	}
	if taken < 9 || taken > 11 {
		t.Fatalf("fallback tokens in 1 s: %d, want 10 (30/s over 3 nodes)", taken)
	}
	f.nodes[0].Beat()
	f.nodes[0].Beat()
	if c := strings.Count(f.logs[0].String(), "falling back"); c != 1 {
		t.Fatalf("fallback logged %d times, want once:\n%s", c, f.logs[0].String())
	}
	if st := f.nodes[0].Stats(); st.Up || st.Fallbacks != 1 {
		t.Fatalf("stats %+v", st)
	}
	srv.Start() // empty: Redis lost everything
	f.beat()
	// The client's pool may take a moment to dial again after the
	// refusals: a few heartbeats, bounded.
	for i := 0; i < 50 && !f.nodes[0].Up(); i++ {
		time.Sleep(100 * time.Millisecond)
		f.beat()
	}
	if !f.nodes[0].Up() || !strings.Contains(f.logs[0].String(), "reachable again") {
		t.Fatalf("no rejoin:\n%s", f.logs[0].String())
	}
	// The session opened during the outage holds a lease now: the
	// other nodes see 1 of 3 slots taken.
	sh, err := f.nodes[1].Shares(t.Context(), []string{dest})
	if err != nil || sh[dest].Leases != 1 || sh[dest].ByNode["n1"] != 1 {
		t.Fatalf("shares after rejoin %+v, %v", sh, err)
	}
	// No new session for two heartbeats (every node re-registers its
	// sessions meanwhile), then the cluster's free slots.
	if got := f.admitAll(3); sum(got) != 0 {
		t.Fatalf("sessions opened right after the rejoin: %v", got)
	}
	f.clk.Advance(4 * time.Second)
	got := f.admitAll(3)
	if sum(got) != 2 {
		t.Fatalf("after rejoin the fleet opened %v more, want 2 (3 less the one open)", got)
	}
	g.Release(dest)
	if sh, _ := f.nodes[1].Shares(t.Context(), []string{dest}); sh[dest].Leases != 2 {
		t.Fatalf("release after rejoin: %+v", sh)
	}
}

var _ = rate.Inf

// The live node count survives a restart: a node that starts while Redis
// is down takes its share of the fleet it last saw.
func TestLiveCountSurvivesRestart(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, srv, 3, nil)
	file := t.TempDir() + "/cluster-nodes"
	f.nodes[0].o.StateFile = file
	f.clk.Advance(time.Second)
	f.beat()
	f.nodes[0].live.Store(1) // force a write
	f.nodes[0].Beat()
	srv.Stop()
	n, err := New(Options{URL: srv.URL(), NodeID: "n1", Prefix: "x:", LeaseTTL: 15 * time.Second, Heartbeat: 2 * time.Second,
		Policy: f.gates[0].Policy, StateFile: file, Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.rdb.Close()
	n.Beat()
	if n.Up() || n.LiveNodes() != 3 {
		t.Fatalf("restarted with Redis down: up %v, live %d; want the 3 last seen", n.Up(), n.LiveNodes())
	}
}

// At 400/s tokens come ten a round trip, and the fleet still takes 400
// in a second, not more.
func TestRateBatches(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, srv, 3, func(o *policy.Options) { o.Rate, o.MinRate = 400, 1 })
	before := 0
	for _, n := range f.nodes {
		before += int(n.trips.Load())
	}
	// Each node sends as the scheduler does: when told to wait, it
	// asks again after the wait.
	total := 0
	next := make([]time.Time, len(f.gates))
	for range 1000 {
		now := f.clk.Advance(time.Millisecond)
		for i, g := range f.gates {
			for !now.Before(next[i]) {
				w := g.Reserve(dest)
				if w > 0 {
					next[i] = now.Add(w)
					break
				}
				total++
			}
		}
	}
	trips := -before
	for _, n := range f.nodes {
		trips += int(n.trips.Load())
	}
	if total < 390 || total > 425 {
		t.Fatalf("tokens in one second across 3 nodes at 400/s: %d", total)
	}
	if trips > total/3 {
		t.Fatalf("%d round trips for %d tokens: not batched", trips, total)
	}
}

// Through Redis Sentinel (master_name in the URL): the node asks the
// sentinel for the master and shares its state there.
func TestSentinel(t *testing.T) {
	srv := redistest.Start(t)
	sent := redistest.Sentinel(t, srv)
	pol, err := policy.New(policyOptions(fakeclock.New(), nil))
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{URL: "redis://" + sent + "/0?master_name=sluice", NodeID: "s1", Prefix: "sentinel:", LeaseTTL: 15 * time.Second,
		Heartbeat: 2 * time.Second, Policy: pol, Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.rdb.Close()
	n.Beat()
	if !n.Up() {
		t.Fatal("the node did not join through the sentinel")
	}
	if ok, _ := n.Gate().Admit(dest); !ok {
		t.Fatal("admit")
	}
	// The lease is on the master the sentinel named.
	direct, err := New(Options{URL: srv.URL(), NodeID: "s2", Prefix: "sentinel:", LeaseTTL: 15 * time.Second, Heartbeat: 2 * time.Second,
		Policy: pol, Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.rdb.Close()
	direct.Beat()
	if sh, err := direct.Shares(t.Context(), []string{dest}); err != nil || sh[dest].ByNode["s1"] != 1 {
		t.Fatalf("shares on the master: %+v %v", sh, err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"redis://u:hunter2@r:6379/0":                      "redis://u:xxxxx@r:6379/0",
		"rediss://:hunter2@r:6380":                        "rediss://:xxxxx@r:6380",
		"redis://s:6379/0?master_name=m&password=hunter2": "redis://s:6379/0?master_name=m&password=xxxxx",
		"redis://r:6379/0":                                "redis://r:6379/0",
	} {
		if got := Redact(in); got != want || strings.Contains(got, "hunter2") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// A destination not used for a minute leaves nothing behind on the node.
func TestPrune(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, srv, 1, func(o *policy.Options) { o.Rate, o.MinRate = 400, 1 })
	g, n := f.gates[0], f.nodes[0]
	g.Ready(dest)
	if ok, _ := g.Admit(dest); !ok {
		t.Fatal("admit")
	}
	g.Reserve(dest)
	g.Release(dest)
	g.Ready(dest)
	f.clk.Advance(2 * time.Minute)
	n.Beat()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.views)+len(n.spares)+len(n.seen)+len(n.active)+len(n.leases) != 0 {
		t.Fatalf("left behind: views %v spares %v seen %v active %v leases %v", n.views, n.spares, n.seen, n.active, n.leases)
	}
}

// A node waiting for a slot of a full cluster says so (want) at most
// twice a second, not at every Ready the scheduler asks: the scheduler
// asks after every job a session takes, and each want was a round trip
// (bench/cluster.sh: most of the 1.8 round trips per message).
func TestWantThrottled(t *testing.T) {
	srv := redistest.Start(t)
	f := newFleet(t, srv, 2, nil)
	for range 3 {
		if n, _ := f.gates[0].Ready(dest); n > 0 {
			if ok, _ := f.gates[0].Admit(dest); !ok {
				t.Fatal("node 1 was not admitted")
			}
		}
	}
	if got := f.nodes[0].activeAt(dest); got != 3 {
		t.Fatalf("node 1 holds %d sessions, want 3", got)
	}
	g, n := f.gates[1], f.nodes[1]
	before := n.trips.Load()
	// The scheduler asks every 10 ms for one second.
	for range 100 {
		f.clk.Advance(10 * time.Millisecond)
		if k, _ := g.Ready(dest); k != 0 {
			t.Fatalf("a full cluster gave node 2 %d sessions", k)
		}
	}
	trips := n.trips.Load() - before
	// One view per viewFresh (10) and a want per wantEvery (2).
	if trips > 14 {
		t.Fatalf("%d round trips for 100 Ready of a full cluster in 1 s: want at most 14", trips)
	}
	// The wish is still seen by the holder, so its idle sessions yield.
	f.nodes[0].readWant(dest)
	if !f.gates[0].Yield(dest) {
		t.Fatal("node 1 does not see that node 2 waits")
	}
}
