-- ARGV: ns, finished before, dead before. Deletes finished jobs.
local n = 0
for _, q in ipairs(redis.call('SMEMBERS', ns .. ':queues')) do
  for state, before in pairs({ completed = ARGV[2], cancelled = ARGV[2], dead = ARGV[3] }) do
    local ids = redis.call('ZRANGEBYSCORE', queue_key(q, state), '-inf', '(' .. before, 'LIMIT', 0, 10000)
    for _, id in ipairs(ids) do
      redis.call('DEL', job_key(id))
      redis.call('ZREM', queue_key(q, state), id)
      n = n + 1
    end
  end
end
return n
