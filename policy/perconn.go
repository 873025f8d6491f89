package policy

// perConnection is the learned number of messages per connection, lowered
// by "too many messages in this connection" replies (the reconnect
// class), with the counts its first estimate comes from.
type perConnection struct {
	limit  int // 0 = unlimited
	admits int // sessions granted
	oks    int // successes
}

// lower is a reconnect reply. We do not know how many messages that
// session carried, so the first time the limit is the average number of
// successes per session so far (at least 1); after that, every further
// reply halves it (floor 1). It reports a change.
func (c *perConnection) lower() bool {
	n := c.limit / 2
	if c.limit == 0 {
		n = 1
		if c.admits > 0 {
			n = c.oks / c.admits
		}
	}
	n = max(n, 1)
	if n == c.limit {
		return false
	}
	c.limit = n
	return true
}
