// Package sdnotify tells systemd what the daemon is doing, through the
// sd_notify(3) protocol: one datagram per state change, sent to the unix
// socket named by $NOTIFY_SOCKET. The datagram itself is sent by
// github.com/coreos/go-systemd/v22/daemon; this package names the few
// states sluice reports and adds what that library leaves to the caller
// (MONOTONIC_USEC with RELOADING=1, the watchdog period).
//
// Every function is a no-op returning nil when $NOTIFY_SOCKET is unset (not
// run by systemd, or a unit that is not Type=notify), so callers need not
// check. All are safe to call from any goroutine: each call dials its own
// datagram socket.
//
// Who sends what:
//   - serve sends Ready once every listener is bound and serving, so that
//     `systemctl start` returns only when SMTP accepts mail;
//   - reload sends Reloading before it re-reads the config and Ready after
//     it applied (or refused) the new one;
//   - serve sends Stopping when it begins to drain, at SIGTERM;
//   - the watchdog loop sends Watchdog at half of $WATCHDOG_USEC, each time
//     only after the daemon's own loops have answered (cmd/sluice/systemd.go).
package sdnotify

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Enabled reports whether a service manager listens ($NOTIFY_SOCKET set).
func Enabled() bool { return os.Getenv("NOTIFY_SOCKET") != "" }

// Ready tells systemd that startup (or a reload) is finished: READY=1.
func Ready() error { return send(daemon.SdNotifyReady) }

// Reloading tells systemd that a reload begins: RELOADING=1. sd_notify(3)
// asks that it carry MONOTONIC_USEC, the CLOCK_MONOTONIC time of the
// request, so that systemd (Type=notify-reload, systemd >= 253) can tell
// this reload from an older one; Ready must follow when the reload is done.
func Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return send(daemon.SdNotifyReloading)
	}
	usec := ts.Sec*1_000_000 + ts.Nsec/1_000
	return send(daemon.SdNotifyReloading + "\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10))
}

// Stopping tells systemd that shutdown begins: STOPPING=1.
func Stopping() error { return send(daemon.SdNotifyStopping) }

// Watchdog keeps the watchdog from firing: WATCHDOG=1. Send it only when
// the daemon has proved itself alive, never from a bare ticker.
func Watchdog() error { return send(daemon.SdNotifyWatchdog) }

// Status sets the free-form status line `systemctl status` shows.
func Status(line string) error { return send("STATUS=" + line) }

// WatchdogInterval is how often to send Watchdog: half of $WATCHDOG_USEC,
// as sd_watchdog_enabled(3) advises, or 0 when the watchdog is off (unset,
// or $WATCHDOG_PID names another process). A malformed value is an error,
// so that a unit with a typo fails loudly instead of being killed later.
func WatchdogInterval() (time.Duration, error) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0, fmt.Errorf("sdnotify: %w", err)
	}
	return d / 2, nil
}

func send(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("sdnotify: %s: %w", firstLine(state), err)
	}
	return nil
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
