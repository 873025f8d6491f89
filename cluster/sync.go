package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"sluice/policy"
)

// ErrDown refuses an operator change that must apply cluster-wide while
// Redis is unreachable: applied here alone it would be undone on rejoin.
var ErrDown = errors.New("cluster: Redis unreachable: not applied cluster-wide (try again when `sluice cluster status` shows Redis up)")

// alarmTTL is how long a published sender-wide alarm stays shown.
const alarmTTL = time.Hour

func fmtRate(r rate.Limit) string { return strconv.FormatFloat(float64(r), 'g', -1, 64) }

func fmtLimits(l policy.Limits) string {
	return strconv.Itoa(l.MaxConcurrency) + " " + fmtRate(l.Rate)
}

func parseLimits(s string) (policy.Limits, bool) {
	c, r, ok := strings.Cut(s, " ")
	if !ok {
		return policy.Limits{}, false
	}
	mc, err1 := strconv.Atoi(c)
	rt, err2 := strconv.ParseFloat(r, 64)
	if err1 != nil || err2 != nil || mc < 1 || rt < 0 {
		return policy.Limits{}, false
	}
	return policy.Limits{MaxConcurrency: mc, Rate: rate.Limit(rt)}, true
}

// SetLimits sets runtime maxima of dest on every node (`limits set`):
// in Redis, then here; the others take them at their next heartbeat.
func (n *Node) SetLimits(dest string, l policy.Limits) error {
	if l.MaxConcurrency < 1 || l.Rate < 0 {
		return n.pol.SetLimits(dest, l) // the policy's own error
	}
	if !n.Up() {
		return ErrDown
	}
	ctx, cancel := n.ctx()
	defer cancel()
	n.trips.Add(1)
	if err := n.rdb.HSet(ctx, n.key("limits"), dest, fmtLimits(l)).Err(); err != nil {
		n.failed(err)
		return fmt.Errorf("%w: %v", ErrDown, err)
	}
	n.mu.Lock()
	n.limitsAt[dest] = l
	n.mu.Unlock()
	return n.pol.SetLimits(dest, l)
}

// ResetLimits drops the runtime maxima of dest on every node.
func (n *Node) ResetLimits(dest string) error {
	if !n.Up() {
		return ErrDown
	}
	ctx, cancel := n.ctx()
	defer cancel()
	n.trips.Add(1)
	if err := n.rdb.HDel(ctx, n.key("limits"), dest).Err(); err != nil {
		n.failed(err)
		return fmt.Errorf("%w: %v", ErrDown, err)
	}
	n.mu.Lock()
	delete(n.limitsAt, dest)
	n.mu.Unlock()
	return n.pol.ResetLimits(dest)
}

// syncLimits makes this node's runtime limits the cluster's.
func (n *Node) syncLimits(m map[string]string) {
	want := map[string]policy.Limits{}
	for dest, v := range m {
		if l, ok := parseLimits(v); ok {
			want[dest] = l
		}
	}
	have := n.pol.RuntimeLimits()
	for dest, l := range want {
		if h, ok := have[dest]; !ok || h != l {
			if err := n.pol.SetLimits(dest, l); err != nil {
				n.log.Error("cluster: runtime limits", "dest", dest, "err", err)
			}
		}
	}
	for dest := range have {
		if _, ok := want[dest]; !ok {
			if err := n.pol.ResetLimits(dest); err != nil {
				n.log.Error("cluster: runtime limits", "dest", dest, "err", err)
			}
		}
	}
	n.mu.Lock()
	n.limitsAt = want
	n.mu.Unlock()
}

// NoteSuppressed is the queue's OnSuppress hook: an address this node
// suppressed goes to the shared log at the next heartbeat (one applied
// from the log is not sent back).
func (n *Node) NoteSuppressed(addr, reason string) {
	k := strings.ToLower(addr)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.echo[k] > 0 {
		n.echo[k]--
		if n.echo[k] == 0 {
			delete(n.echo, k)
		}
		return
	}
	if len(n.pending) < suppressKeep {
		n.pending = append(n.pending, suppEntry{Addr: addr, Reason: reason, Node: n.o.NodeID, At: n.now().UnixMilli()})
	}
}

// applySuppressions adds the other nodes' new entries to this node's list.
func (n *Node) applySuppressions(zs []redis.Z) {
	for _, z := range zs {
		n.mu.Lock()
		if int64(z.Score) > n.suppSeq {
			n.suppSeq = int64(z.Score)
		}
		n.mu.Unlock()
		var e suppEntry
		s, _ := z.Member.(string)
		if json.Unmarshal([]byte(s), &e) != nil || e.Node == n.o.NodeID || n.o.Suppress == nil {
			continue
		}
		k := strings.ToLower(e.Addr)
		n.mu.Lock()
		n.echo[k]++
		n.mu.Unlock()
		if err := n.o.Suppress(e.Addr, e.Reason); err != nil {
			n.log.Error("cluster: applying a shared suppression", "err", err)
			n.mu.Lock()
			if n.echo[k]--; n.echo[k] <= 0 {
				delete(n.echo, k)
			}
			n.mu.Unlock()
		}
	}
}

// publishAlarm shares a sender-wide alarm raised here.
func (n *Node) publishAlarm(reason string) {
	a := Alarm{Node: n.o.NodeID, Reason: reason, Since: n.now()}
	n.mu.Lock()
	n.alarm = a
	n.mu.Unlock()
	if !n.Up() {
		return
	}
	b, _ := json.Marshal(a)
	ctx, cancel := n.ctx()
	defer cancel()
	n.trips.Add(1)
	if err := n.rdb.Set(ctx, n.key("alarm"), b, alarmTTL).Err(); err != nil {
		n.failed(err)
	}
}

// ClusterAlarm is the last sender-wide alarm any node published (within
// alarmTTL); ok = false when none.
func (n *Node) ClusterAlarm() (Alarm, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.alarm.Reason == "" || n.now().Sub(n.alarm.Since) > alarmTTL {
		return Alarm{}, false
	}
	return n.alarm, true
}
