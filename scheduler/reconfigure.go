package scheduler

import (
	"errors"
	"time"
)

// Settings are the options a config reload may change in a running
// scheduler; the rest of Options is fixed at New.
type Settings struct {
	MaxQueueLifetime time.Duration
	DelayWarning     time.Duration
	MaxPerConnection int
	SuppressUnknown  bool
	ConnectionIdle   time.Duration
}

// Settings are the reloadable part of o.
func (o Options) Settings() Settings {
	return Settings{
		MaxQueueLifetime: o.MaxQueueLifetime,
		DelayWarning:     o.DelayWarning,
		MaxPerConnection: o.MaxPerConnection,
		SuppressUnknown:  o.SuppressUnknown,
		ConnectionIdle:   o.ConnectionIdle,
	}
}

// Check refuses settings Reconfigure would refuse; it changes nothing.
func (st Settings) Check() error {
	if st.MaxQueueLifetime <= 0 {
		return errors.New("scheduler: MaxQueueLifetime must be positive")
	}
	if st.MaxPerConnection < 0 || st.ConnectionIdle < 0 || st.DelayWarning < 0 {
		return errors.New("scheduler: MaxPerConnection, ConnectionIdle and DelayWarning must not be negative")
	}
	return nil
}

// Reconfigure applies reloaded settings: each takes effect at its next
// use (the next outcome for the queue lifetime and the suppression, the
// next job for messages per connection, the next idle wait). A delivery
// in flight is not interrupted.
func (s *Scheduler) Reconfigure(st Settings) error {
	if err := st.Check(); err != nil {
		return err
	}
	s.live.Store(&st)
	s.Kick()
	return nil
}

// settings are the settings in force.
func (s *Scheduler) settings() *Settings { return s.live.Load() }
