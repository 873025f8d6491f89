package policy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"sluice/reply"
)

func newTestPolicy(t testing.TB, tweaks ...func(*Options)) *Policy {
	t.Helper()
	return mustNew(t, testOptions(tweaks...))
}

func TestClassify(t *testing.T) {
	t.Parallel()
	p := newTestPolicy(t)
	tests := []struct {
		name  string
		r     reply.Reply
		class Class
		scope Scope
		rule  string
		fix   string
		delay time.Duration
		forD  time.Duration
	}{
		// shared/replies.md, every text.
		{"gmail 4.7.28", rp(reply.StageMail, 421, "4.7.28", "Gmail has detected an unusual rate of mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.", nil), ClassThrottle, ScopeBoth, "builtin:gmail-4.7.28", "", 0, 0},
		{"gmail old unusual rate", rp(reply.StageData, 421, "4.7.0", "Our system has detected an unusual rate of unsolicited mail originating from your IP address.", nil), ClassThrottle, ScopeBoth, "builtin:gmail-unusual-rate", "", 0, 0},
		{"gmail try again later closing", rp(reply.StageEHLO, 421, "4.7.0", "Try again later, closing connection.", nil), ClassThrottle, ScopeConnections, "builtin:gmail-4.7.0-closing", "", 0, 0},
		{"gmail 4.2.1 too quickly", rp(reply.StageRcpt, 450, "4.2.1", "The user you are trying to contact is receiving mail too quickly.", nil), ClassRecipientTemp, "", "builtin:gmail-4.2.1", "", 0, 0},
		{"gmail 4.7.26 unauthenticated", rp(reply.StageDataEnd, 421, "4.7.26", "This mail has been rate limited because it is unauthenticated.", nil), ClassAuthFix, "", "builtin:gmail-auth", "authentication", 0, 0},
		{"gmail 4.7.27 spf", rp(reply.StageDataEnd, 421, "4.7.27", "Your email has been rate limited because SPF authentication didn't pass for this message.", nil), ClassAuthFix, "", "builtin:gmail-auth", "SPF", 0, 0},
		{"gmail 4.7.30 dkim", rp(reply.StageDataEnd, 421, "4.7.30", "Your email has been rate limited because DKIM authentication didn't pass for this message.", nil), ClassAuthFix, "", "builtin:gmail-auth", "DKIM", 0, 0},
		// RFC 8689 §5: REQUIRETLS refusals bounce the message and are no auth alarm (issue 14 item 5).
		{"requiretls 5.7.30", rp(reply.StageMail, 550, "5.7.30", "REQUIRETLS support required: next hop mx.test does not offer it", nil), ClassPermanent, "", "builtin:requiretls", "", 0, 0},
		{"requiretls 5.7.10", rp(reply.StageMail, 550, "5.7.10", "REQUIRETLS: the TLS session with mx.test is not verified", nil), ClassPermanent, "", "builtin:requiretls", "", 0, 0},
		{"gmail 5.7.30 is still auth", rp(reply.StageDataEnd, 550, "5.7.30", "Your email has been blocked because DKIM authentication didn't pass for this message.", nil), ClassAuthFix, "", "builtin:gmail-auth", "DKIM", 0, 0},
		{"gmail 4.7.32 alignment", rp(reply.StageDataEnd, 421, "4.7.32", "Your email has been rate limited because the From: header isn't aligned with either the authenticated SPF or DKIM organizational domain.", nil), ClassAuthFix, "", "builtin:gmail-auth", "alignment", 0, 0},
		{"gmail 4.7.23 ptr", rp(reply.StageRcpt, 421, "4.7.23", "The sending IP address for this message doesn't have a PTR record.", nil), ClassAuthFix, "", "builtin:gmail-4.7.23", "PTR", 0, 0},
		{"gmail 4.7.29 tls", rp(reply.StageDataEnd, 421, "4.7.29", "Your email has been rate limited because this message wasn't sent over a TLS connection.", nil), ClassAuthFix, "", "builtin:gmail-4.7.29", "TLS", 0, 0},
		{"gmail 4.3.0", rp(reply.StageMail, 421, "4.3.0", "Temporary System Problem. Try again later.", nil), ClassUnavailable, "", "builtin:gmail-4.3.0", "", 0, 0},
		{"yahoo TSS04", rp(reply.StageMail, 421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", nil), ClassSuspend, ScopeBoth, "builtin:yahoo-TSS04", "", 0, 2 * time.Hour},
		{"yahoo TS03", rp(reply.StageMail, 421, "4.7.1", "[TS03] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes", nil), ClassSuspend, ScopeBoth, "builtin:yahoo-TS03", "", 0, 12 * time.Hour},
		{"yahoo max per conn", rp(reply.StageMail, 421, "", "Max message per connection reached, closing transmission channel", nil), ClassReconnect, "", "builtin:max-msgs-per-conn", "", 0, 0},
		{"ms 4.7.650", rp(reply.StageMail, 451, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S775)", nil), ClassThrottle, ScopeBoth, "builtin:microsoft-4.7.650", "", 0, 90 * time.Minute},
		{"http 421", rp(reply.StageMail, 421, "", "HTTP/2 421 Misdirected Request", nil), ClassReconnect, "", "builtin:http-421", "", 0, 0},
		{"ms 4.7.652", rp(reply.StageMail, 451, "4.7.652", "The mail server [192.0.2.1] has exceeded the maximum number of connections.", nil), ClassThrottle, ScopeConnections, "builtin:microsoft-4.7.652", "", 0, 0},
		{"ms 4.7.500", rp(reply.StageRcpt, 451, "4.7.500", "Server busy. Please try again later from [192.0.2.1]. (S77719)", nil), ClassThrottle, ScopeBoth, "builtin:microsoft-4.7.500", "", 0, 0},
		{"ms RP-001", rp(reply.StageMail, 421, "", "RP-001 (BAY004-MC1F37) Unfortunately, some messages from 192.0.2.1 weren't sent. Please try again. We have limits for how many messages can be sent per hour and per day.", nil), ClassThrottle, ScopeRate, "builtin:microsoft-RP", "", 0, 0},
		{"comcast sessions", rp(reply.StageGreeting, 421, "", "resimta-po-01v.sys.comcast.net comcast 192.0.2.1 Too many sessions opened", nil), ClassThrottle, ScopeConnections, "builtin:comcast-sessions", "", 0, 0},
		{"comcast throttled", rp(reply.StageMail, 421, "4.1.0", "192.0.2.1 Throttled - try again later. Please see http://postmaster.comcast.net/smtp-error-codes.php#RL000001", nil), ClassThrottle, ScopeRate, "builtin:comcast-RL", "", 0, 0},
		{"comcast RL0000", rp(reply.StageMail, 421, "", "RL0000 rate limited, try later", nil), ClassThrottle, ScopeRate, "builtin:comcast-RL", "", 0, 0},
		{"postgrey", rp(reply.StageRcpt, 450, "4.2.0", "<bob@example.com>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.com.html", nil), ClassGreylist, "", "builtin:postgrey", "", 0, 0},
		// Issue 11: a 4.7.1 is no longer greylisting by itself; rspamd's
		// reply is greylisting by its delay phrase.
		{"rspamd", rp(reply.StageRcpt, 451, "4.7.1", "Try again later", nil), ClassGreylist, "", "keyword:delay", "", 0, 0},
		{"greylist hint seconds", rp(reply.StageRcpt, 451, "4.7.1", "Greylisted, please try again in 30 seconds", nil), ClassGreylist, "", "builtin:postgrey", "", 30 * time.Second, 0},
		{"greylist come back", rp(reply.StageRcpt, 450, "", "You are greylisted, come back in 00:05:00", nil), ClassGreylist, "", "builtin:postgrey", "", 5 * time.Minute, 0},
		{"greylist no word", rp(reply.StageRcpt, 450, "", "please retry in 5 minutes", nil), ClassGreylist, "", "keyword:delay", "", 5 * time.Minute, 0},
		{"qq frequency 550", rp(reply.StageMail, 550, "", "Mail content denied. frequency limited http://service.mail.qq.com/cgi-bin/help?subtype=1", nil), ClassThrottle, ScopeRate, "builtin:cn-frequency", "", 0, 0},
		{"163 connection frequency", rp(reply.StageGreeting, 554, "", "HL:IHU Connection frequency limited. http://mail.163.com/help/help_spam_16.htm", nil), ClassThrottle, ScopeConnections, "builtin:cn-connection-frequency", "", 0, 0},
		{"postfix unknown hostname", rp(reply.StageRcpt, 450, "4.7.1", "Client host rejected: cannot find your hostname, [192.0.2.1]", nil), ClassAuthFix, "", "builtin:ptr-missing", "PTR", 0, 0},
		{"postfix unknown reverse hostname", rp(reply.StageRcpt, 450, "4.7.25", "Client host rejected: cannot find your reverse hostname, [192.0.2.1]", nil), ClassAuthFix, "", "builtin:ptr-missing", "PTR", 0, 0},
		{"gmail multiple domains", rp(reply.StageRcpt, 451, "4.3.0", "Multiple destination domains per transaction is unsupported. Please try again.", nil), ClassRecipientTemp, "", "builtin:gmail-multiple-domains", "", 0, 0},
		{"163 too frequent", rp(reply.StageRcpt, 550, "", "RP:TRC sending too frequent", nil), ClassThrottle, ScopeRate, "builtin:cn-frequency", "", 0, 0},
		// Generic reading.
		{"250", rp(reply.StageDataEnd, 250, "2.0.0", "OK queued as 1234", nil), ClassSuccess, "", "generic:2xx", "", 0, 0},
		// Issue 9 item 1: only a 2xx after the final dot is a delivery;
		// any other 2xx/3xx (as the outbound side reports it, or a line
		// given to `sluice explain`) is a protocol error, never success.
		{"354 at data", rp(reply.StageData, 354, "", "go ahead", nil), ClassProtocol, "", "protocol:data", "", 0, 0},
		{"250 at data", rp(reply.StageData, 250, "2.0.0", "ok", nil), ClassProtocol, "", "protocol:data", "", 0, 0},
		{"354 at mail", rp(reply.StageMail, 354, "", "go ahead", nil), ClassProtocol, "", "protocol:mail", "", 0, 0},
		{"252 at rcpt", rp(reply.StageRcpt, 252, "2.1.5", "cannot verify", nil), ClassProtocol, "", "protocol:rcpt", "", 0, 0},
		{"250 at greeting", rp(reply.StageGreeting, 250, "", "hi", nil), ClassProtocol, "", "protocol:greeting", "", 0, 0},
		{"334 at auth", rp(reply.StageAuth, 334, "", "", nil), ClassProtocol, "", "protocol:auth", "", 0, 0},
		{"354 at data-end", rp(reply.StageDataEnd, 354, "", "again?", nil), ClassProtocol, "", "protocol:data-end", "", 0, 0},
		{"251 at data-end", rp(reply.StageDataEnd, 251, "", "ok", nil), ClassSuccess, "", "generic:2xx", "", 0, 0},
		{"out of sequence error", rp(reply.StageDataEnd, 0, "", "", fmt.Errorf("%w: unrequested data after the reply", reply.ErrProtocol)), ClassProtocol, "", "protocol:data-end", "", 0, 0},
		// Issue 11: the wording decides before the enhanced code.
		{"outage 4.3.2 greeting", rp(reply.StageGreeting, 421, "4.3.2", "Service shutting down", nil), ClassUnavailable, "", "keyword:unavailable", "", 0, 0},
		{"outage 4.3.2 greeting, code only", rp(reply.StageGreeting, 421, "4.3.2", "see you", nil), ClassUnavailable, "", "generic:4.3.x", "", 0, 0},
		// Issue 11 (c): a full receiver is its own fault (it was a
		// throttle): sending more slowly does not free its disk.
		{"4.3.1 at data", rp(reply.StageDataEnd, 452, "4.3.1", "Insufficient system storage", nil), ClassUnavailable, "", "keyword:fault", "", 0, 0},
		{"4.3.1 at data, code only", rp(reply.StageDataEnd, 452, "4.3.1", "see you", nil), ClassUnavailable, "", "generic:4.3.x", "", 0, 0},
		{"4.4.x", rp(reply.StageMail, 451, "4.4.1", "No answer from host", nil), ClassUnavailable, "", "generic:4.4.x", "", 0, 0},
		{"4.2.2 full", rp(reply.StageRcpt, 452, "4.2.2", "Mailbox full", nil), ClassRecipientTemp, "", "keyword:mailbox", "", 0, 0},
		{"4.2.2 code only", rp(reply.StageRcpt, 452, "4.2.2", "see you", nil), ClassRecipientTemp, "", "generic:4.2.x", "", 0, 0},
		{"4.7.0 at greeting unseen", rp(reply.StageGreeting, 421, "4.7.0", "go away for a while", nil), ClassThrottle, ScopeConnections, "generic:4.7.x", "", 0, 0},
		{"4.7.0 at mail unseen", rp(reply.StageMail, 421, "4.7.0", "go away for a while", nil), ClassThrottle, ScopeBoth, "generic:4.7.x", "", 0, 0},
		{"4.7.0 rate at mail", rp(reply.StageMail, 451, "4.7.0", "message rate exceeded", nil), ClassThrottle, ScopeRate, "keyword:rate", "", 0, 0},
		{"too many connections no enh", rp(reply.StageGreeting, 421, "", "Too many connections from your IP", nil), ClassThrottle, ScopeConnections, "keyword:too many connections", "", 0, 0},
		{"per hour no enh", rp(reply.StageMail, 450, "", "You sent too many messages per hour", nil), ClassThrottle, ScopeRate, "keyword:rate", "", 0, 0},
		{"busy no enh", rp(reply.StageMail, 450, "", "Server busy, try again later", nil), ClassThrottle, ScopeBoth, "keyword:busy", "", 0, 0},
		{"421 greeting no text", rp(reply.StageGreeting, 421, "", "", nil), ClassUnavailable, "", "keyword:unavailable", "", 0, 0},
		{"421 service not available", rp(reply.StageGreeting, 421, "", "mx.example Service not available, closing transmission channel", nil), ClassUnavailable, "", "keyword:unavailable", "", 0, 0},
		{"unseen 421 mid session", rp(reply.StageDataEnd, 421, "", "the moon is in the wrong phase", nil), ClassThrottle, ScopeBoth, "generic:421", "", 0, 0},
		{"unseen 4xx rcpt", rp(reply.StageRcpt, 450, "", "the moon is in the wrong phase", nil), ClassRecipientTemp, "", "generic:4xx", "", 0, 0},
		// Issue 11 (c): RFC 5321's 451 text "local error in processing"
		// is a receiver fault now (TestClassifyFamilies); an unseen text
		// still falls back to recipient-temp.
		{"unseen 451 data-end", rp(reply.StageDataEnd, 451, "4.0.0", "hmm, not now", nil), ClassRecipientTemp, "", "generic:4xx", "", 0, 0},
		{"unseen 5xx", rp(reply.StageRcpt, 550, "5.1.1", "No such user", nil), ClassPermanent, "", "generic:5xx", "", 0, 0},
		{"5.7.1 relay denied", rp(reply.StageRcpt, 554, "5.7.1", "Relay access denied", nil), ClassPermanent, "", "generic:5xx", "", 0, 0},
		{"code 0 no err", rp(reply.StageGreeting, 0, "", "", nil), ClassUnavailable, "", "generic:no-reply", "", 0, 0},
		{"garbage code", rp(reply.StageMail, 999, "9.9.9", "???", nil), ClassUnavailable, "", "generic:no-reply", "", 0, 0},
		{"bad enhanced", rp(reply.StageRcpt, 450, "4.7", "hmm", nil), ClassRecipientTemp, "", "generic:4xx", "", 0, 0},
		// Network errors.
		{"connect refused", rp(reply.StageConnect, 0, "", "", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), ClassUnavailable, "", "network:connect", "", 0, 0},
		{"timeout", rp(reply.StageGreeting, 0, "", "", fmt.Errorf("read: %w", context.DeadlineExceeded)), ClassUnavailable, "", "network:timeout", "", 0, 0},
		{"tls", rp(reply.StageSTARTTLS, 0, "", "", x509.UnknownAuthorityError{}), ClassUnavailable, "", "network:tls", "", 0, 0},
		{"reset mid data", rp(reply.StageData, 0, "", "", errors.New("connection reset by peer")), ClassUnavailable, "", "network:error", "", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := p.Classify(tc.r)
			if v.Class != tc.class || v.Scope != tc.scope || v.Rule != tc.rule || v.Fix != tc.fix || v.Delay != tc.delay || v.For != tc.forD {
				t.Errorf("Classify(%s) = %+v; want class %s scope %q rule %s fix %q delay %v for %v",
					tc.r, v, tc.class, tc.scope, tc.rule, tc.fix, tc.delay, tc.forD)
			}
			if v.Reason == "" {
				t.Errorf("Classify(%s): empty Reason", tc.r)
			}
		})
	}
}

// TestClassifyFamilies covers the five families of issue 11 with
// paraphrases of our own (and the issue's own examples), each checked for
// class, scope and delay hint; the rule named is the level that decided.
func TestClassifyFamilies(t *testing.T) {
	t.Parallel()
	p := newTestPolicy(t)
	type row struct {
		name  string
		r     reply.Reply
		class Class
		scope Scope
		rule  string
		delay time.Duration
	}
	families := map[string][]row{
		// (a) A delay next to words about connections, rate or volume is
		// a throttle, and the delay is the pause hint.
		"a-throttle-with-delay": {
			{"issue example", rp(reply.StageGreeting, 421, "4.7.0", "Too many connections from your IP, try again in 60 seconds", nil), ClassThrottle, ScopeConnections, "keyword:too many connections", time.Minute},
			{"connection limit at greeting", rp(reply.StageGreeting, 421, "4.7.0", "Connection limit reached for 192.0.2.7; please retry in 2 minutes", nil), ClassThrottle, ScopeConnections, "keyword:too many connections", 2 * time.Minute},
			{"sending too fast at mail", rp(reply.StageMail, 451, "4.7.1", "You are sending too fast. Try again in 90 seconds", nil), ClassThrottle, ScopeRate, "keyword:rate", 90 * time.Second},
			{"volume at rcpt with clock", rp(reply.StageRcpt, 450, "4.7.1", "Message volume from your host is too high, come back in 00:10:00", nil), ClassThrottle, ScopeRate, "keyword:rate", 10 * time.Minute},
			{"maximum number of connections", rp(reply.StageGreeting, 421, "4.3.2", "The maximum number of concurrent server connections has exceeded a limit, closing transmission channel", nil), ClassThrottle, ScopeConnections, "keyword:too many connections", 0},
			{"postfix anvil recipients", rp(reply.StageRcpt, 450, "4.7.1", "Error: too many recipients from 192.0.2.1", nil), ClassThrottle, ScopeRate, "keyword:rate", 0},
			{"simultaneous sessions wait", rp(reply.StageEHLO, 421, "", "Too many simultaneous sessions from your address, wait 30 seconds", nil), ClassThrottle, ScopeConnections, "keyword:too many connections", 30 * time.Second},
			{"rate limit decimal hint", rp(reply.StageRcpt, 451, "4.7.1", "Rate limit exceeded, retry in 1.5 minutes", nil), ClassThrottle, ScopeRate, "keyword:rate", 90 * time.Second},
			{"hourly limit at data-end", rp(reply.StageDataEnd, 451, "4.7.0", "Hourly message limit for your account reached, try again in half an hour", nil), ClassThrottle, ScopeRate, "keyword:rate", 30 * time.Minute},
		},
		// (b) A rate limit on one mailbox: recipient-temp, the
		// destination's rate is not cut.
		"b-mailbox-rate": {
			{"issue example", rp(reply.StageRcpt, 450, "4.7.1", "recipient <u@example.org> receives too many messages, slow down", nil), ClassRecipientTemp, "", "keyword:mailbox", 0},
			{"recipient has received too many", rp(reply.StageRcpt, 451, "4.7.1", "The recipient <ann@example.net> has received too many messages in the last hour", nil), ClassRecipientTemp, "", "keyword:mailbox", 0},
			{"rate limit for this recipient", rp(reply.StageRcpt, 452, "4.7.0", "Rate limit for this recipient exceeded; try again in 10 minutes", nil), ClassRecipientTemp, "", "keyword:mailbox", 10 * time.Minute},
			{"too many messages for address", rp(reply.StageRcpt, 450, "", "Too many messages for <bob@example.org>, slow down", nil), ClassRecipientTemp, "", "keyword:mailbox", 0},
			{"per-mailbox limit at data-end", rp(reply.StageDataEnd, 451, "4.7.1", "Per-mailbox rate limit reached for <c@example.com>", nil), ClassRecipientTemp, "", "keyword:mailbox", 0},
			{"inbox getting mail faster", rp(reply.StageRcpt, 450, "4.7.1", "User inbox is getting mail faster than it can accept", nil), ClassRecipientTemp, "", "keyword:mailbox", 0},
			{"mailbox busy is not a busy server", rp(reply.StageRcpt, 450, "", "Requested mail action not taken: mailbox busy", nil), ClassRecipientTemp, "", "keyword:mailbox", 0},
			{"mailbox unavailable is not an outage", rp(reply.StageRcpt, 450, "", "Requested mail action not taken: mailbox unavailable", nil), ClassRecipientTemp, "", "keyword:mailbox", 0},
			{"mailbox cannot be opened", rp(reply.StageRcpt, 451, "4.2.0", "Cannot open mailbox for delivery", nil), ClassRecipientTemp, "", "keyword:mailbox", 0},
			// A sender-side recipient rate (Exchange's RecipientRateLimit)
			// names no single mailbox: a throttle.
			{"sender's recipient rate", rp(reply.StageRcpt, 452, "4.7.0", "Recipient rate limit exceeded for sender", nil), ClassThrottle, ScopeRate, "keyword:rate", 0},
		},
		// (c) A generic receiver fault is the receiver's: unavailable.
		"c-receiver-fault": {
			{"issue example 4.3.0", rp(reply.StageDataEnd, 451, "4.3.0", "internal error", nil), ClassUnavailable, "", "keyword:fault", 0},
			{"issue example bare", rp(reply.StageDataEnd, 451, "", "server error, retry", nil), ClassUnavailable, "", "keyword:fault", 0},
			{"internal server error", rp(reply.StageDataEnd, 451, "4.3.0", "Internal server error, please retry", nil), ClassUnavailable, "", "keyword:fault", 0},
			{"qmail local problem", rp(reply.StageDataEnd, 451, "", "Temporary local problem - please try later", nil), ClassUnavailable, "", "keyword:fault", 0},
			{"lookup failure at rcpt", rp(reply.StageRcpt, 451, "4.3.0", "<d@example.com>: Temporary lookup failure", nil), ClassUnavailable, "", "keyword:fault", 0},
			{"unexpected error while queuing", rp(reply.StageDataEnd, 451, "", "Unexpected error while queuing your message. Retry.", nil), ClassUnavailable, "", "keyword:fault", 0},
			{"RFC 5321 451 text", rp(reply.StageDataEnd, 451, "", "Requested action aborted: local error in processing", nil), ClassUnavailable, "", "keyword:fault", 0},
			{"bare 4.3.0 no text", rp(reply.StageDataEnd, 451, "4.3.0", "", nil), ClassUnavailable, "", "generic:4.3.x", 0},
			// An X.3.x code is fault evidence too: it outranks a bare
			// delay phrase, as "server error, retry" does.
			{"4.3.0 try again", rp(reply.StageDataEnd, 451, "4.3.0", "try again", nil), ClassUnavailable, "", "generic:4.3.x", 0},
			{"4.4.2 retry later", rp(reply.StageDataEnd, 451, "4.4.2", "Connection dropped, retry later", nil), ClassUnavailable, "", "generic:4.4.x", 0},
		},
		// (d) Greylisting in other words: greylist, never throttle.
		"d-greylist-paraphrase": {
			{"issue example", rp(reply.StageRcpt, 450, "", "your host is not known here yet, please retry later", nil), ClassGreylist, "", "keyword:greylist", 0},
			{"not been seen before", rp(reply.StageRcpt, 450, "4.7.1", "Your IP has not been seen here before, please come back later", nil), ClassGreylist, "", "keyword:greylist", 0},
			{"exim greylistd", rp(reply.StageRcpt, 451, "4.7.1", "192.0.2.7 is not yet authorized to deliver mail from <a@example.net> to <b@example.org>. Please try later.", nil), ClassGreylist, "", "keyword:greylist", 0},
			{"milter-greylist", rp(reply.StageRcpt, 451, "4.7.1", "Greylisting in action, please come back in 00:05:00", nil), ClassGreylist, "", "builtin:postgrey", 5 * time.Minute},
			{"triplet", rp(reply.StageRcpt, 451, "4.7.1", "Temporary deferral: triplet not seen yet", nil), ClassGreylist, "", "keyword:greylist", 0},
			{"we do not know you", rp(reply.StageRcpt, 450, "4.2.0", "We do not know your server yet; retry in a few minutes", nil), ClassGreylist, "", "keyword:greylist", 3 * time.Minute},
			{"first attempt deferred", rp(reply.StageRcpt, 451, "", "First delivery attempt deferred, resend in 5 minutes", nil), ClassGreylist, "", "keyword:greylist", 5 * time.Minute},
			{"anti-spam delay", rp(reply.StageRcpt, 451, "4.7.1", "Temporarily delayed for anti-spam reasons, please retry", nil), ClassGreylist, "", "keyword:greylist", 0},
			{"mimecast", rp(reply.StageRcpt, 451, "", "Internal resource temporarily unavailable - https://community.mimecast.com/docs/DOC-1369#451", nil), ClassGreylist, "", "builtin:mimecast-greylist", 0},
			{"openbsd spamd", rp(reply.StageDataEnd, 451, "", "Temporary failure, please try again later.", nil), ClassGreylist, "", "keyword:delay", 0},
			// Greylisting words lose to rate words (precedence).
			{"greylisted but rate", rp(reply.StageRcpt, 451, "4.7.1", "Greylisted: too many messages per minute from your network", nil), ClassThrottle, ScopeRate, "keyword:rate", 0},
		},
		// (e) Vague hints are parsed (the values: docs/design-notes.md).
		"e-vague-hints": {
			{"couple of hours", rp(reply.StageRcpt, 450, "4.7.1", "Greylisted, please try again in a couple of hours", nil), ClassGreylist, "", "builtin:postgrey", time.Hour}, // capped by max_hint
			{"decimal minutes", rp(reply.StageRcpt, 451, "", "Please retry in 1.5 minutes", nil), ClassGreylist, "", "keyword:delay", 90 * time.Second},
			{"tomorrow, capped", rp(reply.StageMail, 421, "4.7.0", "Daily sending quota exceeded, try again tomorrow", nil), ClassThrottle, ScopeRate, "keyword:rate", time.Hour},
			{"half an hour", rp(reply.StageRcpt, 450, "", "Come back in half an hour", nil), ClassGreylist, "", "keyword:delay", 30 * time.Minute},
			{"few minutes", rp(reply.StageRcpt, 451, "4.7.1", "Not yet authorized; few minutes, then retry", nil), ClassGreylist, "", "keyword:greylist", 3 * time.Minute},
		},
		// The precedence's last steps: a delay phrase, then the enhanced
		// code (4.7.1 by itself is a policy deferral, not greylisting).
		"precedence": {
			{"delay phrase at rcpt", rp(reply.StageRcpt, 450, "", "Please try again in 45 seconds", nil), ClassGreylist, "", "keyword:delay", 45 * time.Second},
			{"delay phrase at greeting is not greylisting", rp(reply.StageGreeting, 421, "4.7.0", "Try again later", nil), ClassThrottle, ScopeConnections, "generic:4.7.x", 0},
			{"4.7.1 by itself", rp(reply.StageRcpt, 450, "4.7.1", "Client host rejected: may not be mail exchanger", nil), ClassThrottle, ScopeBoth, "generic:4.7.x", 0},
			{"4.5.3 too many recipients", rp(reply.StageRcpt, 452, "4.5.3", "Too many recipients", nil), ClassRecipientTemp, "", "generic:4.5.3", 0},
			{"4.4.5 congestion", rp(reply.StageMail, 451, "4.4.5", "please hold", nil), ClassThrottle, ScopeBoth, "generic:4.4.5", 0},
			{"552 too many recipients is temporary", rp(reply.StageRcpt, 552, "", "Too many recipients", nil), ClassRecipientTemp, "", "generic:552-recipients", 0},
			{"5xx hourly recipients is a rate limit", rp(reply.StageRcpt, 550, "5.7.1", "192.0.2.9 has sent to too many recipients this hour", nil), ClassThrottle, ScopeRate, "keyword:rate-5xx", 0},
			{"5xx too many connections", rp(reply.StageGreeting, 554, "", "Too many connections from your host", nil), ClassThrottle, ScopeConnections, "keyword:rate-5xx", 0},
			{"5xx too many unwanted messages stays permanent", rp(reply.StageMail, 550, "", "too many unwanted messages have been sent from your IP", nil), ClassPermanent, "", "generic:5xx", 0},
			{"5xx try again later stays permanent", rp(reply.StageRcpt, 550, "5.7.1", "User temporary locked. Please try again later!", nil), ClassPermanent, "", "generic:5xx", 0},
			{"5xx daily sending quota", rp(reply.StageMail, 550, "5.4.5", "Daily user sending quota exceeded", nil), ClassThrottle, ScopeRate, "keyword:rate-5xx", 0},
			// An enhanced code that names a cause (RFC 3463 X.1 address,
			// X.2.1-X.2.4 mailbox, X.3 system, X.4 network, X.5.3)
			// outranks a bare delay phrase; X.2.0 and X.7.x do not.
			{"4.2.2 with a delay", rp(reply.StageRcpt, 452, "4.2.2", "Quota exceeded, try again in 2 hours", nil), ClassRecipientTemp, "", "generic:4.2.x", time.Hour},
			{"4.1.1 verify probe", rp(reply.StageRcpt, 450, "4.1.1", "<x@example.org>: Recipient address rejected: unverified address: host mx.example.org said: 450 try later", nil), ClassRecipientTemp, "", "generic:4.1.x", 0},
			{"4.5.3 with a delay", rp(reply.StageRcpt, 452, "4.5.3", "Too many recipients, send the rest later", nil), ClassRecipientTemp, "", "generic:4.5.3", 0},
			{"4.2.0 with a delay is greylisting", rp(reply.StageRcpt, 450, "4.2.0", "try again later", nil), ClassGreylist, "", "keyword:delay", 0},
		},
	}
	for fam, rows := range families {
		if fam != "precedence" && len(rows) < 3 {
			t.Errorf("family %s: %d paraphrases, want at least 3", fam, len(rows))
		}
		for _, tc := range rows {
			t.Run(fam+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				v := p.Classify(tc.r)
				if v.Class != tc.class || v.Scope != tc.scope || v.Rule != tc.rule || v.Delay != tc.delay {
					t.Errorf("Classify(%s at %s) = %s %q %s delay %v; want %s %q %s delay %v",
						tc.r, tc.r.Stage, v.Class, v.Scope, v.Rule, v.Delay, tc.class, tc.scope, tc.rule, tc.delay)
				}
				if v.Reason == "" {
					t.Errorf("Classify(%s): empty Reason", tc.r)
				}
			})
		}
	}
}

func TestClassifyConfigRulesFirst(t *testing.T) {
	t.Parallel()
	p := newTestPolicy(t, func(o *Options) {
		o.Rules = []Rule{
			{Match: `(?i)greylisted`, Class: ClassRecipientTemp},
			{Match: `^550 5\.7\.1 .*blocked`, Class: ClassSuspend, For: 3 * time.Hour},
			{Match: `custom`, Class: ClassThrottle},
		}
	})
	tests := []struct {
		r     reply.Reply
		class Class
		rule  string
		forD  time.Duration
		scope Scope
	}{
		{reply.Reply{Stage: reply.StageRcpt, Code: 450, Enhanced: "4.2.0", Text: "Greylisted"}, ClassRecipientTemp, "config:1", 0, ""},
		{reply.Reply{Stage: reply.StageMail, Code: 550, Enhanced: "5.7.1", Text: "you are blocked"}, ClassSuspend, "config:2", 3 * time.Hour, ""},
		{reply.Reply{Stage: reply.StageMail, Code: 451, Text: "custom limit"}, ClassThrottle, "config:3", 0, ScopeBoth},
		{reply.Reply{Stage: reply.StageMail, Code: 550, Enhanced: "5.7.1", Text: "policy"}, ClassPermanent, "generic:5xx", 0, ""},
	}
	for _, tc := range tests {
		v := p.Classify(tc.r)
		if v.Class != tc.class || v.Rule != tc.rule || v.For != tc.forD || v.Scope != tc.scope {
			t.Errorf("Classify(%s) = %+v, want %s %s %v %q", tc.r, v, tc.class, tc.rule, tc.forD, tc.scope)
		}
	}
}

// No rule can make a reply before the final dot a delivery: a config
// rule that names a success line at MAIL is overridden.
func TestClassifyOnlyDataEndSucceeds(t *testing.T) {
	t.Parallel()
	p := newTestPolicy(t, func(o *Options) { o.Rules = []Rule{{Match: `queued`, Class: ClassGreylist}} })
	stages := []reply.Stage{reply.StageConnect, reply.StageGreeting, reply.StageEHLO, reply.StageSTARTTLS, reply.StageAuth, reply.StageMail, reply.StageRcpt, reply.StageData, reply.StageDataEnd}
	for _, st := range stages {
		for _, code := range []int{200, 220, 235, 250, 251, 252, 334, 354, 399} {
			r := reply.Reply{Stage: st, Code: code, Text: "ok"}
			v := p.Classify(r)
			want := ClassProtocol
			if st == reply.StageDataEnd && code < 300 {
				want = ClassSuccess
			}
			if v.Class != want {
				t.Errorf("Classify(%s at %s) = %s, want %s", r, st, v.Class, want)
			}
		}
		if d := p.Observe("x.test", Outcome{Reply: reply.Reply{Stage: st, Code: 354}, Rcpt: "a@x.test", Attempts: 1}); d.Action == ActionDone {
			t.Errorf("Observe(354 at %s) = done", st)
		}
	}
}

func TestNewRejectsBadRules(t *testing.T) {
	t.Parallel()
	tests := []Options{
		{Rules: []Rule{{Match: `(`, Class: ClassThrottle}}},
		{Rules: []Rule{{Match: `x`, Class: "slow-down"}}},
		{Rules: []Rule{{Match: `x`, Class: ClassThrottle, Scope: "all"}}},
		{Rules: []Rule{{Match: `x`, Class: ClassSuspend, For: -time.Second}}},
		{GroupBy: "ip"},
		{RetryBase: time.Hour, RetryMax: time.Minute},
		{MinConcurrency: 5, MaxConcurrency: 2},
		{Destinations: []DestinationOptions{{Match: "x", MaxConcurrency: -1}}},
	}
	for i, o := range tests {
		if _, err := New(o); err == nil {
			t.Errorf("case %d: New accepted %+v", i, o)
		}
	}
}

func TestParseHint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text string
		max  time.Duration
		want time.Duration
	}{
		{"try again in 30 seconds", time.Hour, 30 * time.Second},
		{"Try again in 30s", time.Hour, 30 * time.Second},
		{"retry in 5 minutes", time.Hour, 5 * time.Minute},
		{"please wait 2 min", time.Hour, 2 * time.Minute},
		{"come back in 00:05:00", time.Hour, 5 * time.Minute},
		{"come back in 1:02:03", 0, time.Hour + 2*time.Minute + 3*time.Second},
		{"greylisted for 300 seconds", time.Hour, 300 * time.Second},
		{"try again after 2 hours", time.Hour, time.Hour},
		{"retry in 999999999 hours", 0, time.Duration(1 << 62)},
		{"deferred - 4.16.55.1", time.Hour, 0},
		{"from 192.0.2.1 in 10.0.0.1", time.Hour, 0},
		{"limits for how many messages per hour", time.Hour, 0},
		{"", time.Hour, 0},
		// Issue 11 (e): vague and decimal hints (values in docs/design-notes.md).
		{"please come back in a couple of hours", 0, 2 * time.Hour},
		{"retry in a couple hours", 0, 2 * time.Hour},
		{"try again in 2.5 minutes", 0, 150 * time.Second},
		{"wait 0.5 hours before retrying", 0, 30 * time.Minute},
		{"daily quota reached, try again tomorrow", 0, 24 * time.Hour},
		{"daily quota reached, try again tomorrow", time.Hour, time.Hour},
		{"retry in half an hour", 0, 30 * time.Minute},
		{"come back in half a minute", 0, 30 * time.Second},
		{"please retry in a few minutes", 0, 3 * time.Minute},
		{"few minutes, then retry", 0, 3 * time.Minute},
		{"try again in several minutes", 0, 5 * time.Minute},
		{"retry in a quarter of an hour", 0, 15 * time.Minute},
		{"try again in an hour and a half", 0, 90 * time.Minute},
		{"come back in one and a half hours", 0, 90 * time.Minute},
		{"try again in 2 and a half minutes", 0, 150 * time.Second},
		{"wait an hour", 0, time.Hour},
		{"retry after one minute", 0, time.Minute},
		{"try again in ten minutes", 0, 10 * time.Minute},
		{"try again in thirty seconds", 0, 30 * time.Second},
		{"try again in 5-10 minutes", 0, 10 * time.Minute},
		{"try again in 5 to 10 minutes", 0, 10 * time.Minute},
		{"try again in two or three minutes", 0, 3 * time.Minute},
		{"retry in 1 hour 30 minutes", 0, 90 * time.Minute},
		{"retry in 1h30m", 0, 90 * time.Minute},
		{"retry in 2 minutes and 30 seconds", 0, 150 * time.Second},
		{"blocked for 2 days", 0, 48 * time.Hour},
		{"please wait at least 90 secs", 0, 90 * time.Second},
		{"wait another 4 mins", 0, 4 * time.Minute},
		{"try again next hour", 0, time.Hour},
		{"try again in 60sec", 0, time.Minute},
		// No number, no hint: the policy picks the delay.
		{"try again later", 0, 0},
		{"please retry in a while", 0, 0},
		{"come back in a moment", 0, 0},
		{"rejected for a second time", 0, 0},
		{"retry in 1.5.3 minutes", 0, 0},
		{"see RFC 5321 section 4.5.3.1.10", 0, 0},
	}
	for _, tc := range tests {
		if got := ParseHint(tc.text, tc.max); got != tc.want {
			t.Errorf("ParseHint(%q, %v) = %v, want %v", tc.text, tc.max, got, tc.want)
		}
	}
}

// FuzzParseHint: any text parses without panic to a delay in [0, max].
func FuzzParseHint(f *testing.F) {
	for _, s := range []string{"try again in 30 seconds", "come back in 00:05:00", "in a couple of hours", "retry in 1h30m",
		"in 999999999 days", "in 5-10 minutes", "in an hour and a half", "tomorrow", "in 1.5.3 minutes", "wait another 4 mins"} {
		f.Add(s, int64(time.Hour))
	}
	f.Fuzz(func(t *testing.T, text string, max int64) {
		d := ParseHint(text, time.Duration(max))
		if d < 0 || (max > 0 && d > time.Duration(max)) {
			t.Fatalf("ParseHint(%q, %v) = %v", text, time.Duration(max), d)
		}
	})
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		attempt   int
		base, max time.Duration
		rnd       float64
		want      time.Duration
	}{
		{1, time.Minute, time.Hour, 0.5, time.Minute},
		{2, time.Minute, time.Hour, 0.5, 2 * time.Minute},
		{3, time.Minute, time.Hour, 0, time.Duration(float64(4*time.Minute) * 0.8)},
		{0, time.Minute, time.Hour, 0.5, time.Minute},
		{-5, time.Minute, time.Hour, 0.5, time.Minute},
		{7, time.Minute, time.Hour, 0.5, time.Hour},
		{7, time.Minute, time.Hour, 0.99, time.Hour},
		{1 << 30, time.Minute, 4 * time.Hour, 0.5, 4 * time.Hour},
		{int(^uint(0) >> 1), time.Second, 10 * time.Second, 0.5, 10 * time.Second},
		{3, 0, time.Hour, 0.5, 0},
		{1, time.Minute, time.Hour, 2, time.Minute}, // bad rnd reads as 0.5
	}
	for _, tc := range tests {
		if got := RetryDelay(tc.attempt, tc.base, tc.max, tc.rnd); got != tc.want {
			t.Errorf("RetryDelay(%d, %v, %v, %v) = %v, want %v", tc.attempt, tc.base, tc.max, tc.rnd, got, tc.want)
		}
	}
}

func FuzzClassify(f *testing.F) {
	stages := []reply.Stage{reply.StageConnect, reply.StageGreeting, reply.StageEHLO, reply.StageSTARTTLS, reply.StageAuth, reply.StageMail, reply.StageRcpt, reply.StageData, reply.StageDataEnd, "bogus"}
	f.Add(uint8(6), 421, "4.7.28", "unusual rate", false)
	f.Add(uint8(6), 450, "4.2.0", "Greylisted, come back in 00:05:00", false)
	f.Add(uint8(1), 421, "", "", false)
	f.Add(uint8(0), 0, "", "", true)
	f.Add(uint8(5), 550, "5.1.1", "no such user", false)
	f.Add(uint8(5), 421, "4.7.0", "[TSS04] deferred", false)
	f.Add(uint8(5), 450, "4", "retry in 99999999999999 hours", false)
	f.Add(uint8(7), 250, "2.0.0", "ok", false)
	f.Add(uint8(5), 354, "", "go ahead", false)
	f.Add(uint8(1), 421, "4.7.0", "Too many connections from your IP, try again in 60 seconds", false)
	f.Add(uint8(6), 450, "4.7.1", "recipient <u@example.org> receives too many messages", false)
	f.Add(uint8(8), 451, "4.3.0", "internal error", false)
	f.Add(uint8(6), 450, "", "your host is not known here yet, please retry later", false)
	f.Add(uint8(6), 451, "", "retry in an hour and a half or tomorrow", false)
	f.Add(uint8(6), 550, "5.1.1", "has sent to too many recipients this hour", false)
	p := newTestPolicy(f, func(o *Options) { o.Rules = []Rule{{Match: `(?i)fuzz`, Class: ClassSuspend}} })
	f.Fuzz(func(t *testing.T, st uint8, code int, enh, text string, isErr bool) {
		r := reply.Reply{Stage: stages[int(st)%len(stages)], Code: code, Enhanced: enh, Text: text}
		if isErr {
			r.Err = errors.New(text)
		}
		v := p.Classify(r)
		if !validClass(v.Class) || !validScope(v.Scope) {
			t.Fatalf("Classify(%+v) = %+v: invalid", r, v)
		}
		if v.Delay < 0 || v.Delay > p.o.MaxHint {
			t.Fatalf("Classify(%+v): delay %v out of range", r, v.Delay)
		}
		if v.Class == ClassSuccess && (r.Stage != reply.StageDataEnd || r.Err != nil || code < 200 || code > 299) {
			t.Fatalf("Classify(%+v) = success outside a 2xx after the final dot", r)
		}
		if v.Scope != ScopeNone && v.Class != ClassThrottle && v.Class != ClassSuspend {
			t.Fatalf("Classify(%+v): scope %q on %s", r, v.Scope, v.Class)
		}
	})
}

// rp builds a reply.Reply positionally, keeping the tables above one row
// per case (vet's composites check wants keys on another package's struct).
func rp(stage reply.Stage, code int, enhanced, text string, err error) reply.Reply {
	return reply.Reply{Stage: stage, Code: code, Enhanced: enhanced, Text: text, Err: err}
}
