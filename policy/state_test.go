package policy

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/reply"
)

func TestUnavailableProbe(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.RetryBase = time.Second; o.RetryMax = 5 * time.Second })
	const d = "down.test"
	admitN(p, d, 3)
	// Three sessions fail at once: one pause step, not three.
	for range 3 {
		dec := p.Observe(d, Outcome{Reply: outage, Rcpt: "a@down.test", Attempts: 1})
		if !dec.EndSession || dec.Action != ActionRetry {
			t.Fatalf("outage decision %+v", dec)
		}
		p.Release(d)
	}
	wantPause := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, want := range wantPause {
		s := mustState(t, p, d)
		if got := s.PausedUntil.Sub(c.Now()); s.State != StatePaused || got != want {
			t.Fatalf("step %d: state %s pause %v, want paused %v", i, s.State, got, want)
		}
		if ok, at := p.Admit(d); ok || !at.Equal(s.PausedUntil) {
			t.Fatalf("step %d: Admit during pause = %v %v", i, ok, at)
		}
		c.Set(s.PausedUntil)
		if ok, _ := p.Admit(d); !ok {
			t.Fatalf("step %d: probe not admitted", i)
		}
		for range 5 {
			if ok, at := p.Admit(d); ok || at.IsZero() {
				t.Fatalf("step %d: second session admitted during the probe (%v %v)", i, ok, at)
			}
		}
		if st := mustState(t, p, d).State; st != StateProbing {
			t.Fatalf("state during probe %s", st)
		}
		p.Observe(d, Outcome{Reply: reply.Reply{Stage: reply.StageConnect, Err: fmt.Errorf("dial: connection refused")}})
		p.Release(d)
	}
	// The last probe succeeds: open, full concurrency, step reset.
	c.Set(mustState(t, p, d).PausedUntil)
	if ok, _ := p.Admit(d); !ok {
		t.Fatal("probe not admitted")
	}
	p.Observe(d, Outcome{Reply: accepted, Rcpt: "a@down.test"})
	if got := admitN(p, d, 30); got != 19 {
		t.Fatalf("after a good probe admitted %d more, want 19", got)
	}
	if s := mustState(t, p, d); s.State != StateOpen {
		t.Fatalf("state %s", s.State)
	}
}

func TestProbeReleasedWithoutObserve(t *testing.T) {
	t.Parallel()
	p, c := fixture(t)
	admitN(p, "d", 1)
	p.Observe("d", Outcome{Reply: outage})
	p.Release("d")
	c.Set(mustState(t, p, "d").PausedUntil)
	if ok, _ := p.Admit("d"); !ok {
		t.Fatal("probe refused")
	}
	p.Release("d") // the session ended without a reply
	if ok, _ := p.Admit("d"); !ok {
		t.Fatal("a new probe must be allowed after the first one was released")
	}
}

func TestSuspendExact(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.Rand = func() float64 { return 0.9 } })
	const d = "yahoo"
	admitN(p, d, 20)
	start := c.Now()
	dec := p.Observe(d, Outcome{Reply: reply.Reply{Stage: reply.StageMail, Code: 421, Enhanced: "4.7.0", Text: "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1"}, Rcpt: "x@yahoo.com"})
	if !dec.EndSession || dec.Verdict.Class != ClassSuspend {
		t.Fatalf("decision %+v", dec)
	}
	s := mustState(t, p, d)
	if s.State != StateSuspended || !s.PausedUntil.Equal(start.Add(2*time.Hour)) {
		t.Fatalf("state %s until %v, want suspended exactly 2h", s.State, s.PausedUntil)
	}
	if s.Concurrency != 10 {
		t.Errorf("concurrency %d, want reduced to 10", s.Concurrency)
	}
	if dec.RetryAt.Before(s.PausedUntil) {
		t.Errorf("recipient due %v before the suspend ends", dec.RetryAt)
	}
	c.Set(start.Add(2*time.Hour - time.Nanosecond))
	if ok, _ := p.Admit(d); ok {
		t.Fatal("admitted before the suspend ended")
	}
	if p.Continue(d) {
		t.Fatal("sessions go on during a suspension")
	}
	for range 20 { // so they end
		p.Release(d)
	}
	c.Set(start.Add(2 * time.Hour))
	if ok, _ := p.Admit(d); !ok {
		t.Fatal("probe not admitted when the suspend ended")
	}
}

func TestHardBlockRaisesAlarm(t *testing.T) {
	t.Parallel()
	p, _ := fixture(t)
	dec := p.Observe("yahoo", Outcome{Reply: reply.Reply{Stage: reply.StageMail, Code: 421, Enhanced: "4.7.1", Text: "[TS03] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed"}})
	if dec.Alarm == "" || dec.Verdict.Class != ClassSuspend {
		t.Errorf("decision %+v, want suspend with alarm", dec)
	}
}

// greyMX accepts a (sender, recipient) only window after its first try.
type greyMX struct {
	window time.Duration
	first  map[string]time.Time
}

func (g *greyMX) try(rcpt string, now time.Time) bool {
	f, ok := g.first[rcpt]
	if !ok {
		g.first[rcpt] = now
		return false
	}
	return now.Sub(f) >= g.window
}

func TestGreylistLearningDoesNotCreep(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.GreylistDefault = 6 * time.Second; o.GreylistMargin = time.Second })
	const d = "grey.test"
	mx := &greyMX{window: 10 * time.Second, first: map[string]time.Time{}}
	var windows []time.Duration
	for i := range 30 {
		rcpt := fmt.Sprintf("r%d@grey.test", i)
		queued := c.Now()
		tries := 0
		for at := c.Now(); ; {
			c.Set(at)
			tries++
			if mx.try(rcpt, at) {
				dec := p.Observe(d, Outcome{Reply: accepted, Rcpt: rcpt, Attempts: tries})
				if dec.Action != ActionDone {
					t.Fatalf("accepted: %+v", dec)
				}
				break
			}
			dec := p.Observe(d, Outcome{Reply: greylisted, Rcpt: rcpt, Attempts: tries})
			if dec.Action != ActionRetry || dec.Verdict.Class != ClassGreylist || dec.EndSession {
				t.Fatalf("greylisted: %+v", dec)
			}
			if tries > 5 {
				t.Fatalf("%s: %d tries", rcpt, tries)
			}
			at = dec.RetryAt
		}
		lag := c.Now().Sub(queued) - mx.window
		if i >= 2 && (tries != 2 || lag > 3*time.Second) {
			t.Errorf("%s: %d tries, lag %v after the window", rcpt, tries, lag)
		}
		windows = append(windows, mustState(t, p, d).GreylistWindow)
		c.Advance(time.Second)
	}
	for i := 2; i < len(windows); i++ {
		if windows[i] > windows[1] {
			t.Fatalf("learned window crept: %v", windows)
		}
	}
	if w := windows[len(windows)-1]; w < 10*time.Second || w > 13*time.Second {
		t.Errorf("learned window %v, want within [10s, 13s]", w)
	}
	if s := mustState(t, p, d); s.Concurrency != 20 || s.State != StateOpen {
		t.Errorf("greylisting touched the destination: %+v", s)
	}
	// The receiver lengthens its window: the bracket is dropped and
	// relearned instead of retrying forever at the old window.
	mx.window = 20 * time.Second
	rcpt := "late@grey.test"
	tries := 0
	for at := c.Now(); tries < 6; tries++ {
		c.Set(at)
		if mx.try(rcpt, at) {
			p.Observe(d, Outcome{Reply: accepted, Rcpt: rcpt})
			break
		}
		at = p.Observe(d, Outcome{Reply: greylisted, Rcpt: rcpt}).RetryAt
	}
	if w := mustState(t, p, d).GreylistWindow; tries >= 6 || w < 20*time.Second {
		t.Errorf("after the window grew: %d tries, learned %v", tries, w)
	}
}

func TestGreylistHint(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.GreylistMargin = time.Second })
	dec := p.Observe("d", Outcome{Reply: reply.Reply{Stage: reply.StageRcpt, Code: 451, Enhanced: "4.7.1", Text: "Greylisted, try again in 30 seconds"}, Rcpt: "a@d"})
	if want := c.Now().Add(31*time.Second + 500*time.Millisecond); !dec.RetryAt.Equal(want) {
		t.Errorf("RetryAt %v, want %v", dec.RetryAt, want)
	}
}

func TestRecipientReactions(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.RetryBase = time.Minute; o.RetryMax = time.Hour })
	now := c.Now()
	tests := []struct {
		r        reply.Reply
		attempts int
		action   Action
		retryIn  time.Duration
		suppress bool
		alarm    bool
		end      bool
	}{
		{reply.Reply{Stage: reply.StageRcpt, Code: 452, Enhanced: "4.2.2", Text: "Mailbox full"}, 3, ActionRetry, 4 * time.Minute, false, false, false},
		{reply.Reply{Stage: reply.StageRcpt, Code: 550, Enhanced: "5.1.1", Text: "No such user"}, 1, ActionBounce, 0, true, false, false},
		{reply.Reply{Stage: reply.StageDataEnd, Code: 554, Enhanced: "5.7.1", Text: "Message rejected as spam"}, 1, ActionBounce, 0, false, false, false},
		{reply.Reply{Stage: reply.StageDataEnd, Code: 421, Enhanced: "4.7.27", Text: "SPF authentication didn't pass"}, 2, ActionRetry, 2 * time.Minute, false, true, true},
		{reply.Reply{Stage: reply.StageDataEnd, Code: 250, Text: "ok"}, 1, ActionDone, 0, false, false, false},
	}
	for _, tc := range tests {
		dec := p.Observe("d", Outcome{Reply: tc.r, Rcpt: "u@d", Attempts: tc.attempts})
		var in time.Duration
		if !dec.RetryAt.IsZero() {
			in = dec.RetryAt.Sub(now)
		}
		if dec.Action != tc.action || in != tc.retryIn || dec.Suppress != tc.suppress || (dec.Alarm != "") != tc.alarm || dec.EndSession != tc.end {
			t.Errorf("Observe(%s) = %+v (retry in %v)", tc.r, dec, in)
		}
	}
	if dec := p.Observe("d", Outcome{Reply: reply.Reply{Stage: reply.StageRcpt, Code: 421, Enhanced: "4.7.28", Text: "Gmail has detected an unusual rate of mail originating from your IP address."}, Rcpt: "u@d"}); dec.Alarm != "" || !strings.Contains(dec.Verdict.Reason, "Gmail") {
		t.Errorf("throttle: %+v", dec)
	}
}

// A protocol error (issue 9 item 1) ends the session and retries the
// recipient with its own backoff; it never pauses or cuts the destination
// and never lowers messages per connection.
func TestProtocolErrorIsNotAThrottle(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.RetryBase = time.Minute; o.RetryMax = time.Hour })
	const d = "mx"
	admitN(p, d, 2)
	for range 4 {
		p.Observe(d, Outcome{Reply: accepted})
	}
	before := mustState(t, p, d)
	bad := reply.Reply{Stage: reply.StageData, Err: fmt.Errorf("%w: \"250 2.0.0 ok\" at data, expected 354", reply.ErrProtocol)}
	for attempts := 1; attempts <= 3; attempts++ {
		dec := p.Observe(d, Outcome{Reply: bad, Rcpt: "a@mx", Attempts: attempts})
		want := RetryDelay(attempts, time.Minute, time.Hour, 0.5)
		if dec.Verdict.Class != ClassProtocol || dec.Action != ActionRetry || !dec.EndSession || dec.RetryAt.Sub(c.Now()) != want {
			t.Fatalf("attempt %d: decision %+v, want protocol retry in %v with end of session", attempts, dec, want)
		}
	}
	after := mustState(t, p, d)
	if after.State != StateOpen || after.Concurrency != before.Concurrency || after.Rate != before.Rate || p.MessagesPerConnection(d) != 0 {
		t.Errorf("protocol errors changed the destination: before %+v, after %+v, msgs/conn %d", before, after, p.MessagesPerConnection(d))
	}
}

func TestReconnectLowersMsgsPerConn(t *testing.T) {
	t.Parallel()
	p, _ := fixture(t)
	const d = "yahoo"
	maxPerConn := reply.Reply{Stage: reply.StageMail, Code: 421, Text: "Max message per connection reached, closing transmission channel"}
	admitN(p, d, 2)
	for range 20 {
		p.Observe(d, Outcome{Reply: accepted})
	}
	want := []int{10, 5, 2, 1, 1}
	for i, w := range want {
		dec := p.Observe(d, Outcome{Reply: maxPerConn, Rcpt: "a@yahoo.com"})
		if !dec.EndSession || dec.Action != ActionRetry || dec.Verdict.Class != ClassReconnect {
			t.Fatalf("decision %+v", dec)
		}
		if got := p.MessagesPerConnection(d); got != w {
			t.Fatalf("round %d: msgs/conn %d, want %d", i, got, w)
		}
	}
	if s := mustState(t, p, d); s.Concurrency != 20 || s.State != StateOpen {
		t.Errorf("reconnect throttled the destination: %+v", s)
	}
}

func TestObserveExpiry(t *testing.T) {
	t.Parallel()
	p, _ := fixture(t, func(o *Options) { o.SuppressAfterExpiries = 3 })
	seq := []bool{false, false, true}
	for i, want := range seq {
		if got := p.ObserveExpiry("A@x.test"); got != want {
			t.Fatalf("expiry %d: %v", i, got)
		}
	}
	p.Observe("x.test", Outcome{Reply: accepted, Rcpt: "a@X.test"})
	if p.ObserveExpiry("a@x.test") {
		t.Fatal("a success must reset the count")
	}
	never, _ := fixture(t, func(o *Options) { o.SuppressAfterExpiries = 0 })
	for range 10 {
		if never.ObserveExpiry("a@x.test") {
			t.Fatal("SuppressAfterExpiries 0 must never suppress")
		}
	}
}

func TestPersistenceRoundTrip(t *testing.T) {
	t.Parallel()
	store := &memStore{}
	c := newClock()
	o := testOptions(func(o *Options) {
		o.Now = c.Now
		o.Rand = half
		o.Store = store
		o.RetryBase = time.Second
		o.RetryMax = time.Minute
		o.ThrottlePause = time.Second
		o.Rate = 40
		o.InitialConcurrency = 0
	})
	p := mustNew(t, o)
	admitN(p, "a", 20)
	p.Observe("a", Outcome{Reply: tooManyConns})
	p.Observe("y", Outcome{Reply: reply.Reply{Stage: reply.StageMail, Code: 421, Enhanced: "4.7.0", Text: "[TSS04] deferred due to unexpected volume"}})
	admitN(p, "b", 1)
	for range 4 {
		p.Observe("b", Outcome{Reply: accepted})
	}
	p.Observe("b", Outcome{Reply: reply.Reply{Stage: reply.StageMail, Code: 421, Text: "Max message per connection reached"}})
	p.Observe("b", Outcome{Reply: greylisted, Rcpt: "g@b"})
	c.Advance(30 * time.Second)
	p.Observe("b", Outcome{Reply: accepted, Rcpt: "g@b"})
	if err := p.SetLimits("c", Limits{MaxConcurrency: 3, Rate: 7}); err != nil {
		t.Fatal(err)
	}
	savesBefore := store.saves
	for range 5 { // successes alone do not write (no increase: not limited)
		p.Observe("b", Outcome{Reply: accepted})
	}
	if store.saves != savesBefore {
		t.Errorf("%d writes for plain successes", store.saves-savesBefore)
	}
	before := p.Snapshot()

	q := mustNew(t, o)
	after := q.Snapshot()
	if len(after) != len(before) {
		t.Fatalf("restored %d destinations, want %d", len(after), len(before))
	}
	for i := range before {
		b, a := before[i], after[i]
		if a.Name != b.Name || a.State != b.State || !a.PausedUntil.Equal(b.PausedUntil) || a.Concurrency != b.Concurrency ||
			a.MaxConcurrency != b.MaxConcurrency || a.Rate != b.Rate || a.MaxRate != b.MaxRate || a.MsgsPerConn != b.MsgsPerConn ||
			a.GreylistWindow != b.GreylistWindow {
			t.Errorf("restored %+v\nwant     %+v", a, b)
		}
	}
	if ok, _ := q.Admit("y"); ok {
		t.Error("a restart forgot the suspend")
	}
	// "a"'s pause has ended: after the restart it is half-open.
	if ok, _ := q.Admit("a"); !ok {
		t.Error("no probe after the restored pause")
	}
	if ok, _ := q.Admit("a"); ok {
		t.Error("a restart forgot the half-open state")
	}
}

func TestNewIgnoresCorruptState(t *testing.T) {
	t.Parallel()
	store := &memStore{m: map[string][]byte{"bad": []byte("{"), "good": []byte(`{"state":"open","concurrency":4}`)}}
	p := newTestPolicy(t, func(o *Options) { o.Store = store })
	if s := mustState(t, p, "good"); s.Concurrency != 4 {
		t.Errorf("good: %+v", s)
	}
	if _, ok := p.State("bad"); ok {
		t.Error("corrupt record restored")
	}
}

func TestSetAndResetLimits(t *testing.T) {
	t.Parallel()
	store := &memStore{}
	p, _ := fixture(t, func(o *Options) {
		o.Store = store
		o.Destinations = []DestinationOptions{{Match: "d", MaxConcurrency: 6, Rate: 30}}
	})
	if s := func() DestinationState { p.Admit("d"); p.Release("d"); return mustState(t, p, "d") }(); s.MaxConcurrency != 6 || s.MaxRate != 30 || s.Concurrency != 6 || s.Rate != 30 {
		t.Fatalf("config limits: %+v", s)
	}
	if err := p.SetLimits("d", Limits{MaxConcurrency: 2, Rate: 5}); err != nil {
		t.Fatal(err)
	}
	s := mustState(t, p, "d")
	if s.MaxConcurrency != 2 || s.Concurrency != 2 || s.MaxRate != 5 || s.Rate != 5 {
		t.Fatalf("after SetLimits: %+v", s)
	}
	if got := admitN(p, "d", 5); got != 2 {
		t.Fatalf("admitted %d under a runtime max of 2", got)
	}
	if _, ok := store.m["d"]; !ok {
		t.Fatal("runtime limits not persisted")
	}
	if err := p.ResetLimits("d"); err != nil {
		t.Fatal(err)
	}
	if s := mustState(t, p, "d"); s.MaxConcurrency != 6 || s.MaxRate != 30 {
		t.Fatalf("after ResetLimits: %+v", s)
	}
	for _, bad := range []Limits{{MaxConcurrency: 0}, {MaxConcurrency: 1, Rate: -1}} {
		if err := p.SetLimits("d", bad); err == nil {
			t.Errorf("SetLimits(%+v) accepted", bad)
		}
	}
}

func TestSenderWideAlarm(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.AlarmShare = 0.5; o.AlarmMinDestinations = 3; o.AlarmWindow = 10 * time.Minute })
	for _, d := range []string{"a", "b", "c", "d", "e"} {
		p.Admit(d)
		p.Observe(d, Outcome{Reply: accepted})
	}
	var raised []string
	for _, d := range []string{"a", "b", "c"} {
		if dec := p.Observe(d, Outcome{Reply: tooManyConns}); dec.Alarm != "" {
			raised = append(raised, d)
		}
	}
	if len(raised) != 1 || raised[0] != "c" {
		t.Fatalf("alarm raised by %v, want exactly by c (3 of 5)", raised)
	}
	on, why, since := p.Alarm()
	if !on || why == "" || !since.Equal(c.Now()) {
		t.Fatalf("Alarm() = %v %q %v", on, why, since)
	}
	c.Advance(11 * time.Minute)
	if on, _, _ := p.Alarm(); on {
		t.Fatal("alarm still on after the window")
	}
}

func TestDestinationGrouping(t *testing.T) {
	t.Parallel()
	mx, _ := fixture(t, func(o *Options) {
		o.GroupBy = "mx"
		o.Providers = []Provider{{Name: "fastmail", Suffixes: []string{"messagingengine.com"}}}
	})
	dom, _ := fixture(t, func(o *Options) { o.GroupBy = "domain" })
	tests := []struct {
		domain string
		hosts  []string
		mx     string
		dom    string
	}{
		{"gmail.com", []string{"gmail-smtp-in.l.google.com."}, "google", "gmail.com"},
		{"GoogleMail.com", []string{"ASPMX.L.GOOGLE.COM"}, "google", "googlemail.com"},
		{"corp.example", []string{"alt1.aspmx.l.google.com"}, "google", "corp.example"},
		{"outlook.com", []string{"outlook-com.olc.protection.outlook.com"}, "microsoft", "outlook.com"},
		{"hotmail.com", []string{"hotmail-com.olc.protection.outlook.com"}, "microsoft", "hotmail.com"},
		{"contoso.com", []string{"contoso-com.mail.protection.outlook.com"}, "microsoft", "contoso.com"},
		{"yahoo.com", []string{"mta5.am0.yahoodns.net"}, "yahoo", "yahoo.com"},
		{"aol.com", []string{"mx-aol.mail.gm0.yahoodns.net"}, "yahoo", "aol.com"},
		{"icloud.com", []string{"mx01.mail.icloud.com"}, "icloud", "icloud.com"},
		{"comcast.net", []string{"mx1a1.comcast.net"}, "comcast", "comcast.net"},
		{"gmx.de", []string{"mx00.emig.gmx.net"}, "gmx", "gmx.de"},
		{"web.de", []string{"mx-ha03.web.de"}, "gmx", "web.de"},
		{"orange.fr", []string{"smtp-in.orange.fr"}, "orange", "orange.fr"},
		{"mail.ru", []string{"mxs.mail.ru"}, "mailru", "mail.ru"},
		{"qq.com", []string{"mx3.qq.com"}, "qq", "qq.com"},
		{"163.com", []string{"163mx01.mxmail.netease.com"}, "163", "163.com"},
		{"fm.example", []string{"in1-smtp.messagingengine.com"}, "fastmail", "fm.example"},
		{"Small.Example.", []string{"mx.small.example"}, "small.example", "small.example"},
		{"route.test", nil, "route.test", "route.test"},
		{"evil.test", []string{"google.com.evil.test", "xgoogle.com"}, "evil.test", "evil.test"},
	}
	for _, tc := range tests {
		if got := mx.Destination(tc.domain, tc.hosts); got != tc.mx {
			t.Errorf("mx: Destination(%q, %v) = %q, want %q", tc.domain, tc.hosts, got, tc.mx)
		}
		if got := dom.Destination(tc.domain, tc.hosts); got != tc.dom {
			t.Errorf("domain: Destination(%q, %v) = %q, want %q", tc.domain, tc.hosts, got, tc.dom)
		}
	}
}

func TestDestinationOptionsByDomainUnderProvider(t *testing.T) {
	t.Parallel()
	p, _ := fixture(t, func(o *Options) {
		o.Destinations = []DestinationOptions{{Match: "gmail.com", MaxConcurrency: 5, Rate: 10}}
	})
	name := p.Group("gmail.com", []string{"aspmx.l.google.com"}, nil)
	if got := admitN(p, name, 10); got != 5 {
		t.Errorf("admitted %d at %s, want the gmail.com limit 5", got, name)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	p, c := fixture(t, func(o *Options) { o.Store = &memStore{}; o.MaxConcurrency = 4 })
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := fmt.Sprintf("d%d", g%3)
			for i := range 300 {
				if ok, _ := p.Admit(d); !ok {
					continue
				}
				p.Reserve(d)
				replies := []reply.Reply{accepted, tooManyConns, greylisted, outage, rateLimited}
				p.Observe(d, Outcome{Reply: replies[i%len(replies)], Rcpt: fmt.Sprintf("r%d@x", i), Attempts: 1})
				p.Release(d)
				c.Advance(time.Millisecond)
			}
			p.Snapshot()
			p.Alarm()
		}()
	}
	wg.Wait()
	for _, s := range p.Snapshot() {
		if s.Active != 0 || s.Concurrency < 1 || s.Concurrency > 4 {
			t.Errorf("inconsistent: %+v", s)
		}
	}
}

func TestOldSessionReleaseDoesNotFreeASecondProbe(t *testing.T) {
	t.Parallel()
	p, c := fixture(t)
	admitN(p, "d", 2) // two sessions; one sees the outage, the other lingers
	p.Observe("d", Outcome{Reply: outage})
	p.Release("d")
	c.Set(mustState(t, p, "d").PausedUntil)
	if ok, _ := p.Admit("d"); !ok {
		t.Fatal("probe refused")
	}
	p.Release("d") // the lingering old session ends
	if ok, _ := p.Admit("d"); ok {
		t.Fatal("second probe admitted while the first is in flight")
	}
}
