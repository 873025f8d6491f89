package fakemx

import (
	"testing"
	"time"
)

// The model decides without a network or a clock: each call says when.

func TestModelPenaltyBox(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m, err := NewModel(Options{MaxSessions: 1, Penalty: PenaltyBox{Refusals: 3, Within: 10 * time.Second, Block: time.Minute, Extend: 30 * time.Second}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Connect(t0); !ok {
		t.Fatal("first session refused")
	}
	// Two refusals, then a quiet spell: they age out of the window.
	for i := range 2 {
		if _, ok := m.Connect(t0.Add(time.Duration(i) * time.Second)); ok {
			t.Fatal("second session admitted over K=1")
		}
	}
	at := t0.Add(20 * time.Second)
	for i := range 3 {
		r, ok := m.Connect(at.Add(time.Duration(i) * time.Second))
		if ok || r.String() != DefaultSessionsText {
			t.Fatalf("refusal %d: %q ok=%v, want the session refusal", i, r, ok)
		}
	}
	// The third refusal within 10 s shut the box at 22 s until 82 s.
	m.Release()
	boxed := at.Add(2 * time.Second)
	if r, ok := m.Connect(boxed.Add(10 * time.Second)); ok || r.String() != DefaultPenaltyText {
		t.Fatalf("in the box: %q ok=%v", r, ok)
	}
	// That connection at 32 s does not shorten the block (32+30 < 82);
	// one at 80 s extends it to 110 s, one at 109 s to 139 s.
	if r, ok := m.Connect(boxed.Add(58 * time.Second)); ok || r.String() != DefaultPenaltyText {
		t.Fatalf("at 80 s: %q ok=%v", r, ok)
	}
	if _, ok := m.Connect(boxed.Add(87 * time.Second)); ok {
		t.Fatal("admitted at 109 s: hammering did not extend the block")
	}
	if _, ok := m.Connect(boxed.Add(117 * time.Second)); !ok {
		t.Fatal("still boxed at 139 s")
	}
	// An open session is blocked at MAIL too once the box shuts again.
	m.Release()
	m2, _ := NewModel(Options{RatePerWindow: 1, Penalty: PenaltyBox{Refusals: 2, Within: time.Minute, Block: time.Minute}}, t0)
	m2.Connect(t0)
	m2.Mail(t0)
	m2.Mail(t0)
	m2.Mail(t0)
	if r, ok := m2.Mail(t0.Add(5 * time.Second)); ok || r.String() != DefaultPenaltyText {
		t.Fatalf("MAIL in the box: %q ok=%v", r, ok)
	}
	st := m.Stats()
	if st.SessionRefusals != 5 || st.PenaltyRefusals != 3 || st.PenaltyBlocks != 1 || st.Refused421 != 8 {
		t.Errorf("stats %+v", st)
	}
}

func TestModelMailboxLimit(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m, err := NewModel(Options{MailboxRate: 2, MailboxWindow: time.Minute}, t0)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, false, true} {
		if r, refused := m.Rcpt(t0.Add(time.Duration(i)*time.Second), "192.0.2.1", "a@src.test", "Hot@dest.test"); refused != want {
			t.Fatalf("rcpt %d: %q refused=%v", i, r, refused)
		} else if refused && r.String() != DefaultMailboxText {
			t.Errorf("refusal %q", r)
		}
	}
	// Another mailbox is not limited by this one; the next window frees it.
	if _, refused := m.Rcpt(t0.Add(3*time.Second), "192.0.2.1", "a@src.test", "cold@dest.test"); refused {
		t.Error("another mailbox refused")
	}
	if _, refused := m.Rcpt(t0.Add(time.Minute), "192.0.2.1", "a@src.test", "hot@dest.test"); refused {
		t.Error("refused in the next window")
	}
	if st := m.Stats(); st.MailboxRefusals != 1 || st.Refused421 != 0 || len(st.Recipients) != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestModelRejectsBadOptions(t *testing.T) {
	t.Parallel()
	for i, o := range []Options{
		{Penalty: PenaltyBox{Refusals: 3}},
		{MailboxRate: -1},
		{PenaltyText: "4x bad"},
	} {
		if _, err := NewModel(o, time.Time{}); err == nil {
			t.Errorf("case %d: NewModel accepted %+v", i, o)
		}
	}
}
