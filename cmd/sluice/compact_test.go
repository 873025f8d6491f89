package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/config"
	"sluice/queue"
)

// TestCompactAtStartOnlyWhenQuick (issue 10, restart): start-up compacts
// a mostly free file only when its live part is small; a big live part
// is left alone, with a warning naming `sluice queue compact`, so that a
// start never waits for a multi-GB copy.
func TestCompactAtStartOnlyWhenQuick(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		maxLive  int64
		compacts bool
	}{
		{"small live part", 64 << 20, true},
		{"big live part", 4096, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := drainedQueueFile(t)
			before, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			if err := compactAtStart(path, slog.New(slog.NewTextHandler(&logs, nil)), 1<<20, tc.maxLive); err != nil {
				t.Fatal(err)
			}
			after, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if shrunk := after.Size() < before.Size()/2; shrunk != tc.compacts {
				t.Errorf("file %d → %d bytes; compacted %v, want %v", before.Size(), after.Size(), shrunk, tc.compacts)
			}
			if warned := strings.Contains(logs.String(), "sluice queue compact"); warned == tc.compacts {
				t.Errorf("warning naming the command: %v, want %v\n%s", warned, !tc.compacts, logs.String())
			}
		})
	}
}

// drainedQueueFile makes a queue file that held 12 MB of mail, all gone.
func drainedQueueFile(t *testing.T) string {
	t.Helper()
	o := queue.OptionsFrom(config.Default())
	o.Path, o.NoSync, o.Logger = filepath.Join(t.TempDir(), "queue.db"), true, slog.New(slog.DiscardHandler)
	q, err := queue.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 60<<10)
	var ids []string
	for range 200 {
		id, err := q.Enqueue(context.Background(), queue.NewMessage{From: "a@src.test", Rcpts: []string{"b@dest.test"}, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := q.Delete(ids); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Prune(time.Now().Add(365 * 24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	return o.Path
}
