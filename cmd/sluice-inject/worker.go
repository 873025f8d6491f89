package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-smtp"
)

// worker is one SMTP client: one connection, reused for many messages,
// replaced after any error that leaves its state unknown.
type worker struct {
	cfg      *config
	log      *ackLog
	deadline time.Time
	c        *smtp.Client
	sum      summary
}

// outcome of one attempt.
type outcome int

const (
	acked     outcome = iota
	retry             // temporary: try again after a backoff
	permanent         // 5xx: never acknowledged
)

// send delivers message i, retrying until it is acknowledged, refused for
// good, or the deadline passes.
func (w *worker) send(ctx context.Context, i int) {
	w.sum.Sent++
	to := recipients(w.cfg.To, i, w.cfg.Rcpts, w.cfg.Wrap)
	id := messageID(w.cfg.RunID, i)
	msg := buildMessage(w.cfg.RunID, i, w.cfg.From, to, w.cfg.Size, w.cfg.Now())
	wait := w.cfg.Backoff
	for {
		if ctx.Err() != nil || !w.cfg.Now().Before(w.deadline) {
			w.sum.Failed++
			return
		}
		w.sum.Attempts++
		switch w.attempt(id, to, msg) {
		case acked:
			w.sum.Acked++
			return
		case permanent:
			w.sum.Failed++
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		wait = min(2*wait, maxBackoff)
	}
}

func (w *worker) attempt(id string, to []string, msg []byte) outcome {
	if w.c == nil {
		if err := w.connect(); err != nil {
			w.cfg.Logger.Debug("connect", "addr", w.cfg.Addr, "err", err)
			return retry
		}
	}
	accepted, out, err := w.transaction(to, msg)
	if err != nil {
		w.cfg.Logger.Debug("transaction", "id", id, "err", err)
		w.recover(err)
		return out
	}
	if w.cfg.PerRcpt {
		for _, r := range accepted {
			if err := w.log.record(id + " " + r); err != nil {
				w.cfg.Logger.Error("record", "err", err)
			}
		}
	} else if err := w.log.record(id); err != nil {
		w.cfg.Logger.Error("record", "err", err)
	}
	return acked
}

func (w *worker) connect() error {
	conn, err := net.DialTimeout("tcp", w.cfg.Addr, w.cfg.Timeout)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = w.cfg.Timeout
	c.SubmissionTimeout = w.cfg.Timeout
	if err := c.Hello(w.cfg.Helo); err != nil {
		_ = c.Close()
		return fmt.Errorf("hello: %w", err)
	}
	w.c = c
	return nil
}

// transaction runs MAIL, RCPT and DATA. A recipient refused with 5xx is
// skipped; any other refusal aborts the transaction with its outcome.
func (w *worker) transaction(to []string, msg []byte) ([]string, outcome, error) {
	if err := w.c.Mail(w.cfg.From, nil); err != nil {
		return nil, classify(err), fmt.Errorf("MAIL: %w", err)
	}
	var accepted []string
	var refusal error
	for _, r := range to {
		if err := w.c.Rcpt(r, nil); err != nil {
			if classify(err) == permanent {
				refusal = err
				continue
			}
			return nil, classify(err), fmt.Errorf("RCPT %s: %w", r, err)
		}
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		return nil, permanent, fmt.Errorf("every recipient refused: %w", refusal)
	}
	d, err := w.c.Data()
	if err != nil {
		return nil, classify(err), fmt.Errorf("DATA: %w", err)
	}
	if _, err := d.Write(msg); err != nil {
		return nil, retry, fmt.Errorf("DATA write: %w", err)
	}
	if err := d.Close(); err != nil {
		return nil, classify(err), fmt.Errorf("end of DATA: %w", err)
	}
	return accepted, acked, nil
}

// classify maps an error to an outcome: 5xx replies are permanent,
// everything else (4xx, network) is worth a retry.
func classify(err error) outcome {
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code >= 500 {
		return permanent
	}
	return retry
}

// recover puts the connection back in a known state after a failed
// transaction: RSET after a plain refusal, a new connection after a 421
// (RFC 5321 §3.8: the server closes) or a network error.
func (w *worker) recover(err error) {
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code != 421 {
		if w.c.Reset() == nil {
			return
		}
	}
	w.drop()
}

func (w *worker) drop() {
	if w.c != nil {
		_ = w.c.Close()
		w.c = nil
	}
}
