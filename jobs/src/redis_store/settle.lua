-- Completes or fails attempts held by a consumer.
-- ARGV: ns, consumer, now, then per attempt: id, attempt, outcome
-- ('done', or a retry time, or 'dead'), error entry (JSON, '' if done).
-- Returns the ids not held.
local consumer, now = ARGV[2], tonumber(ARGV[3])
local refused = {}
for i = 4, #ARGV, 4 do
  local id, outcome, entry = ARGV[i], ARGV[i + 2], ARGV[i + 3]
  if held(id, consumer, ARGV[i + 1]) then
    if entry ~= '' then append_error(id, entry) end
    if outcome == 'done' then
      move(id, 'completed', now)
    elseif outcome == 'dead' then
      move(id, 'dead', now)
    else
      move(id, 'retryable', tonumber(outcome))
    end
    redis.call('HDEL', job_key(id), 'lease')
  else
    table.insert(refused, id)
  end
end
return refused
