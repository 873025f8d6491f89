package outbound

import (
	"context"
	"strings"
	"testing"
)

// BenchmarkSessionSend measures one 2 KB transaction on an open plaintext
// session against the in-process fake MX over loopback: the cost of the
// wire layer per message (issue 9 item 1 added a socket peek before each
// command and after the final reply).
//
//	go test ./relay -run XXX -bench SessionSend -benchtime 5000x -count 5
func BenchmarkSessionSend(b *testing.B) {
	f := newFakeMX(b, fakeCfg{ext: []string{"8BITMIME", "SIZE 10000000"}})
	ob, _ := testClient(b, f, TLSNone, nil)
	s, rep := ob.Dial(context.Background(), "dest.test")
	if rep != nil {
		b.Fatal(rep)
	}
	defer s.Close()
	body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 26)
	b.ResetTimer()
	for range b.N {
		d := withBody(&Delivery{ID: "B", From: "app@src.test", Rcpts: []string{"a@dest.test"}}, body)
		if r := s.Send(context.Background(), d); r[0].Code != 250 {
			b.Fatal(r[0])
		}
	}
}
