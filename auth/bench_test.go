package auth

import (
	"context"
	"strings"
	"testing"
	"time"
)

// msg2K is a 2 KB message, the size of the project's throughput bench.
var msg2K = []byte(testMsg + strings.Repeat("The quick brown fox jumps over the lazy dog, twice.\r\n", 38))

func benchSign(b *testing.B, typ string) {
	fake := newFakeDNS()
	c, err := New(testOptions(func(o *Options) {
		o.Mode = ModeOff
		o.OutboundIPs = testIPs
		o.Resolver = fake
		o.Keys = []KeyConfig{keyFixture(b, fake, "example.test", "s", typ, false)}
	}))
	if err != nil {
		b.Fatal(err)
	}
	in := inputOf(Input{MailFrom: "b@example.test"}, msg2K)
	b.SetBytes(int64(len(msg2K)))
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := c.Check(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}

func benchVerify(b *testing.B, typ string) {
	fake := newFakeDNS()
	c, err := New(testOptions(func(o *Options) {
		o.Mode = ModeOff
		o.OutboundIPs = testIPs
		o.Resolver = fake
		o.Keys = []KeyConfig{keyFixture(b, fake, "example.test", "s", typ, false)}
	}))
	if err != nil {
		b.Fatal(err)
	}
	sigs, _, err := c.Check(context.Background(), inputOf(Input{}, msg2K))
	signed := append(sigs, msg2K...)
	if err != nil {
		b.Fatal(err)
	}
	d := newDNSCache(fake, time.Second, time.Hour, time.Second, time.Now)
	b.SetBytes(int64(len(signed)))
	b.ResetTimer()
	for b.Loop() {
		vs, err := verifyDKIM(context.Background(), d, signed)
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			b.Fatal(err, vs)
		}
	}
}

func BenchmarkSignRSA2048(b *testing.B)   { benchSign(b, "rsa") }
func BenchmarkSignEd25519(b *testing.B)   { benchSign(b, "ed25519") }
func BenchmarkVerifyRSA2048(b *testing.B) { benchVerify(b, "rsa") }
func BenchmarkVerifyEd25519(b *testing.B) { benchVerify(b, "ed25519") }
