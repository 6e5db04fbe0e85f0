-- ARGV: ns, now, 'cancel' or 'retry', id. Returns the job's state
-- before (false when there is no such job).
local now, op, id = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local f = redis.call('HMGET', job_key(id), 'state', 'attempt', 'max')
local state = f[1]
if not state then return false end
if op == 'cancel' and not FINAL[state] then
  move(id, 'cancelled', now)
  redis.call('HDEL', job_key(id), 'lease')
elseif op == 'retry' and (state == 'retryable' or FINAL[state]) and state ~= 'completed' then
  redis.call('HSET', job_key(id), 'sched', now, 'max', math.max(tonumber(f[3]) or 0, tonumber(f[2]) or 0))
  redis.call('HDEL', job_key(id), 'done')
  move(id, 'available', now)
end
return state
