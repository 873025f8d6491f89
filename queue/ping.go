package queue

import "context"

// Ping returns once the commit goroutine, the queue's only writer, has
// answered: proof that it is not stuck in a commit, for the systemd
// watchdog (cmd/sluice). It writes nothing (an empty bbolt commit would
// still write a meta page and fsync) and answers the same while the file
// is failing: the watchdog is about a hung process, not a full disk,
// which restarting would not cure. A ping that arrives while a batch
// commits is answered when that commit ends.
func (q *Queue) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return q.submit(ctx, &op{done: make(chan error, 1)}) // fn nil: a ping
}
