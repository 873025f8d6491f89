package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestFakeDNSAnswersUnderSuffix runs the command in process and asks it
// over UDP: MX of a domain under the suffix, A of its MX host, NODATA and
// NXDOMAIN otherwise, each after the delay.
func TestFakeDNSAnswersUnderSuffix(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-suffix", "many.test", "-delay", "20ms", "-a", "127.0.0.1", "-ttl", "60"}, pw, &stderr)
		pw.Close()
	}()
	addr, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr = strings.TrimSpace(addr)
	go io.Copy(io.Discard, pr)

	c := &dns.Client{Timeout: 5 * time.Second}
	ask := func(name string, qtype uint16) *dns.Msg {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion(name, qtype)
		start := time.Now()
		m, _, err := c.Exchange(q, addr)
		if err != nil {
			t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
		}
		if d := time.Since(start); d < 20*time.Millisecond {
			t.Errorf("%s answered after %s, before the 20ms delay", name, d)
		}
		return m
	}
	if m := ask("d123.many.test.", dns.TypeMX); len(m.Answer) != 1 || m.Answer[0].(*dns.MX).Mx != "mx.d123.many.test." || m.Answer[0].Header().Ttl != 60 {
		t.Errorf("MX: %v", m.Answer)
	}
	if m := ask("mx.d123.many.test.", dns.TypeA); len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "127.0.0.1" {
		t.Errorf("A: %v", m.Answer)
	}
	if m := ask("mx.d123.many.test.", dns.TypeAAAA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 || len(m.Ns) != 1 {
		t.Errorf("AAAA: want NODATA with a SOA, got %v", m)
	}
	if m := ask("example.com.", dns.TypeMX); m.Rcode != dns.RcodeNameError {
		t.Errorf("outside the suffix: rcode %s, want NXDOMAIN", dns.RcodeToString[m.Rcode])
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "4 queries (4 UDP, 0 TCP)") {
		t.Errorf("report: %q", stderr.String())
	}
}

func TestFakeDNSFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-a", "nope"}, {"extra"}, {"-delay", "x"}} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}
