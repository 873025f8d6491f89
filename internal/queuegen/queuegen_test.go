package queuegen

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/config"
	"sluice/queue"
)

// TestStreamImports: what Write produces is a stream `queue import`
// takes whole, with the recipients, states, sizes and due times asked
// for; a second stream with other numbers adds to the first.
func TestStreamImports(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	qo := queue.OptionsFrom(cfg)
	qo.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	qo.Path = filepath.Join(cfg.DataDir, "queue.db")
	q, err := queue.Open(qo)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()

	now := time.Now()
	for _, first := range []int{0, 300} {
		var buf bytes.Buffer
		err := Write(&buf, Options{N: 300, First: first, Size: 2048, To: "user%d@d%d.test", Wrap: 7, From: "bench@sender.test",
			Now: now, Spread: time.Hour, DueAfter: time.Hour, Due: time.Minute, LastReply: "421 4.3.2 try later"})
		if err == nil {
			t.Fatalf("two %%d in To: want an error")
		}
		buf.Reset()
		if err := Write(&buf, Options{N: 300, First: first, Size: 2048, To: "user@d%d.test", Wrap: 7, From: "bench@sender.test",
			Now: now, Spread: time.Hour, DueAfter: time.Hour, Due: time.Minute, LastReply: "421 4.3.2 try later"}); err != nil {
			t.Fatal(err)
		}
		rep, err := q.Import(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Messages != 300 || rep.Duplicates != 0 {
			t.Fatalf("import from %d: %+v, want 300 new messages", first, rep)
		}
	}
	counts, err := q.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if counts[queue.StateQueued] != 600 {
		t.Fatalf("counts %v, want 600 queued", counts)
	}
	at := now.UTC().Truncate(time.Millisecond)
	m, err := q.Get(ID(at.Add(-share(time.Hour, 301)), 301))
	if err != nil {
		t.Fatal(err)
	}
	r := m.Recipients[0]
	if m.Size != 2048 || r.Addr != "user@d0.test" || r.Attempts != 1 || !strings.HasPrefix(r.LastReply, "421") {
		t.Fatalf("message 301: size %d, recipient %+v", m.Size, r)
	}
	if d := r.NextAttempt.Sub(now); d < time.Hour-time.Second || d > time.Hour+time.Minute {
		t.Fatalf("message 301 due in %v, want within [1h, 1h1m]", d)
	}
	if age := now.Sub(m.Received); age < 0 || age > time.Hour {
		t.Fatalf("message 301 received %v ago, want within the spread of 1h", age)
	}
	// IDs sort by received time, as the queue's own do: the oldest
	// message is found from the lowest ID.
	oldest, ok, err := q.Oldest()
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if want := at.Add(-time.Hour / 1000 * 999); !oldest.Equal(want) {
		t.Fatalf("oldest %v, want %v", oldest, want)
	}
}
