package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// config is everything run needs; main fills it from flags.
type config struct {
	Addr     string
	N, C     int
	Size     int
	From, To string
	Rcpts    int
	Wrap     int // the number in To wraps after Wrap (0 = never)
	Acked    string
	PerRcpt  bool
	Deadline time.Duration // from the start of run
	Helo     string
	RunID    string
	Backoff  time.Duration // first retry wait; doubles up to maxBackoff
	Timeout  time.Duration // per command

	Now    func() time.Time // nil = time.Now
	Logger *slog.Logger     // nil = slog.Default()
}

const maxBackoff = time.Second

// summary is the outcome of a run.
type summary struct {
	Sent     int // messages tried (each counted once, however many attempts)
	Acked    int // messages that got 250 at end of DATA
	Failed   int // messages never acknowledged: permanent refusal or deadline
	Attempts int // transactions started, retries included
	Elapsed  time.Duration
}

func (s summary) String() string {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Acked) / s.Elapsed.Seconds()
	}
	return fmt.Sprintf("sent=%d acked=%d failed=%d attempts=%d elapsed=%s rate=%.1f msg/s",
		s.Sent, s.Acked, s.Failed, s.Attempts, s.Elapsed.Round(time.Millisecond), rate)
}

func (c *config) check() error {
	switch {
	case c.Addr == "":
		return errors.New("-addr is required")
	case c.N < 0 || c.C <= 0 || c.Rcpts <= 0 || c.Wrap < 0:
		return errors.New("-n and -wrap must be >= 0, -c and -rcpts > 0")
	case strings.Count(c.To, "%") > 1 || (strings.Contains(c.To, "%") && !strings.Contains(c.To, "%d")):
		return fmt.Errorf("-to %q: only one %%d is allowed", c.To)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Helo == "" {
		c.Helo = "inject.sluice.test"
	}
	if c.Backoff <= 0 {
		c.Backoff = 50 * time.Millisecond
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.RunID == "" {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("run id: %w", err)
		}
		c.RunID = hex.EncodeToString(b[:])
	}
	return nil
}

// run submits cfg.N messages with cfg.C clients and returns when every
// message is acknowledged, refused for good, or past the deadline.
func run(ctx context.Context, cfg config) (summary, error) {
	if err := cfg.check(); err != nil {
		return summary{}, err
	}
	log, err := openAckLog(cfg.Acked)
	if err != nil {
		return summary{}, err
	}
	begin := cfg.Now()
	deadline := begin.Add(cfg.Deadline)
	var next atomic.Int64
	var mu sync.Mutex
	var total summary
	var wg sync.WaitGroup
	for range cfg.C {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{cfg: &cfg, log: log, deadline: deadline}
			defer w.drop()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.N {
					break
				}
				w.send(ctx, i)
			}
			mu.Lock()
			total.Sent += w.sum.Sent
			total.Acked += w.sum.Acked
			total.Failed += w.sum.Failed
			total.Attempts += w.sum.Attempts
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.Elapsed = cfg.Now().Sub(begin)
	if err := log.Close(); err != nil {
		return total, err
	}
	return total, nil
}
