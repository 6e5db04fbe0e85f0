-- ARGV: ns, queue, state, offset, limit. Returns each listed job's fields
-- (HGETALL). Available jobs come in the order they run, scheduled and
-- retryable ones by run time, executing ones by lease end, finished ones
-- newest first. Indexes shared between states or queues are filtered and
-- looked at for at most SCAN entries, so a listing stays bounded.
local q, state = ARGV[2], ARGV[3]
local offset, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local SCAN = 20000
local index, shared, reverse
if state == 'available' then
  index = queue_key(q, 'avail')
elseif state == 'scheduled' or state == 'retryable' then
  index, shared = queue_key(q, 'sched'), true
elseif state == 'executing' then
  index, shared = ns .. ':leases', true
elseif FINAL[state] then
  index, reverse = queue_key(q, state), true
else
  return {}
end
local function range(from, to)
  if reverse then return redis.call('ZREVRANGE', index, from, to) end
  return redis.call('ZRANGE', index, from, to)
end
local out = {}
if not shared then
  for _, id in ipairs(range(offset, offset + limit - 1)) do
    table.insert(out, redis.call('HGETALL', job_key(id)))
  end
  return out
end
local skipped, pos = 0, 0
while #out < limit and pos < SCAN do
  local ids = range(pos, pos + 255)
  if #ids == 0 then break end
  pos = pos + #ids
  for _, id in ipairs(ids) do
    local f = redis.call('HMGET', job_key(id), 'queue', 'state')
    if f[1] == q and f[2] == state then
      if skipped < offset then
        skipped = skipped + 1
      elseif #out < limit then
        table.insert(out, redis.call('HGETALL', job_key(id)))
      end
    end
  end
end
return out
