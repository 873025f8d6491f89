package scheduler

import (
	"context"
	"errors"
)

// errStopped answers Ping once the scheduler has begun to stop.
var errStopped = errors.New("scheduler: stopped")

// Ping returns once the loop has answered between two of its turns: proof
// that it is not stuck, for the systemd watchdog (cmd/sluice), which
// must not be fed by a bare ticker. Unlike Inspect it builds nothing, so
// it costs the same with a million destinations as with one. It returns
// ctx.Err() when ctx ends first and errStopped once shutdown began.
func (s *Scheduler) Ping(ctx context.Context) error {
	ch := make(chan struct{})
	select {
	case s.ping <- ch:
	case <-s.stopped:
		return errStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
