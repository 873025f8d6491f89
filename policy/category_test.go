package policy

import (
	"errors"
	"net"
	"testing"

	"sluice/reply"
)

// TestCategoryOf covers what the reply corpus does not: failures without
// a reply, and the classes that decide the category by themselves.
func TestCategoryOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		r    reply.Reply
		v    Verdict
		want Category
	}{
		{"tls handshake", reply.Reply{Stage: reply.StageSTARTTLS, Err: errors.New("tls: bad certificate")}, Verdict{Class: ClassUnavailable, Rule: "network:tls"}, CatTLS},
		{"dns lookup", reply.Reply{Stage: reply.StageConnect, Err: &net.DNSError{Err: "no such host", Name: "x.test", IsNotFound: true}}, Verdict{Class: ClassUnavailable, Rule: "network:error"}, CatDNS},
		{"refused", reply.Reply{Stage: reply.StageConnect, Err: errors.New("connection refused")}, Verdict{Class: ClassUnavailable, Rule: "network:connect"}, CatOther},
		{"greylist", reply.Reply{Stage: reply.StageRcpt, Code: 450, Enhanced: "4.7.1", Text: "greylisted, try again"}, Verdict{Class: ClassGreylist}, CatGreylisted},
		{"throttle", reply.Reply{Stage: reply.StageMail, Code: 421, Enhanced: "4.7.28", Text: "rate limited"}, Verdict{Class: ClassThrottle}, CatThrottled},
		{"auth-fix tls", reply.Reply{Stage: reply.StageRcpt, Code: 421, Enhanced: "4.7.29", Text: "use TLS"}, Verdict{Class: ClassAuthFix, Fix: "TLS"}, CatTLS},
		{"auth-fix dkim", reply.Reply{Stage: reply.StageDataEnd, Code: 550, Enhanced: "5.7.26", Text: "unauthenticated"}, Verdict{Class: ClassAuthFix, Fix: "authentication"}, CatAuth},
		{"suspend", reply.Reply{Stage: reply.StageMail, Code: 421, Text: "[TSS04] deferred"}, Verdict{Class: ClassSuspend}, CatBlocked},
		{"success", reply.Reply{Stage: reply.StageDataEnd, Code: 250, Text: "ok"}, Verdict{Class: ClassSuccess}, ""},
		{"bare 554", reply.Reply{Stage: reply.StageDataEnd, Code: 554, Text: "error"}, Verdict{Class: ClassPermanent}, CatOther},
	} {
		if got := CategoryOf(tc.r, tc.v); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
