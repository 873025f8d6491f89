package policy

import "time"

// A mailbox that says it takes no more for now (a recipient-temp reply:
// "receives too many messages", "mailbox busy", "over quota") refuses
// the other messages to it as well until then. Its other recipients are
// held back (Hold) until the refused one's retry, instead of each being
// tried and refused on its own backoff; the destination's limits are not
// touched (issue 11 family (b)). Keyed like the greylist entries, and
// bounded the same way.

// holdMailbox records that rcpt at dest takes nothing before until.
// Caller holds p.mu.
func (p *Policy) holdMailbox(dest, rcpt string, until, now time.Time) {
	if rcpt == "" {
		return
	}
	k := greyKey(dest, rcpt)
	if cur, ok := p.mailboxes[k]; ok && !until.After(cur) {
		return
	}
	if len(p.mailboxes) >= maxTracked {
		for key, t := range p.mailboxes {
			if !t.After(now) {
				delete(p.mailboxes, key)
			}
		}
		if len(p.mailboxes) >= maxTracked {
			for key := range p.mailboxes {
				delete(p.mailboxes, key)
				break
			}
		}
	}
	p.mailboxes[k] = until
}

// mailboxHeld is when rcpt's mailbox at dest takes mail again, if later
// than now (zero otherwise), spread over a probe wait so that the held
// messages do not all come at one instant. Caller holds p.mu.
func (p *Policy) mailboxHeld(k string, now time.Time) time.Time {
	until, ok := p.mailboxes[k]
	if !ok {
		return time.Time{}
	}
	if !until.After(now) {
		delete(p.mailboxes, k)
		return time.Time{}
	}
	return until.Add(time.Duration(p.rnd() * float64(p.probeWait())))
}
