-- Shared by every script: ARGV[1] is the key namespace.
-- Keys: NS:job:ID (hash), NS:q:Q:avail (zset, priority * 2^44 + run time),
-- NS:q:Q:sched (zset, run time: scheduled and retryable), NS:q:Q:<final
-- state> (zset, finish time), NS:leases (zset, lease end),
-- NS:exec:CONSUMER (set), NS:counts:Q (hash, live states), NS:queues,
-- NS:paused, NS:npaused:Q, NS:consumers (sets), NS:uniq:KEY,
-- NS:rate:KEY, NS:seq.
local ns = ARGV[1]
local PRIORITY_SPAN = 17592186044416
local FINAL = { completed = true, dead = true, cancelled = true }

local function job_key(id) return ns .. ':job:' .. id end
local function queue_key(q, part) return ns .. ':q:' .. q .. ':' .. part end

-- Takes job `id` (in queue `q`, state `from`) out of its state's index.
local function leave(id, q, from)
  if from == 'available' then
    redis.call('ZREM', queue_key(q, 'avail'), id)
  elseif from == 'scheduled' or from == 'retryable' then
    redis.call('ZREM', queue_key(q, 'sched'), id)
  elseif from == 'executing' then
    redis.call('ZREM', ns .. ':leases', id)
    local node = redis.call('HGET', job_key(id), 'node')
    if node then redis.call('SREM', ns .. ':exec:' .. node, id) end
  elseif FINAL[from] then
    redis.call('ZREM', queue_key(q, from), id)
  end
  if from and not FINAL[from] then
    redis.call('HINCRBY', ns .. ':counts:' .. q, from, -1)
  end
end

-- Puts job `id` into state `to`; `at` is its run time (scheduled,
-- retryable), lease end (executing) or finish time (final states).
local function enter(id, q, to, at)
  local key = job_key(id)
  if to == 'available' then
    local f = redis.call('HMGET', key, 'priority', 'sched')
    local score = (tonumber(f[1]) or 0) * PRIORITY_SPAN + (tonumber(f[2]) or 0)
    redis.call('ZADD', queue_key(q, 'avail'), score, id)
  elseif to == 'scheduled' or to == 'retryable' then
    redis.call('ZADD', queue_key(q, 'sched'), at, id)
    redis.call('HSET', key, 'sched', at)
  elseif to == 'executing' then
    redis.call('ZADD', ns .. ':leases', at, id)
    redis.call('HSET', key, 'lease', at)
    local node = redis.call('HGET', key, 'node')
    redis.call('SADD', ns .. ':exec:' .. node, id)
    redis.call('SADD', ns .. ':consumers', node)
  elseif FINAL[to] then
    redis.call('ZADD', queue_key(q, to), at, id)
    redis.call('HSET', key, 'done', at)
  end
  if not FINAL[to] then
    redis.call('HINCRBY', ns .. ':counts:' .. q, to, 1)
  end
  if to == 'cancelled' or to == 'dead' then
    -- A job that holds its key only while live lets it go (if it still
    -- holds it), so enqueue-then-cancel cannot keep others' jobs out.
    local uk = redis.call('HGET', key, 'ukey')
    if uk and redis.call('GET', ns .. ':uniq:' .. uk) == tostring(id) then
      redis.call('DEL', ns .. ':uniq:' .. uk)
    end
  end
  redis.call('HSET', key, 'state', to)
end

-- Runs `cmd key [prefix...] items...` in chunks, so long lists stay
-- within Lua's stack.
local function bulk(cmd, key, items, step)
  step = step or 1
  local chunk = 512 * step
  for i = 1, #items, chunk do
    redis.call(cmd, key, unpack(items, i, math.min(i + chunk - 1, #items)))
  end
end

local function move(id, to, at)
  local f = redis.call('HMGET', job_key(id), 'queue', 'state')
  leave(id, f[1], f[2])
  enter(id, f[1], to, at)
end

local function append_error(id, entry)
  local key = job_key(id)
  local errors = redis.call('HGET', key, 'errors') or ''
  redis.call('HSET', key, 'errors', errors .. entry .. '\n')
end

-- Whether `consumer` still holds attempt `attempt` of job `id`.
local function held(id, consumer, attempt)
  local f = redis.call('HMGET', job_key(id), 'state', 'node', 'attempt')
  return f[1] == 'executing' and f[2] == consumer and f[3] == attempt
end

-- Hands back an executing job: available again, or dead after its last
-- attempt. `message` is the error, with the node's name spliced in.
local function hand_back(id, now, before, after)
  local f = redis.call('HMGET', job_key(id), 'state', 'node', 'attempt', 'max')
  if f[1] ~= 'executing' then return 0 end
  local attempt = tonumber(f[3]) or 0
  append_error(id, cjson.encode({ attempt = attempt, at_ms = now, node = f[2],
    error = before .. f[2] .. after }))
  if attempt > (tonumber(f[4]) or 0) then
    move(id, 'dead', now)
  else
    move(id, 'available', now)
  end
  redis.call('HDEL', job_key(id), 'lease')
  return 1
end
