-- ARGV: ns, queue, consumer, limit, now, lease end, rate key ('' for
-- none), rate count, rate scale.
-- Returns {-1} when paused, {-2, wait ms} when rate limited, else
-- {0, job fields...} with each job's HGETALL as a nested array.
local q, consumer = ARGV[2], ARGV[3]
local limit, now, lease = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if limit < 1 then return { 0 } end
if redis.call('SISMEMBER', ns .. ':paused', q) == 1 then return { -1 } end
local due = redis.call('ZRANGEBYSCORE', queue_key(q, 'sched'), '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  move(id, 'available', now)
end
local rate_key = ''
if ARGV[7] ~= '' then
  rate_key = ns .. ':rate:' .. ARGV[7]
  local scale = tonumber(ARGV[9])
  redis.call('ZREMRANGEBYSCORE', rate_key, '-inf', now - scale)
  local used = redis.call('ZCARD', rate_key)
  limit = math.min(limit, tonumber(ARGV[8]) - used)
  if limit <= 0 then
    local oldest = redis.call('ZRANGE', rate_key, 0, 0, 'WITHSCORES')
    local free_at = (tonumber(oldest[2]) or now) + scale
    return { -2, math.max(free_at - now, 1) }
  end
end
local out = { 0 }
local ids = redis.call('ZRANGE', queue_key(q, 'avail'), 0, limit - 1)
if #ids == 0 then return out end
bulk('ZREM', queue_key(q, 'avail'), ids)
local counts = ns .. ':counts:' .. q
redis.call('HINCRBY', counts, 'available', -#ids)
redis.call('HINCRBY', counts, 'executing', #ids)
local leases = {}
for _, id in ipairs(ids) do
  local key = job_key(id)
  local attempt = redis.call('HINCRBY', key, 'attempt', 1)
  redis.call('HSET', key, 'state', 'executing', 'node', consumer, 'att', now, 'lease', lease)
  table.insert(leases, lease)
  table.insert(leases, id)
  if rate_key ~= '' then
    redis.call('ZADD', rate_key, now, id .. ':' .. attempt)
  end
  table.insert(out, redis.call('HGETALL', key))
end
bulk('ZADD', ns .. ':leases', leases, 2)
bulk('SADD', ns .. ':exec:' .. consumer, ids)
redis.call('SADD', ns .. ':consumers', consumer)
return out
