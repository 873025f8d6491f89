package scheduler

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"sluice/internal/clock"
	"sluice/queue"
	"sluice/relay/outbound"
)

// session runs one outbound connection for a destination: it holds one
// policy slot and one of the MaxSessions slots, takes the destination's
// ready jobs one by one, keeps the connection while the next job has the
// same next hop (its domain, or another domain behind the same MX hosts,
// route or smarthost), waits up to ConnectionIdle for more mail after its
// last job, and ends when there is no more mail, the connection is
// unusable after a refusal, or policy pauses or shrinks the destination.
func (s *Scheduler) session(ctx context.Context, d *dest) {
	defer s.endSession(d)
	var sess Session
	defer func() {
		if sess != nil {
			sess.Close()
		}
	}()
	for {
		j := s.take(ctx, d, sess != nil && sess.Usable())
		if j == nil {
			return
		}
		if j = s.holdBack(d.name, j); j == nil {
			continue
		}
		// A rate token comes before each message (policy.Reserve never
		// blocks). A short wait keeps the connection and paces on it; a
		// long one hands the job back and ends the session: the loop
		// asks policy again at the token's time.
		if !s.waitToken(ctx, d.name) {
			s.pushFront(d, j)
			return
		}
		mpc := s.settings().MaxPerConnection
		if p := s.o.Policy.MessagesPerConnection(d.name); p > 0 && (mpc == 0 || p < mpc) {
			mpc = p
		}
		if sess != nil && (!sess.Usable() || (mpc > 0 && sess.Sent() >= mpc) || !sess.SameNextHop(ctx, j.domain)) {
			sess.Close()
			sess = nil
			if s.o.Policy.Paused(d.name) {
				// A new connection during a pause is what the pause
				// forbids, even in a slot admitted before it: give the
				// job back and the slot up; the loop asks policy when to
				// dial.
				s.pushFront(d, j)
				return
			}
		}
		if sess == nil {
			dctx := ctx
			if j.items[0].TLSReport {
				dctx = outbound.WithoutTLSReport(ctx)
			}
			ns, fail := s.o.Outbound.Dial(dctx, j.domain)
			if fail != nil {
				s.finish(ctx, d.name, j, "", false, sameReply(*fail, len(j.items)))
				return
			}
			sess = ns
		}
		body, err := s.o.Queue.OpenBody(j.id)
		if err != nil {
			s.log.Error("reading queued body failed", "id", j.id, "err", err)
			s.retryLater(j)
			continue
		}
		// The body streams from the queue (its spool file, or a copy of
		// a small inline one) while DATA is sent; no bbolt transaction
		// stays open during the send.
		utf8, r, err := needsSMTPUTF8(j, body, body.Has8Bit())
		if err != nil {
			body.Close()
			s.log.Error("reading queued body failed", "id", j.id, "err", err)
			s.retryLater(j)
			continue
		}
		dl := &outbound.Delivery{ID: j.id, From: j.from, Rcpts: addrs(j), Body: r, Size: body.Size(),
			EightBit: body.Has8Bit(), SMTPUTF8: utf8, RequireTLS: j.items[0].RequireTLS, Env: j.items[0].Env, RcptDSN: rcptDSN(j)}
		replies := sess.Send(ctx, dl)
		body.Close()
		if t, ok := sess.(interface{ TLS() bool }); ok {
			j.tls = t.TLS()
		}
		if s.finish(ctx, d.name, j, sess.Relay(), sess.DSN(), replies) || !sess.Usable() {
			// The connection is finished (a 421, a network error, or
			// policy says so). The session ends and gives its slot back:
			// a new connection goes through policy, so nothing is
			// dialled while the destination is paused.
			return
		}
	}
}

// holdBack returns j without the recipients policy holds back
// (Policy.Hold: a greylisted recipient waiting for its destination's
// window to be learned), which go back to the queue due when policy
// says, with no attempt made or counted; nil when none is left.
func (s *Scheduler) holdBack(name string, j *job) *job {
	var keep, held []queue.Item
	var ups []queue.Update
	for _, it := range j.items {
		if until := s.o.Policy.Hold(name, it.Addr); !until.IsZero() {
			ups = append(ups, queue.Update{ID: it.ID, Rcpt: it.Rcpt, State: queue.StateQueued, NextAttempt: until})
			held = append(held, it)
			continue
		}
		keep = append(keep, it)
	}
	if len(held) == 0 {
		return j
	}
	if err := s.o.Queue.Update(context.Background(), ups); err != nil {
		s.log.Error("returning held recipients failed; they return to due when their lease expires", "id", j.id, "err", err)
	}
	s.leases.drop(held)
	if len(keep) == 0 {
		return nil
	}
	j.items = keep
	return j
}

// bodyRetry is when a job whose body could not be read is due again.
const bodyRetry = time.Minute

// retryLater returns a job whose body could not be read to the queue,
// due a minute from now (a transient read error; a body that is truly
// gone is a damaged queue, which `queue check` reports).
func (s *Scheduler) retryLater(j *job) {
	at := s.now().Add(bodyRetry)
	var ups []queue.Update
	for _, it := range j.items {
		ups = append(ups, queue.Update{ID: it.ID, Rcpt: it.Rcpt, State: queue.StateQueued, NextAttempt: at})
	}
	if err := s.o.Queue.Update(context.Background(), ups); err != nil {
		s.log.Error("returning a lease failed; it returns to due when it expires", "id", j.id, "err", err)
	}
	s.leases.drop(j.items)
}

// take returns d's next ready job for a session, or nil when the session
// should end: the scheduler stops, policy says stop (a suspension, more
// sessions than the current concurrency), or there is no mail. With no
// job in hand the session waits: for the refill the loop is leasing
// (it is told, and says when it has none: dry), then, when the
// connection is usable, up to ConnectionIdle for mail that comes later,
// unless a destination is waiting for a session slot. A waiting session
// holds its slot, and the loop counts it: mail that arrives is leased for
// it first, and new sessions start only for the mail it cannot take.
func (s *Scheduler) take(ctx context.Context, d *dest, canIdle bool) *job {
	var idle clock.Timer // ConnectionIdle, started when the destination runs dry
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	for {
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			return nil
		}
		if len(d.ready) > 0 {
			if !s.o.Policy.Continue(d.name) {
				s.mu.Unlock()
				return nil
			}
			j := d.ready[0]
			d.ready[0] = nil
			d.ready = d.ready[1:]
			// The loop refills the one-ahead job of this session.
			s.markDirtyLocked(d)
			s.mu.Unlock()
			return j
		}
		var expired, recheck <-chan time.Time
		var rt clock.Timer
		y, fleet := s.o.Policy.(Yielder)
		switch {
		case d.dry && (s.yield || !canIdle || s.settings().ConnectionIdle <= 0):
			s.mu.Unlock()
			return nil
		case d.dry && fleet && y.Yield(d.name):
			// Another sender of the fleet waits for this slot.
			s.mu.Unlock()
			return nil
		case d.dry:
			if idle == nil {
				idle = s.clk.NewTimer(s.settings().ConnectionIdle)
			}
			expired = idle.C()
			if fleet {
				rt = s.clk.NewTimer(yieldCheck)
				recheck = rt.C()
			}
		default:
			// A refill is coming, or about to be asked for.
			s.markDirtyLocked(d)
		}
		if d.arrived == nil {
			d.arrived = make(chan struct{})
		}
		arrived := d.arrived
		d.idle++
		s.mu.Unlock()
		end := false
		select {
		case <-arrived:
		case <-recheck:
		case <-expired:
			end = true
		case <-ctx.Done():
			end = true
		}
		if rt != nil {
			rt.Stop()
		}
		s.mu.Lock()
		d.idle--
		s.mu.Unlock()
		if end {
			return nil
		}
	}
}

// pushFront gives a job back to the head of its destination's ready
// queue (it keeps its lease: the loop starts a session for it when
// policy allows, or gives it back to the queue in a long pause).
func (s *Scheduler) pushFront(d *dest, j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d.ready = append([]*job{j}, d.ready...)
}

// endSession gives the session's slots back and has the loop serve the
// destination (and a destination waiting for a slot).
func (s *Scheduler) endSession(d *dest) {
	s.o.Policy.Release(d.name)
	s.mu.Lock()
	d.sessions--
	s.sessions--
	s.markDirtyLocked(d)
	s.mu.Unlock()
	s.wg.Done()
}

// waitToken takes a rate token, waiting inline up to MaxInlineWait. It
// reports false when the wait is longer.
func (s *Scheduler) waitToken(ctx context.Context, name string) bool {
	for {
		w := s.o.Policy.Reserve(name)
		if w <= 0 {
			return true
		}
		if w > s.o.MaxInlineWait {
			return false
		}
		t := s.clk.NewTimer(w)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C():
		}
	}
}

func addrs(j *job) []string {
	out := make([]string, len(j.items))
	for i, it := range j.items {
		out[i] = it.Addr
	}
	return out
}

// needsSMTPUTF8 reports whether the delivery needs the SMTPUTF8 extension
// (RFC 6531 §3.4), and returns the body to send (the same bytes: what was
// read to decide is put back in front). The envelope decides: a non-ASCII
// address needs it (a DSN to a UTF-8 sender has no client to ask), and so
// does a message that asked for it at MAIL and has raw UTF-8 in its
// header section (RFC 6532). Raw 8-bit bytes alone do not: a message that
// did not ask goes with BODY=8BITMIME where offered, or as is to a 7-bit
// peer, as Postfix sends it; never bounced for them, and never
// down-converted, which would break its DKIM signature. A message that
// asked but is ASCII in its envelope and header (net/smtp, for one, asks
// whenever the server offers it) needs nothing: it goes without the
// parameter, as Postfix delivers it, instead of bouncing at a peer
// without the extension.
func needsSMTPUTF8(j *job, body io.Reader, eightBit bool) (bool, io.Reader, error) {
	if !isASCII(j.from) {
		return true, body, nil
	}
	for _, it := range j.items {
		if !isASCII(it.Addr) {
			return true, body, nil
		}
	}
	if !j.smtputf8 || !eightBit {
		return false, body, nil
	}
	return headerHas8Bit(body)
}

// maxHeaderScan bounds the header section read to decide; inbound refuses
// a longer one (1 MiB), so reaching it means a malformed message, and the
// answer is the cautious one.
const maxHeaderScan = 1<<20 + 4

// headerHas8Bit reads body up to the end of its header section (the first
// empty line, RFC 5322 §2.1) and reports a byte >= 0x80 in it; the bytes
// read are returned in front of the rest of body.
func headerHas8Bit(body io.Reader) (bool, io.Reader, error) {
	var buf []byte
	chunk := make([]byte, 4096)
	for {
		n, err := body.Read(chunk)
		start := max(len(buf)-3, 0) // the empty line may straddle two reads
		buf = append(buf, chunk[:n]...)
		end := -1
		if len(buf) >= 2 && buf[0] == '\r' && buf[1] == '\n' {
			end = 0 // no header fields at all
		} else if i := bytes.Index(buf[start:], []byte("\r\n\r\n")); i >= 0 {
			end = start + i
		}
		switch {
		case end >= 0:
			return has8Bit(buf[:end]), io.MultiReader(bytes.NewReader(buf), body), nil
		case errors.Is(err, io.EOF):
			return has8Bit(buf), bytes.NewReader(buf), nil // headers only
		case err != nil:
			return false, nil, err
		case len(buf) >= maxHeaderScan:
			return true, io.MultiReader(bytes.NewReader(buf), body), nil
		}
	}
}

func has8Bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

var errNoReply = errors.New("no reply for this recipient")
