"""Lua scripts for actor records, each atomic on the server.

An actor is active on at most one host at a time: the host holds its *lease*
(``<host> <token>``, with a TTL it renews) and every activation takes a new
*fencing token* from the actor's counter. A state write names the token it was
read under and is refused unless that token still holds the lease, so a host
that lost the actor (paused past its lease, cut off from Redis) can never
overwrite what a newer activation wrote.

A writing call's result is kept (``calls`` hash, by call id, for ``RECALL_S`` seconds,
ordered in the ``call times`` zset) in the same write as the state it produced, so
a call retried because its answer was lost (its host killed) is answered, not run
again.

All scripts take ``KEYS = [actor hash, actors zset, lease, fence counter, calls, call times, stats]``.
"""

from __future__ import annotations

_PRELUDE = """
local function now()
  local t = redis.call('TIME')
  return string.format('%d.%06d', t[1], t[2])
end

-- the token holding the lease, or nil
local function holder_token(host)
  local lease = redis.call('GET', KEYS[3])
  if not lease then return nil end
  local who, token = string.match(lease, '^(%S+) (%d+)$')
  if host and who ~= host then return nil end
  return token
end
"""

# ARGV: actor id, template, args JSON, kwargs JSON, options JSON.
# 1: bound now; 0: already bound with the same arguments; -1: bound otherwise (its template is returned).
BIND = _PRELUDE + """
if redis.call('EXISTS', KEYS[1]) == 1 then
  local was = redis.call('HMGET', KEYS[1], 'template', 'args', 'kwargs', 'options')
  if was[1] == ARGV[2] and was[2] == ARGV[3] and was[3] == ARGV[4] and was[4] == ARGV[5] then
    return {0, was[1]}
  end
  return {-1, was[1]}
end
local at = now()
redis.call('HSET', KEYS[1], 'actor_id', ARGV[1], 'template', ARGV[2], 'args', ARGV[3], 'kwargs', ARGV[4],
           'options', ARGV[5], 'bound_at', at, 'version', '0', 'calls', '0')
redis.call('ZADD', KEYS[2], tonumber(at), ARGV[1])
return {1, ARGV[2]}
"""

# ARGV: host ("<name>/<incarnation>"), lease ms. Takes (or renews) the lease for host; returns
# {1, token, record...} when it holds it, {0, other holder} when another host does, {-1} if unbound.
# A lease held by an earlier incarnation of the same host (it died and was restarted: only one
# process by that name runs) is taken over under a new token.
ACQUIRE = _PRELUDE + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local lease = redis.call('GET', KEYS[3])
local token
local function name_of(host) return string.match(host, '^([^/]+)') end
if lease then
  local who, held = string.match(lease, '^(%S+) (%d+)$')
  if who == ARGV[1] then
    token = held
  elseif name_of(who) == name_of(ARGV[1]) then
    token = tostring(redis.call('INCR', KEYS[4]))
  else
    return {0, who}
  end
else
  token = tostring(redis.call('INCR', KEYS[4]))
end
if not (lease and string.match(lease, '^(%S+) ') == ARGV[1]) then  -- a new activation, not a renewal
  redis.call('HINCRBY', KEYS[7], 'activations:' .. (redis.call('HGET', KEYS[1], 'template') or ''), 1)
end
redis.call('SET', KEYS[3], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return {1, token, redis.call('HGETALL', KEYS[1])}
"""

# ARGV: host, token, lease ms. 1 when host still holds the lease under token (renewed), else 0.
RENEW = _PRELUDE + """
if holder_token(ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
"""

# ARGV: host, token, state JSON or '', state_ref or '', state bytes, recall seconds, then call id /
# result JSON pairs for the calls this write acknowledges.
# Writes the state only under the lease (fencing); returns {1, version, previous state_ref or ''}
# or {0} when the lease is lost (the write is refused, nothing changes).
CHECKPOINT = _PRELUDE + """
if holder_token(ARGV[1]) ~= ARGV[2] then return {0} end
local previous = redis.call('HGET', KEYS[1], 'state_ref') or ''
local t = redis.call('TIME')
local nowf = tonumber(t[1]) + tonumber(t[2]) / 1e6
local stale = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', nowf - tonumber(ARGV[6]))
if #stale > 0 then
  redis.call('HDEL', KEYS[5], unpack(stale))
  redis.call('ZREM', KEYS[6], unpack(stale))
end
local calls = 0
for i = 7, #ARGV, 2 do
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[6], nowf, ARGV[i])
  calls = calls + 1
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'state', ARGV[3])
  redis.call('HDEL', KEYS[1], 'state_ref')
else
  redis.call('HSET', KEYS[1], 'state_ref', ARGV[4])
  redis.call('HDEL', KEYS[1], 'state')
end
local at = now()
redis.call('HSET', KEYS[1], 'state_bytes', ARGV[5], 'checkpointed_at', at, 'last_call_at', at)
redis.call('HINCRBY', KEYS[1], 'calls', calls)
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
if previous == ARGV[4] then previous = '' end
return {1, version, previous}
"""

# ARGV: host, token. Gives the lease up (passivation); 1 if it was held.
RELEASE = _PRELUDE + """
if holder_token(ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[3])
return 1
"""

# ARGV: actor id. Removes the actor, its lease and its recorded calls (a host still holding it can
# write nothing more); returns its state_ref ('' if none) so the caller deletes the object, or -1 if unbound.
DELETE = _PRELUDE + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local ref = redis.call('HGET', KEYS[1], 'state_ref') or ''
redis.call('DEL', KEYS[1], KEYS[3], KEYS[5], KEYS[6])
redis.call('ZREM', KEYS[2], ARGV[1])
return ref
"""
