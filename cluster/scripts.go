package cluster

import "github.com/redis/go-redis/v9"

// The atomic steps of the shared state, one Lua script each: Redis runs a
// script alone, so a check and the write that follows it cannot be split
// by another node. redis.Script sends EVALSHA and falls back to EVAL when
// the server does not know the script (a restarted Redis); in a pipeline
// that fallback cannot happen (the NOSCRIPT error comes with the batch),
// so the heartbeat's pipelines send the script text (Eval). Times are in
// milliseconds of the nodes' clocks (NTP-synchronised; see
// docs/operations.md), passed in by the caller so that tests drive them.

// acquireScript takes a concurrency slot of one destination:
// KEYS[1] the lease set (sorted by expiry), KEYS[2] the probe token;
// ARGV now, expiry, lease id, limit, probe (1: this session is the
// half-open probe and needs the one token), key ttl (ms).
// Expired leases are dropped first: a dead node's slots come free at
// their expiry. Returns {granted (1, 0 = full, -1 = another probe
// holds the token), leases after}.
var acquireScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[4]) then return {0, n} end
if ARGV[5] == '1' then
  if not redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[6]) then return {-1, n} end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {1, n + 1}
`)

// releaseScript gives a slot back, and the probe token when this lease
// held it: KEYS[1] lease set, KEYS[2] probe token; ARGV lease id.
var releaseScript = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
`)

// renewScript extends this node's leases of one destination (heartbeat):
// KEYS[1] lease set, KEYS[2] probe token; ARGV expiry, key ttl, re-add
// (1 after Redis lost its data: the sessions are still open and count),
// then the lease ids. Without re-add a lease released meanwhile is not
// brought back.
var renewScript = redis.NewScript(`
for i = 4, #ARGV do
  if ARGV[3] == '1' then redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
  else redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i]) end
  if redis.call('GET', KEYS[2]) == ARGV[i] then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// gcraScript is the shared rate limit (GCRA, the generic cell rate
// algorithm, as KumoMTA's): KEYS[1] holds the theoretical arrival time
// (TAT, in microseconds), KEYS[2] the fleet's pace (messages per 100 ms
// slot over the last 10 s), KEYS[3] the destination's shared hash, whose
// rate is the one every node meters against (the node's own, ARGV[2],
// only while the hash has none: nodes whose views differ for a moment
// still share one bucket at one rate); ARGV now (µs), rate (messages/s;
// 0 = unlimited: count only), tokens wanted. The burst is a twentieth of
// a second's worth, at least 1, as the local bucket's (policy/rate.go).
//
// A batch of k tokens is a reservation of k consecutive emission slots,
// granted when the first is due (within the burst tolerance): the node
// spends token j no sooner than j intervals after the first, so each
// token goes no earlier than its own slot less the tolerance, as GCRA
// requires of every cell, and the fleet never goes above the rate
// however the batches interleave. Returns {granted, time of the first
// token (µs)}, or {0, wait µs} when none is due.
var gcraScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local r = tonumber(redis.call('HGET', KEYS[3], 'rate') or '') or tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local k = want
local first = now
if r > 0 then
  local T = 1e6 / r
  local tau = (math.max(math.floor(r / 20), 1) - 1) * T
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat < now then tat = now end
  if tat - now > tau then return {0, math.ceil(tat - tau - now)} end
  first = math.max(now, tat - tau)
  tat = tat + k * T
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
redis.call('HINCRBY', KEYS[2], string.format('%.0f', math.floor(now / 100000)), k)
redis.call('PEXPIRE', KEYS[2], 11000)
return {k, string.format('%.0f', first)}
`)

// publishScript carries what one node learned from a reply to the
// destination's shared hash (KEYS[1]; KEYS[2] the probe token) and
// returns the hash after, for the node to adopt. ARGV:
//
//	1 now (ms), 2 decrease window (ms), 3 key ttl (ms)
//	4 concurrency op ("cut", "raise" or ""), 5 old level, 6 new level
//	7 rate op, 8 old rate, 9 new rate (0 = unlimited)
//	10 paused until (ms; 0 = no new pause), 11 reopen ("1": a probe succeeded)
//	12 greylisting lower bound (ms; 0 = none), 13 upper bound
//
// A cut applies only when no node cut that level within the window (one
// decrease per window cluster-wide: the refusals of one burst, seen by
// three nodes, are one signal) and never raises the level; a raise is a
// compare-and-set from the level the node grew from, so that two nodes
// growing at once step it once.
var publishScript = redis.NewScript(`
local h = KEYS[1]
local now = tonumber(ARGV[1])
local win = tonumber(ARGV[2])
local function level(f, op, old, new)
  if op == '' then return end
  local cur = redis.call('HGET', h, f)
  if op == 'cut' then
    local cut = tonumber(redis.call('HGET', h, f .. '_cut') or '0')
    if cur and now - cut < win then return end
    local n = tonumber(new)
    if cur and tonumber(cur) > 0 and tonumber(cur) < n then n = tonumber(cur); new = cur end
    redis.call('HSET', h, f, new, f .. '_cut', ARGV[1])
  elseif op == 'raise' then
    if not cur or tonumber(cur) == tonumber(old) then redis.call('HSET', h, f, new) end
  end
end
level('conc', ARGV[4], ARGV[5], ARGV[6])
level('rate', ARGV[7], ARGV[8], ARGV[9])
local until_ = tonumber(ARGV[10])
if until_ > 0 and until_ > tonumber(redis.call('HGET', h, 'paused') or '0') then
  redis.call('HSET', h, 'paused', ARGV[10], 'half', '1')
end
if ARGV[11] == '1' and tonumber(redis.call('HGET', h, 'paused') or '0') <= now then
  redis.call('HSET', h, 'half', '0')
  redis.call('DEL', KEYS[2])
end
local lo = tonumber(ARGV[12])
if lo > tonumber(redis.call('HGET', h, 'grey_lo') or '0') then redis.call('HSET', h, 'grey_lo', ARGV[12]) end
local hi = tonumber(ARGV[13])
local chi = tonumber(redis.call('HGET', h, 'grey_hi') or '0')
if hi > 0 and (chi == 0 or hi < chi) then redis.call('HSET', h, 'grey_hi', ARGV[13]) end
redis.call('PEXPIRE', h, ARGV[3])
return redis.call('HGETALL', h)
`)

// seedScript writes a node's levels into a destination's hash where the
// cluster has none (after Redis lost its data, or the first node to
// send there): KEYS[1] hash; ARGV conc, rate, ttl. Returns the hash.
var seedScript = redis.NewScript(`
redis.call('HSETNX', KEYS[1], 'conc', ARGV[1])
redis.call('HSETNX', KEYS[1], 'rate', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('HGETALL', KEYS[1])
`)

// suppressScript appends to the shared suppression log: KEYS[1] the log
// (sorted by sequence), KEYS[2] the sequence; ARGV the entry, kept
// entries. Returns the entry's sequence.
var suppressScript = redis.NewScript(`
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[2]) - 1)
return seq
`)
