package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sluice/internal/fakeclock"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// fakeClock is the shared test clock (internal/fakeclock).
type fakeClock = fakeclock.Clock

// at returns a test clock set to t.
func at(t time.Time) *fakeClock {
	c := fakeclock.New()
	c.Set(t)
	return c
}

var testIPs = []netip.Addr{netip.MustParseAddr("192.0.2.7")}

func testZone() *fakeDNS {
	f := newFakeDNS()
	notUs := "v=spf1 ip4:198.51.100.1 -all"
	us := "v=spf1 ip4:192.0.2.7 -all"
	f.txt["example.test"] = []string{notUs}
	f.txt["_dmarc.example.test"] = []string{"v=DMARC1; p=reject"}
	f.txt["signed.test"] = []string{notUs}
	f.txt["_dmarc.signed.test"] = []string{"v=DMARC1; p=reject"}
	f.txt["spfok.test"] = []string{us}
	f.txt["_dmarc.spfok.test"] = []string{"v=DMARC1; p=reject"}
	f.txt["temp.test"] = []string{notUs}
	f.temp["_dmarc.temp.test"] = true
	f.temp["spftemp.test"] = true
	f.txt["_dmarc.spftemp.test"] = []string{"v=DMARC1; p=quarantine"}
	f.txt["none.test"] = []string{us}
	f.txt["unauth.test"] = []string{"v=spf1 ?all"}
	f.txt["pnone.test"] = []string{notUs}
	f.txt["_dmarc.pnone.test"] = []string{"v=DMARC1; p=none"}
	f.txt["org.test"] = []string{us}
	f.txt["news.org.test"] = []string{notUs}
	f.txt["_dmarc.org.test"] = []string{"v=DMARC1; p=none; sp=reject"}
	f.txt["strict.test"] = []string{notUs}
	f.txt["mail.strict.test"] = []string{us}
	f.txt["_dmarc.strict.test"] = []string{"v=DMARC1; p=reject; aspf=s"}
	return f
}

// inputOf completes in with the message msg, read from memory.
func inputOf(in Input, msg []byte) Input {
	in.Header = messageHeader(msg)
	in.Open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(msg)), nil }
	return in
}

func msgFrom(fromLines string) []byte {
	return []byte(fromLines + "To: u@dest.test\r\nSubject: s\r\nMessage-ID: <x@y.test>\r\n\r\nhi\r\n")
}

// TestCheckVerdicts is the DMARC verdict table across the three modes,
// including the From-header spoofing shapes and allowed_from.
func TestCheckVerdicts(t *testing.T) {
	t.Parallel()
	fake := testZone()
	key := keyFixture(t, fake, "signed.test", "s1", "ed25519", false)
	users := map[string][]string{"app": {"signed.test"}, "free": nil}
	tests := []struct {
		name     string
		mode     string
		mailFrom string
		from     string // From header line(s), CRLF-terminated
		user     string
		code     int    // 0 = accepted
		enh      string // enhanced code when refused
		dmarc    string
		reason   string // substring of some reason
	}{
		{"reject policy, SPF fail, no key", ModeEnforce, "b@example.test", "From: a@example.test\r\n", "", 550, "5.7.1", "fail",
			"example.test publishes p=reject and this message would fail DMARC: SPF does not cover 192.0.2.7 and there is no DKIM key for example.test"},
		{"same in warn accepts", ModeWarn, "b@example.test", "From: a@example.test\r\n", "", 0, "", "fail", "publishes p=reject"},
		{"aligned DKIM passes", ModeEnforce, "b@example.test", "From: a@signed.test\r\n", "", 0, "", "pass", ""},
		{"aligned SPF passes", ModeEnforce, "b@spfok.test", "From: a@spfok.test\r\n", "", 0, "", "pass", ""},
		{"DMARC temperror enforce", ModeEnforce, "b@temp.test", "From: a@temp.test\r\n", "", 451, "4.4.3", "temperror", "failed temporarily"},
		{"DMARC temperror warn", ModeWarn, "b@temp.test", "From: a@temp.test\r\n", "", 0, "", "temperror", "failed temporarily"},
		{"SPF temperror with p=quarantine", ModeEnforce, "b@spftemp.test", "From: a@spftemp.test\r\n", "", 451, "4.4.3", "fail", "failed temporarily"},
		{"no DMARC, SPF pass", ModeEnforce, "b@none.test", "From: a@none.test\r\n", "", 0, "", "pass", ""},
		{"no DMARC, unauthenticated", ModeEnforce, "b@unauth.test", "From: a@unauth.test\r\n", "", 550, "5.7.1", "none", "not authenticated"},
		{"p=none failing is accepted", ModeEnforce, "b@pnone.test", "From: a@pnone.test\r\n", "", 0, "", "fail", "p=none"},
		{"subdomain policy sp=reject", ModeEnforce, "b@news.org.test", "From: a@news.org.test\r\n", "", 550, "5.7.1", "fail", "org.test publishes sp=reject"},
		{"relaxed SPF alignment of a subdomain", ModeEnforce, "b@org.test", "From: a@news.org.test\r\n", "", 0, "", "pass", ""},
		{"strict SPF alignment", ModeEnforce, "b@mail.strict.test", "From: a@strict.test\r\n", "", 550, "5.7.1", "fail", "not aligned with strict.test (aspf=s)"},
		{"null sender, aligned DKIM", ModeEnforce, "", "From: a@signed.test\r\n", "", 0, "", "pass", ""},
		{"two From headers", ModeEnforce, "b@signed.test", "From: a@signed.test\r\nFrom: ceo@bank.test\r\n", "", 550, "5.7.1", "fail", "2 From headers"},
		{"space-padded From :", ModeEnforce, "b@signed.test", "From: a@signed.test\r\nFrom : ceo@bank.test\r\n", "", 550, "5.7.1", "fail", "2 From headers"},
		{"folded From", ModeEnforce, "b@example.test", "From:\r\n A <a@signed.test>\r\n", "", 0, "", "pass", ""},
		{"several addresses", ModeEnforce, "b@signed.test", "From: a@signed.test, ceo@bank.test\r\n", "", 550, "5.7.1", "fail", "2 addresses"},
		{"unparseable From", ModeEnforce, "b@signed.test", "From: <<<a@signed.test\r\n", "", 550, "5.7.1", "fail", "cannot be parsed"},
		{"no From", ModeEnforce, "b@signed.test", "", "", 550, "5.7.1", "fail", "no From header"},
		{"encoded-word display name", ModeEnforce, "b@x.test", "From: =?utf-8?q?ceo=40bank.test?= <a@signed.test>\r\n", "", 0, "", "pass", ""},
		{"encoded-word hiding the address", ModeEnforce, "b@x.test", "From: =?utf-8?q?ceo=40bank.test?=\r\n", "", 550, "5.7.1", "fail", "cannot be parsed"},
		{"spoofing shapes in warn accept", ModeWarn, "b@signed.test", "From: a@signed.test\r\nFrom: ceo@bank.test\r\n", "", 0, "", "fail", "2 From headers"},
		{"allowed_from envelope", ModeWarn, "b@example.test", "From: a@signed.test\r\n", "app", 553, "5.7.1", "", "envelope domain example.test"},
		{"allowed_from From", ModeOff, "b@signed.test", "From: a@example.test\r\n", "app", 553, "5.7.1", "", "From domain example.test"},
		{"allowed_from ok", ModeEnforce, "b@signed.test", "From: a@signed.test\r\n", "app", 0, "", "pass", ""},
		{"unrestricted user", ModeWarn, "b@example.test", "From: a@example.test\r\n", "free", 0, "", "fail", ""},
		{"off mode skips checks", ModeOff, "b@example.test", "From: a@example.test\r\n", "", 0, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := at(time.Unix(1_800_000_000, 0))
			c, err := New(testOptions(func(o *Options) {
				o.Mode = tc.mode
				o.OutboundIPs = testIPs
				o.Keys = []KeyConfig{key}
				o.Users = users
				o.Resolver = fake
				o.Now = clock.Now
			}))
			if err != nil {
				t.Fatal(err)
			}
			_, v, err := c.Check(context.Background(), inputOf(Input{MailFrom: tc.mailFrom, User: tc.user}, msgFrom(tc.from)))
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("refused: %v (verdict %+v)", err, v)
				}
			} else {
				se, ok := err.(*smtp.SMTPError) // bare, as go-smtp requires
				if !ok {
					t.Fatalf("err = %#v, want a bare *smtp.SMTPError %d", err, tc.code)
				}
				enh := fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
				if se.Code != tc.code || enh != tc.enh {
					t.Fatalf("got %d %s, want %d %s", se.Code, enh, tc.code, tc.enh)
				}
				if tc.reason != "" && !strings.Contains(se.Message, tc.reason) && !strings.Contains(strings.Join(v.Reasons, "|"), tc.reason) {
					t.Errorf("message %q lacks %q", se.Message, tc.reason)
				}
			}
			if v.DMARC != tc.dmarc {
				t.Errorf("DMARC = %q, want %q (reasons %q)", v.DMARC, tc.dmarc, v.Reasons)
			}
			if tc.reason != "" && !strings.Contains(strings.Join(v.Reasons, "|"), tc.reason) {
				t.Errorf("reasons %q lack %q", v.Reasons, tc.reason)
			}
		})
	}
}

// TestCheckRejectMessageExact pins the actionable 550 text of the brief.
func TestCheckRejectMessageExact(t *testing.T) {
	t.Parallel()
	c, err := New(testOptions(func(o *Options) { o.Mode = ModeEnforce; o.OutboundIPs = testIPs; o.Resolver = testZone() }))
	if err != nil {
		t.Fatal(err)
	}
	_, v, err := c.Check(context.Background(), inputOf(Input{MailFrom: "b@example.test"}, msgFrom("From: a@example.test\r\n")))
	want := "example.test publishes p=reject and this message would fail DMARC: SPF does not cover 192.0.2.7 and there is no DKIM key for example.test"
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) || se.Message != want {
		t.Fatalf("err = %v, want 550 5.7.1 %s", err, want)
	}
	if !v.Reject || v.Aligned || v.Policy != "reject" || v.SPF != "fail" || v.DKIM != "none" {
		t.Errorf("verdict %+v", v)
	}
	if got := c.Verdicts()["reject"]; got != 1 {
		t.Errorf("reject counter = %d", got)
	}
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	if _, err := New(testOptions(func(o *Options) { o.Mode = ModeEnforce })); err == nil {
		t.Error("enforce without outbound_ips accepted")
	}
	if _, err := New(testOptions(func(o *Options) { o.Mode = "loud" })); err == nil {
		t.Error("unknown mode accepted")
	}
	if _, err := New(testOptions(func(o *Options) {
		o.Keys = []KeyConfig{{Domain: "a.test", Selector: "s", KeyFile: "/nonexistent.invalid"}}
	})); err == nil {
		t.Error("missing key file accepted")
	}
	c, err := New(testOptions(func(o *Options) { o.Mode = ModeWarn; o.Resolver = testZone() }))
	if err != nil {
		t.Fatal(err)
	}
	_, v, _ := c.Check(context.Background(), inputOf(Input{MailFrom: "b@example.test"}, msgFrom("From: a@example.test\r\n")))
	if !v.SPFAssumed || !strings.Contains(strings.Join(v.Reasons, "|"), "assumed address") {
		t.Errorf("warn without outbound_ips does not report the assumed address: %+v", v)
	}
}

// TestResolverCooldown: after one timeout, lookups are skipped (temperror
// at once) until the cooldown passes on the injected clock.
func TestResolverCooldown(t *testing.T) {
	t.Parallel()
	fake := testZone()
	fake.hang["_dmarc.slow.test"] = true
	fake.txt["slow.test"] = []string{"v=spf1 -all"}
	clock := at(time.Unix(1_800_000_000, 0))
	c, err := New(testOptions(func(o *Options) {
		o.Mode = ModeEnforce
		o.OutboundIPs = testIPs
		o.Resolver = fake
		o.Now = clock.Now
		o.DNSTimeout = 20 * time.Millisecond
		o.ResolverCooldown = time.Minute
	}))
	if err != nil {
		t.Fatal(err)
	}
	_, v, err := c.Check(context.Background(), inputOf(Input{MailFrom: "b@slow.test"}, msgFrom("From: a@slow.test\r\n")))
	if !v.TempError || err == nil || err.(*smtp.SMTPError).Code != 451 {
		t.Fatalf("timeout: verdict %+v err %v, want 451", v, err)
	}
	before := fake.calls.Load()
	_, v, err = c.Check(context.Background(), inputOf(Input{MailFrom: "b@pnone.test"}, msgFrom("From: a@pnone.test\r\n")))
	if fake.calls.Load() != before {
		t.Errorf("resolver called during cooldown")
	}
	if err == nil || !v.TempError {
		t.Errorf("during cooldown: verdict %+v err %v, want temperror", v, err)
	}
	clock.Advance(2 * time.Minute)
	_, v, err = c.Check(context.Background(), inputOf(Input{MailFrom: "b@pnone.test"}, msgFrom("From: a@pnone.test\r\n")))
	if err != nil || v.TempError || fake.calls.Load() == before {
		t.Errorf("after cooldown: verdict %+v err %v", v, err)
	}
}

// TestDNSCacheTTL: answers are reused until the TTL passes.
func TestDNSCacheTTL(t *testing.T) {
	t.Parallel()
	fake := testZone()
	clock := at(time.Unix(1_800_000_000, 0))
	c, err := New(testOptions(func(o *Options) {
		o.Mode = ModeWarn
		o.OutboundIPs = testIPs
		o.Resolver = fake
		o.Now = clock.Now
		o.CacheTTL = time.Minute
	}))
	if err != nil {
		t.Fatal(err)
	}
	in := inputOf(Input{MailFrom: "b@example.test"}, msgFrom("From: a@example.test\r\n"))
	c.Check(context.Background(), in)
	n := fake.calls.Load()
	c.Check(context.Background(), in)
	if fake.calls.Load() != n {
		t.Errorf("second check made %d lookups, want 0", fake.calls.Load()-n)
	}
	clock.Advance(2 * time.Minute)
	c.Check(context.Background(), in)
	if fake.calls.Load() == n {
		t.Error("no lookup after the TTL passed")
	}
}

// ttlCachingDNS is a Resolver that caches by TTL itself, as the daemon's
// shared resolver.Compat does.
type ttlCachingDNS struct{ *fakeDNS }

func (ttlCachingDNS) CachesAnswers() {}

// TestDNSCacheLeftToTTLResolver: over a resolver that caches by the
// records' own TTLs, auth does not cache answers again (every check asks
// it), and its cooldown after a timeout still holds.
func TestDNSCacheLeftToTTLResolver(t *testing.T) {
	t.Parallel()
	fake := testZone()
	clock := at(time.Unix(1_800_000_000, 0))
	c, err := New(testOptions(func(o *Options) {
		o.Mode = ModeWarn
		o.OutboundIPs = testIPs
		o.Resolver = ttlCachingDNS{fake}
		o.Now = clock.Now
		o.CacheTTL = time.Hour
	}))
	if err != nil {
		t.Fatal(err)
	}
	in := inputOf(Input{MailFrom: "b@example.test"}, msgFrom("From: a@example.test\r\n"))
	c.Check(context.Background(), in)
	n := fake.calls.Load()
	c.Check(context.Background(), in)
	if fake.calls.Load() == n {
		t.Error("the second check answered from auth's own cache, not the resolver's")
	}
	if c.dns.cache {
		t.Error("dnsCache caches over a TTL-caching resolver")
	}
}
