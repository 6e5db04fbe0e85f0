-- Completes or fails attempts held by a consumer.
-- ARGV: ns, consumer, now, then per attempt: id, attempt, outcome
-- ('done', a retry time, 'dead', or 'z' and a time for a snooze: one
-- more retry allowed, no error kept), error entry (JSON, '' if none).
-- Returns the ids not held. Completions, the common case, are moved in
-- bulk per queue.
local consumer, now = ARGV[2], tonumber(ARGV[3])
local refused = {}
local done, done_by_queue = {}, {}
for i = 4, #ARGV, 4 do
  local id, outcome, entry = ARGV[i], ARGV[i + 2], ARGV[i + 3]
  local key = job_key(id)
  local f = redis.call('HMGET', key, 'state', 'node', 'attempt', 'queue')
  if f[1] == 'executing' and f[2] == consumer and f[3] == ARGV[i + 1] then
    if entry ~= '' then append_error(id, entry) end
    if outcome == 'done' then
      redis.call('HSET', key, 'state', 'completed', 'done', now)
      table.insert(done, id)
      local list = done_by_queue[f[4]]
      if not list then
        list = {}
        done_by_queue[f[4]] = list
      end
      table.insert(list, now)
      table.insert(list, id)
    elseif outcome == 'dead' then
      move(id, 'dead', now)
    elseif string.sub(outcome, 1, 1) == 'z' then
      redis.call('HINCRBY', key, 'max', 1)
      move(id, 'scheduled', tonumber(string.sub(outcome, 2)))
    else
      move(id, 'retryable', tonumber(outcome))
    end
  else
    table.insert(refused, id)
  end
end
if #done > 0 then
  bulk('ZREM', ns .. ':leases', done)
  bulk('SREM', ns .. ':exec:' .. consumer, done)
  for q, list in pairs(done_by_queue) do
    bulk('ZADD', queue_key(q, 'completed'), list, 2)
    redis.call('HINCRBY', ns .. ':counts:' .. q, 'executing', -(#list / 2))
  end
end
return refused
