package outbound

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"sluice/internal/selfsigned"
)

// TestREQUIRETLS: a REQUIRETLS message goes only over verified TLS to a
// next hop that offers REQUIRETLS, with the parameter passed on; else it
// is refused permanently with RFC 8689 §5's codes, before MAIL is sent.
func TestREQUIRETLS(t *testing.T) {
	t.Parallel()
	srvCfg, pool := testCert(t)
	tests := []struct {
		name     string
		mode     string
		tls      bool // the fake MX offers STARTTLS
		roots    bool // and its certificate verifies
		offer    bool // and it offers REQUIRETLS
		enhanced string
	}{
		{"verified, offered", TLSVerify, true, true, true, ""},
		{"verified, not offered", TLSVerify, true, true, false, "5.7.30"},
		{"unverified TLS", TLSOpportunistic, true, false, true, "5.7.10"},
		{"encrypt is not verified", TLSRequire, true, true, true, "5.7.10"},
		{"plaintext", TLSOpportunistic, false, false, true, "5.7.10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := fakeCfg{ext: []string{"8BITMIME"}}
			if tt.tls {
				cfg.tls = srvCfg
			}
			if tt.offer {
				cfg.ext = append(cfg.ext, "REQUIRETLS")
			}
			f := newFakeMX(t, cfg)
			ob, _ := testClient(t, f, tt.mode, func(o *Options) {
				if tt.roots {
					o.TLSConfig = &tls.Config{RootCAs: pool}
				}
			})
			s := testDial(t, ob)
			defer s.Close()
			d := testMsg("a@dest.test")
			d.RequireTLS = true
			got := s.Send(context.Background(), d)[0]
			_, cmds, _, _ := f.snapshot()
			var mail string
			for _, c := range cmds {
				if strings.HasPrefix(c, "MAIL ") {
					mail = c
				}
			}
			if tt.enhanced == "" {
				if got.Code != 250 || !strings.HasSuffix(mail, " REQUIRETLS") {
					t.Fatalf("Send = %v, MAIL %q; want delivered with REQUIRETLS passed on", got, mail)
				}
				return
			}
			if got.Code != 550 || got.Enhanced != tt.enhanced {
				t.Fatalf("Send = %v, want 550 %s", got, tt.enhanced)
			}
			if mail != "" {
				t.Errorf("MAIL sent: %q", mail)
			}
			// The same session still carries mail without the requirement.
			if got := s.Send(context.Background(), testMsg("b@dest.test"))[0]; got.Code != 250 {
				t.Errorf("plain message after the refusal: %v", got)
			}
		})
	}
}

// TestREQUIRETLSNeedsDANEOrMTASTS (RFC 8689 §4.2.1 item 1): an MX host
// taken from insecure DNS whose certificate verifies (tls_policy
// verify) is not enough for a REQUIRETLS message; mail without the
// requirement still goes.
func TestREQUIRETLSNeedsDANEOrMTASTS(t *testing.T) {
	t.Parallel()
	cert, err := selfsigned.New(time.Now(), "mx.dest.test")
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeMX(t, fakeCfg{tls: cert.Config, ext: []string{"REQUIRETLS"}})
	ob, _ := testClient(t, nil, "", func(o *Options) {
		o.Resolver = &fakeResolver{mx: map[string][]*net.MX{"dest.test": {{Host: "mx.dest.test", Pref: 10}}},
			hosts: map[string][]string{"mx.dest.test": {"127.0.0.1"}}}
		o.Port = int(f.addr.Port())
		o.TLSPolicies = map[string]string{"dest.test": TLSVerify}
		o.TLSConfig = &tls.Config{RootCAs: cert.Pool}
	})
	s := testDial(t, ob)
	defer s.Close()
	if _, verified := s.TLSPolicy(); !verified {
		t.Fatal("the session is not verified")
	}
	d := testMsg("a@dest.test")
	d.RequireTLS = true
	if got := s.Send(context.Background(), d)[0]; got.Code != 550 || got.Enhanced != "5.7.10" {
		t.Errorf("REQUIRETLS over PKIX only: %v, want 550 5.7.10", got)
	}
	if got := s.Send(context.Background(), testMsg("b@dest.test"))[0]; got.Code != 250 {
		t.Errorf("plain message: %v", got)
	}
}
