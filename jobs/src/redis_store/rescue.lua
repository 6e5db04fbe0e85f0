-- ARGV: ns, now, text before the node's name, text after it, then
-- either 'consumer', NAME (everything it holds) or 'expired' (leases
-- that ended before now). Returns how many jobs were handed back.
local now = tonumber(ARGV[2])
local ids
if ARGV[5] == 'consumer' then
  ids = redis.call('SMEMBERS', ns .. ':exec:' .. ARGV[6])
else
  ids = redis.call('ZRANGEBYSCORE', ns .. ':leases', '-inf', '(' .. now)
end
local n = 0
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', job_key(id), 'state', 'node')
  if ARGV[5] ~= 'consumer' or (f[1] == 'executing' and f[2] == ARGV[6]) then
    n = n + hand_back(id, now, ARGV[3], ARGV[4])
  elseif ARGV[5] == 'consumer' then
    redis.call('SREM', ns .. ':exec:' .. ARGV[6], id)
  end
end
if ARGV[5] == 'consumer' and redis.call('SCARD', ns .. ':exec:' .. ARGV[6]) == 0 then
  redis.call('SREM', ns .. ':consumers', ARGV[6])
end
return n
