-- ARGV: ns, now, then per job: queue, worker, args, priority, max
-- retries, run at, unique key ('' for none), unique period, release ('1':
-- a cancelled or dead job lets its key go).
-- Returns id, duplicate (0/1) per job.
-- A script that fails half-way keeps what it wrote, so every number is
-- checked before the first write: a bad batch writes nothing.
local now = tonumber(ARGV[2])
local limit = 9007199254740991
local function whole(v, low)
  local n = tonumber(v)
  return n ~= nil and n == math.floor(n) and n >= low and n <= limit
end
for i = 3, #ARGV, 9 do
  if not (whole(ARGV[i + 3], 0) and whole(ARGV[i + 4], 0) and whole(ARGV[i + 5], 0)
      and (ARGV[i + 6] == '' or whole(ARGV[i + 7], 1))) then
    return redis.error_reply('ERR enqueue: a number out of range in job ' .. ((i - 3) / 9 + 1))
  end
end
local out = {}
for i = 3, #ARGV, 9 do
  local q, ukey = ARGV[i], ARGV[i + 6]
  local held_by = false
  if ukey ~= '' then held_by = redis.call('GET', ns .. ':uniq:' .. ukey) end
  if held_by then
    table.insert(out, tonumber(held_by))
    table.insert(out, 1)
  else
    local id = redis.call('INCR', ns .. ':seq')
    local run_at = tonumber(ARGV[i + 5])
    redis.call('HSET', job_key(id), 'id', id, 'queue', q, 'worker', ARGV[i + 1], 'args', ARGV[i + 2],
      'priority', ARGV[i + 3], 'max', ARGV[i + 4], 'attempt', 0, 'enq', now, 'sched', run_at,
      'errors', '')
    if ukey ~= '' and ARGV[i + 8] == '1' then
      -- Kept only by a job whose key goes when it is cancelled or dead.
      redis.call('HSET', job_key(id), 'ukey', ukey)
    end
    redis.call('SADD', ns .. ':queues', q)
    if run_at > now then
      enter(id, q, 'scheduled', run_at)
    else
      enter(id, q, 'available', run_at)
    end
    if ukey ~= '' then
      redis.call('SET', ns .. ':uniq:' .. ukey, id, 'PX', ARGV[i + 7])
    end
    table.insert(out, id)
    table.insert(out, 0)
  end
end
return out
