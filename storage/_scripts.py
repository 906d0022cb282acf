"""Lua scripts for the task transitions that must be atomic.

A script runs alone on the server, so "read the status, then write" cannot
interleave with another client: a cancelled task can never be turned into a
completed one, and a redelivered message is counted exactly once. Timestamps
come from the server's clock (``TIME``), so every worker agrees on them. Every
status change also sets ``ts``, as the seed Ray Service did, for its dashboards.

Scripts about one task share a calling convention:
``KEYS = [task hash, stream, done list, stats hash]`` and
``ARGV = [group, ttl seconds, events channel, *script arguments]``.
"""

from __future__ import annotations

_PRELUDE = """
-- 'succeeded': what versions before 'completed' (the seed's word) wrote
local TERMINAL = {completed = true, succeeded = true, failed = true, cancelled = true}

local function now()
  local t = redis.call('TIME')
  return string.format('%d.%06d', t[1], t[2])
end

-- Upper bounds (seconds) of the task latency buckets: submission to end
local LATENCY_BOUNDS = {0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200}

-- Counts an ended task in the stats hash: by status, and its latency by algorithm
-- (in its first bucket only; readers add them up): counters any gateway can expose.
local function count_end(status, at)
  if not KEYS[4] then return end
  redis.call('HINCRBY', KEYS[4], 'ended:' .. status, 1)
  local algorithm = redis.call('HGET', KEYS[1], 'algorithm') or ''
  local created = tonumber(redis.call('HGET', KEYS[1], 'created_at') or '')
  if not created then return end
  local seconds = math.max(0, tonumber(at) - created)
  local bucket = 'inf'
  for _, bound in ipairs(LATENCY_BOUNDS) do
    if seconds <= bound then bucket = tostring(bound); break end
  end
  redis.call('HINCRBY', KEYS[4], 'latency:' .. algorithm .. ':' .. bucket, 1)
  redis.call('HINCRBYFLOAT', KEYS[4], 'latency-sum:' .. algorithm, string.format('%.6f', seconds))
end

-- Ends the task once: ack its message, expire the record, wake the waiters.
-- 1: ended now; 0: it had already ended; -1: no such task.
local function finish(status, result, err)
  local current = redis.call('HGET', KEYS[1], 'status')
  if not current then return -1 end
  if TERMINAL[current] then return 0 end
  local at = now()
  local fields = {'status', status, 'finished_at', at, 'ts', at}
  if status == 'completed' then
    table.insert(fields, 'progress'); table.insert(fields, '1')
  end
  if result ~= '' then table.insert(fields, 'result'); table.insert(fields, result) end
  if err ~= '' then table.insert(fields, 'error'); table.insert(fields, err) end
  redis.call('HSET', KEYS[1], unpack(fields))
  if status == 'completed' then redis.call('HDEL', KEYS[1], 'progress_message') end
  local message_id = redis.call('HGET', KEYS[1], 'message_id')
  if message_id then redis.pcall('XACK', KEYS[2], ARGV[1], message_id) end
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[3])
  redis.call('RPUSH', KEYS[3], status)
  redis.call('EXPIRE', KEYS[3], ARGV[2])
  redis.call('PUBLISH', ARGV[3], status)
  count_end(status, at)
  return 1
end
"""

# KEYS: task hash, stream. ARGV: task id, algorithm, payload JSON, stream retention
# seconds, then more field/value pairs. The stream entry carries what the seed's did
# (task_id, model, payload, status, ts); entries older than the retention are trimmed.
# Idempotent, so a client retry after a lost reply cannot enqueue the task twice.
SUBMIT = _PRELUDE + """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {redis.call('HGET', KEYS[1], 'message_id'), redis.call('HGET', KEYS[1], 'created_at')}
end
local created_at = now()
local t = redis.call('TIME')
local oldest = string.format('%d-0', math.max(0, (tonumber(t[1]) - tonumber(ARGV[4])) * 1000))
local message_id = redis.call('XADD', KEYS[2], 'MINID', '~', oldest, '*', 'task_id', ARGV[1],
                              'algorithm', ARGV[2], 'model', ARGV[2], 'payload', ARGV[3],
                              'status', 'queued', 'ts', created_at)
redis.call('HSET', KEYS[1], 'task_id', ARGV[1], 'algorithm', ARGV[2], 'model', ARGV[2], 'payload', ARGV[3],
           'status', 'queued', 'progress', '0', 'attempts', '0', 'created_at', created_at, 'ts', created_at,
           'message_id', message_id, unpack(ARGV, 5))
return {message_id, created_at}
"""

# KEYS: task hash. ARGV: task id, algorithm, payload JSON, status, result or error field
# name, its JSON, started_at, ttl seconds. A synchronous call, recorded once it has ended
# (it is in no queue: the stream is the work queue), readable like a task until it expires.
RECORD = _PRELUDE + """
local at = now()
redis.call('HSET', KEYS[1], 'task_id', ARGV[1], 'algorithm', ARGV[2], 'model', ARGV[2], 'payload', ARGV[3],
           'status', ARGV[4], ARGV[5], ARGV[6], 'progress', ARGV[4] == 'completed' and '1' or '0',
           'attempts', '1', 'max_attempts', '1', 'created_at', ARGV[7], 'started_at', ARGV[7],
           'finished_at', at, 'ts', at)
redis.call('EXPIRE', KEYS[1], ARGV[8])
return 1
"""

# ARGV[4]: delivered message id, ARGV[5]: claiming worker.
# Claims and starts the task: returns the record's fields, or nil when the message
# needs no work (task gone, already ended (a cancel while queued wins), or out of
# attempts: then it is failed here and acked).
CLAIM = _PRELUDE + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or TERMINAL[status] then
  redis.pcall('XACK', KEYS[2], ARGV[1], ARGV[4])
  return false
end
redis.call('HSET', KEYS[1], 'message_id', ARGV[4])
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
local max_attempts = tonumber(redis.call('HGET', KEYS[1], 'max_attempts') or '1')
if attempts >= max_attempts then
  local message = string.format(
    'tried %d time%s, and each time its worker or replica died before finishing; gave up at max_attempts=%d',
    attempts, attempts == 1 and '' or 's', max_attempts)
  finish('failed', '', cjson.encode({type = 'worker_lost', message = message}))
  return false
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local at = now()
redis.call('HSET', KEYS[1], 'status', 'running', 'worker_id', ARGV[5], 'started_at', at, 'ts', at)
redis.call('PUBLISH', ARGV[3], 'running')
return redis.call('HGETALL', KEYS[1])
"""

# Counts one more attempt of a running task, run again in place by its worker (its
# algorithm's replica died under it). Returns the attempts so far, 0 if the task is
# no longer running (ended meanwhile: do not run it again), -1 if there is no such task.
RETRY = _PRELUDE + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status ~= 'running' then return 0 end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('PUBLISH', ARGV[3], 'running')
return attempts
"""

# ARGV[4]: fraction, ARGV[5]: message ('' clears it). 0 tells the worker the task has ended.
PROGRESS = _PRELUDE + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[4])
if ARGV[5] == '' then
  redis.call('HDEL', KEYS[1], 'progress_message')
else
  redis.call('HSET', KEYS[1], 'progress_message', ARGV[5])
end
redis.call('PUBLISH', ARGV[3], 'progress')
return 1
"""

# ARGV[4]: terminal status, ARGV[5]: result JSON or '', ARGV[6]: error JSON or ''.
FINISH = _PRELUDE + """
return finish(ARGV[4], ARGV[5], ARGV[6])
"""

# ARGV[4]: error JSON, ARGV[5]: cancel channel, ARGV[6]: task id.
CANCEL = _PRELUDE + """
local ended = finish('cancelled', '', ARGV[4])
if ended == 1 then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return ended
"""

# KEYS: stream. ARGV: group, worker, then the message ids of the tasks it is still running.
# Resets the idle time of those of them it still holds (XCLAIM JUSTID does not count a
# delivery), so long tasks keep their claim; a claim whose task stopped running here (its
# coroutine died, say on a lost connection) is left to go stale and be redelivered.
RENEW_LEASES = """
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 1000, ARGV[2])
if type(pending) ~= 'table' or pending.err or #pending == 0 then return 0 end
local running = {}
for i = 3, #ARGV do running[ARGV[i]] = true end
local args = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0}
for _, entry in ipairs(pending) do
  if running[entry[1]] then table.insert(args, entry[1]) end
end
if #args == 5 then return 0 end
table.insert(args, 'JUSTID')
return #redis.call(unpack(args))
"""
