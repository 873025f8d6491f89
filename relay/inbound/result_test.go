package inbound

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

type resultLog struct {
	mu  sync.Mutex
	got []string
}

func (r *resultLog) hook(accepted bool, reason string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if accepted {
		r.got = append(r.got, "accepted")
	} else {
		r.got = append(r.got, reason)
	}
}

func (r *resultLog) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// TestInboundOnResult: every accept and every refusal reaches the hook
// with its reason; successful MAIL and RCPT are not outcomes.
func TestInboundOnResult(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		networks []netip.Prefix
		run      func(c *client)
		want     []string
	}{
		{"accept", nil, func(c *client) {
			c.sendMessage("a@src.test", "b@dest.test", simpleMsg)
		}, []string{"accepted"}},
		{"relay denied", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, func(c *client) {
			c.cmd("MAIL FROM:<a@src.test>", "530")
		}, []string{"relay-denied"}},
		{"refused rcpt then accept", nil, func(c *client) {
			c.cmd("MAIL FROM:<a@src.test>", "250")
			c.cmd("RCPT TO:<b@[192.0.2.1]>", "553")
			c.cmd("RCPT TO:<b@dest.test>", "250")
			c.cmd("DATA", "354")
			c.send(simpleMsg + ".\r\n")
			c.expect("250")
		}, []string{"address-literal", "accepted"}},
		{"data without rcpt", nil, func(c *client) {
			c.cmd("MAIL FROM:<a@src.test>", "250")
			c.cmd("DATA", "5")
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var log resultLog
			addr, _, _ := startServer(t, Options{OnResult: log.hook, Networks: tc.networks})
			c := dial(t, addr)
			c.hello()
			tc.run(c)
			c.cmd("QUIT", "221")
			got := log.all()
			if len(got) != len(tc.want) {
				t.Fatalf("outcomes %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("outcomes %v, want %v", got, tc.want)
				}
			}
		})
	}
}
