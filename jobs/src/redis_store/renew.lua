-- ARGV: ns, consumer, lease end, then per attempt: id, attempt.
-- Returns the ids the consumer no longer holds.
local consumer, lease = ARGV[2], tonumber(ARGV[3])
local lost = {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  if held(id, consumer, ARGV[i + 1]) then
    redis.call('ZADD', ns .. ':leases', lease, id)
    redis.call('HSET', job_key(id), 'lease', lease)
  else
    table.insert(lost, id)
  end
end
return lost
