-- ARGV: ns. Returns per queue: name, paused (0/1), state and count
-- pairs (nested), and the nodes that paused it for themselves.
local out = {}
local queues = redis.call('SUNION', ns .. ':queues', ns .. ':paused')
for _, q in ipairs(queues) do
  local counts = redis.call('HGETALL', ns .. ':counts:' .. q)
  for state, _ in pairs(FINAL) do
    table.insert(counts, state)
    table.insert(counts, tostring(redis.call('ZCARD', queue_key(q, state))))
  end
  table.insert(out, { q, redis.call('SISMEMBER', ns .. ':paused', q), counts,
    redis.call('SMEMBERS', ns .. ':npaused:' .. q) })
end
return out
