package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPingIsAnsweredByTheLoop: Ping returns while the loop runs, waits
// (until ctx ends) when it does not, and fails once it stopped.
func TestPingIsAnsweredByTheLoop(t *testing.T) {
	t.Parallel()
	r := newVRig(t, nil)
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.s.Ping(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ping before Run: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.s.Run(ctx, context.Background()); close(done) }()
	for range 3 {
		if err := r.s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	<-done
	if err := r.s.Ping(context.Background()); !errors.Is(err, errStopped) {
		t.Fatalf("ping after stop: %v", err)
	}
}
