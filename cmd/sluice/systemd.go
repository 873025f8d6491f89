package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"sluice/internal/sdnotify"
)

// Service-manager integration (dist/systemd/sluice.service, Type=notify).
// Everything here is a no-op when $NOTIFY_SOCKET is unset.

// acceptWatch wraps an SMTP listener to learn when its server's accept
// loop runs: inbound.Server.Serve registers the listener (so that a
// drain closes it) and only then calls Accept, so the first call means
// the listener is served; connections that arrived since bind wait in
// the kernel's backlog until then and are answered.
type acceptWatch struct {
	net.Listener
	once      sync.Once
	accepting chan struct{}
}

func watchAccept(l net.Listener) *acceptWatch {
	return &acceptWatch{Listener: l, accepting: make(chan struct{})}
}

func (a *acceptWatch) Accept() (net.Conn, error) {
	a.once.Do(func() { close(a.accepting) })
	return a.Listener.Accept()
}

// notifyReady tells systemd READY=1 once every SMTP listener is served,
// so that `systemctl start sluice` returns (and units ordered after it
// start) only when SMTP accepts mail; then it feeds the watchdog until
// ctx ends. systemd arms the watchdog only at READY=1 (systemd.service(5),
// WatchdogSec=), so a long start-up is TimeoutStartSec's to judge.
func (d *daemon) notifyReady(ctx context.Context, serving []*acceptWatch) {
	for _, a := range serving {
		select {
		case <-a.accepting:
		case <-ctx.Done():
			return
		}
	}
	if !sdnotify.Enabled() {
		return
	}
	if err := sdnotify.Ready(); err != nil {
		d.log.Warn("systemd: cannot send READY=1", "err", err)
		return
	}
	addrs := make([]string, len(serving))
	for i, a := range serving {
		addrs[i] = a.Addr().String()
	}
	_ = sdnotify.Status("accepting mail on " + strings.Join(addrs, ", "))
	d.log.Info("systemd: ready")
	every, err := sdnotify.WatchdogInterval()
	if err != nil {
		d.log.Error("systemd: watchdog disabled: WATCHDOG_USEC is not a number of microseconds; systemd will stop sluice when WatchdogSec passes", "err", err)
		return
	}
	if every > 0 {
		d.log.Info("systemd: watchdog on", "every", every.String())
		watchdog(ctx, d.log, every, d.loops(), sdnotify.Watchdog)
	}
}

// notifySystemd starts notifyReady (and the watchdog after it) and
// returns the function to call when shutdown begins: it stops both, waits
// for them so that no WATCHDOG=1 follows, and sends STOPPING=1.
func (d *daemon) notifySystemd(ctx context.Context, serving []*acceptWatch) (stopping func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.notifyReady(ctx, serving)
	}()
	return func() {
		cancel()
		<-done
		d.notifyStopping()
	}
}

// notifyStopping tells systemd STOPPING=1 as the drain begins.
func (d *daemon) notifyStopping() {
	if !sdnotify.Enabled() {
		return
	}
	_ = sdnotify.Status("draining: no new mail, deliveries in flight finish")
	if err := sdnotify.Stopping(); err != nil {
		d.log.Warn("systemd: cannot send STOPPING=1", "err", err)
	}
}

// loop is one of the daemon's loops the watchdog asks to answer.
type loop struct {
	name string
	ping func(context.Context) error
}

// loops are the two loops everything hangs on: the scheduler's
// (deliveries) and the queue's commit goroutine (every acknowledgement
// and every delivery outcome waits on it).
func (d *daemon) loops() []loop {
	return []loop{{"scheduler loop", d.sched.Ping}, {"queue commit loop", d.queue.Ping}}
}

// watchdog feeds the systemd watchdog every period, but only after every
// loop has answered: a daemon stuck in one stops feeding it and systemd
// restarts it (Restart=on-failure), where a bare ticker would keep a hung
// relay "alive" forever. The loops may take the whole period to answer:
// systemd acts only after two periods without a feed.
func watchdog(ctx context.Context, log *slog.Logger, every time.Duration, loops []loop, feed func() error) {
	t := time.NewTicker(every)
	defer t.Stop()
	var stuck error // the last failure, logged once until the loops answer again
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := alive(ctx, every, loops)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && stuck == nil:
			log.Error("systemd: watchdog not fed: a loop does not answer", "err", err)
		case err == nil && stuck != nil:
			log.Info("systemd: watchdog fed again")
		}
		stuck = err
		if err != nil {
			continue
		}
		if ferr := feed(); ferr != nil {
			log.Warn("systemd: cannot send WATCHDOG=1", "err", ferr)
		}
	}
}

// alive asks each loop in turn to answer, all within `within`.
func alive(ctx context.Context, within time.Duration, loops []loop) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for _, l := range loops {
		if err := l.ping(ctx); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("no answer within %v", within)
			}
			return fmt.Errorf("%s: %w", l.name, err)
		}
	}
	return nil
}
