"""The Lua side of commands and rollouts in Redis: each script is one atomic step.

A rollout's progress lives beside its command (``ar:`` prefix): ``cmd:{id}:u`` the unsent
targets in id order (a list), ``cmd:{id}:f`` its deliveries in flight scored by deadline
(their count is the window's use, their earliest deadline the command's next expiry),
``cmd:{id}:w`` the freed slots waiting out the batch interval, scored by when each may be
used again; the command hash holds the plan (``window``, ``maxFailures`` (-1: none),
``interval``, ``expiry``) and the counters (``failures``, ``occupied``: in flight right
after the last claim, ``lastSentAt``); ``rollouts-due`` scores each rollout by when a claim
is due (0: at once). The rules are core/rollout.py's (an ack's, core/acknowledgement.py's);
the memory store calls them, these scripts restate them, and tests/stores pins that both
agree.

Times that are stored are passed in as Python's ``repr`` or formatted with 17 significant
digits, so that they read back as the very float Python computed (Lua's own ``tostring``
and cjson keep 14).
"""

from __future__ import annotations

# A delivery as Python's ``_encode_delivery`` writes it, from texts: the times' exact text
# (cjson would round them to 14 digits), the result's JSON, and ``sent``, the sentAt JSON
# value to keep ('null' or nil: none), which ``sent_of`` reads from a delivery not final as
# stored. Such a delivery has no result (whose details could hold keys of any name), so the
# pattern meets only its own ``sentAt``.
DELIVERY_JSON = """
local function sent_of(current) return string.match(current, '"sentAt":([^,}]+)') or 'null' end

local function delivery_json(status, delivered_at, acknowledged_at, result, sent)
  return '{"status":"' .. status .. '","deliveredAt":' .. delivered_at
    .. ',"acknowledgedAt":' .. acknowledged_at .. ',"result":' .. result
    .. ((sent == nil or sent == 'null') and '' or ',"sentAt":' .. sent) .. '}'
end
"""

# Functions every script below starts with. KEYS are passed to them by name.
_PRELUDE = (
    DELIVERY_JSON
    + """
local DUE, EXPIRIES, PURGES = 'ar:rollouts-due', 'ar:cmd-expiries', 'ar:cmd-purges'

local function exact(number) return string.format('%.17g', number) end

-- These deliveries of the command became final (``failures`` of them FAILED or EXPIRED):
-- a rollout's leave its window and make it due for a claim; the last one schedules the
-- purge.
local function closed(cid, command_key, in_flight_key, agents, failures, retain_until)
  local rollout = redis.call('HEXISTS', command_key, 'window') == 1
  if rollout then
    for _, agent in ipairs(agents) do redis.call('ZREM', in_flight_key, agent) end
    if failures > 0 then redis.call('HINCRBY', command_key, 'failures', failures) end
  end
  if redis.call('HINCRBY', command_key, 'open', -#agents) == 0 then
    redis.call('ZREM', EXPIRIES, cid)
    redis.call('ZREM', DUE, cid)
    redis.call('ZADD', PURGES, retain_until, cid)
  elseif rollout then
    redis.call('ZADD', DUE, 0, cid)
  end
end

-- Nothing more of the rollout will be sent: it expires with the last delivery it sent.
local function sent_all(command_key, unsent_key)
  redis.call('DEL', unsent_key)
  if redis.call('HGET', command_key, 'expiresAt') == '' then
    local last = redis.call('HGET', command_key, 'lastSentAt')
    if last then
      local expiry = tonumber(redis.call('HGET', command_key, 'expiry'))
      redis.call('HSET', command_key, 'expiresAt', exact(tonumber(last) + expiry))
    end
  end
end

-- Each listed delivery that is not final becomes CANCELLED (``unsent_only``: those not
-- sent yet); answers agent id, new JSON, ... for those changed.
local function cancel(deliveries_key, agents, unsent_only)
  local changed = {}
  for _, agent in ipairs(agents) do
    local current = redis.call('HGET', deliveries_key, agent)
    if current then
      local delivery = cjson.decode(current)
      local status = delivery['status']
      local unsent = delivery['sentAt'] == nil or delivery['sentAt'] == cjson.null
      if (status == 'PENDING' or status == 'DELIVERED') and (unsent or not unsent_only) then
        delivery['status'] = 'CANCELLED'
        local encoded = cjson.encode(delivery)
        redis.call('HSET', deliveries_key, agent, encoded)
        changed[#changed + 1] = agent
        changed[#changed + 1] = encoded
      end
    end
  end
  return changed
end

local function agents_of(changed)
  local agents = {}
  for i = 1, #changed, 2 do agents[#agents + 1] = changed[i] end
  return agents
end
"""
)

# Compare-and-set of deliveries, any number in one call (the expiry sweep sends one at a
# time; acks have their own script, ACKNOWLEDGE). Per delivery,
# KEYS: command hash, deliveries hash, in-flight set; ARGV: command id, agent id, expected
# status, new delivery JSON, 1 if this change makes the delivery final, retain-until, new
# status. Answers 1 (replaced) or 0 (not in the expected status, or gone) per delivery,
# each decided as if it had been sent alone, in order.
REPLACE_DELIVERIES = (
    _PRELUDE
    + """
local replaced = {}
for i = 0, #KEYS / 3 - 1 do
  local k, a = i * 3, i * 7
  local agent = ARGV[a + 2]
  local current = redis.call('HGET', KEYS[k + 2], agent)
  if current and cjson.decode(current)['status'] == ARGV[a + 3] then
    redis.call('HSET', KEYS[k + 2], agent, ARGV[a + 4])
    if ARGV[a + 5] == '1' then
      local failed = (ARGV[a + 7] == 'FAILED' or ARGV[a + 7] == 'EXPIRED') and 1 or 0
      closed(ARGV[a + 1], KEYS[k + 1], KEYS[k + 3], {agent}, failed, ARGV[a + 6])
    end
    replaced[i + 1] = 1
  else
    replaced[i + 1] = 0
  end
end
return replaced
"""
)

# Agents' acks, any number in one call (core/acknowledgement.py's rules, restated). Per
# command of the batch, KEYS: command hash, deliveries hash, in-flight set. ARGV[1]: the
# acks as one JSON array (one argument, not six per ack: redis-py's encoding of each
# argument was the largest part of a batch's cost in the worker), each [k, command id,
# agent id, wanted status, now (its exact text, which is also the acknowledgedAt JSON),
# result (JSON text, as the delivery stores it), retain-until], k the command's number in
# the batch (1, 2, ...), whose keys are KEYS[3k-2..3k]. Answers {verdict, found, n, ...}
# with n the command's place in the second answer, each command's HGETALL once (n is 0 for
# 'none': no such command or delivery). ``found`` is the delivery's JSON as found ('' when
# none), but for 'recorded' its deliveredAt and sentAt texts, space-separated (JSON
# values): the rest of a recorded delivery is the ack's, and decoding the JSON it replaced
# was most of what the worker spent on an ack's answer. Each ack is judged as if it had
# been sent alone, in order.
ACKNOWLEDGE = (
    _PRELUDE
    + """
-- ``current``: the delivery's JSON, PENDING or DELIVERED (so no result, whose details could
-- hold a "sentAt" of their own). Its sentAt is text (exact), or null.
local function deadline_of(fields, current)
  if fields['window'] == nil then
    if fields['expiresAt'] == '' then return nil end
    return tonumber(fields['expiresAt'])
  end
  local sent = string.match(current, '"sentAt":"([^"]+)"')
  if sent == nil then return nil end
  return tonumber(sent) + tonumber(fields['expiry'])
end

local answers, commands, fields_of, place_of = {}, {}, {}, {}
-- What the recorded acks closed, by the command's place: one closed() per command, not per
-- ack; the verdicts read neither the counts nor the indexes it updates.
local closing = {}
for _, ack in ipairs(cjson.decode(ARGV[1])) do
  local k = (ack[1] - 1) * 3
  local cid, agent, wanted, now, result, retain_until =
    ack[2], ack[3], ack[4], ack[5], ack[6], ack[7]
  local command_key = KEYS[k + 1]
  local place = place_of[command_key]
  if place == nil then
    place = 0
    local flat = redis.call('HGETALL', command_key)
    if #flat > 0 then
      local fields = {}
      for j = 1, #flat, 2 do fields[flat[j]] = flat[j + 1] end
      commands[#commands + 1] = flat
      place = #commands
      fields_of[place] = fields
    end
    place_of[command_key] = place
  end
  local current = place > 0 and redis.call('HGET', KEYS[k + 2], agent)
  local verdict, found = 'none', current or ''
  if current then
    -- Read as text, not decoded (cjson cost a decode per ack): the first "status" is the
    -- delivery's own. A delivery with a result was written by Python or by this script,
    -- status first; one without has no other "status".
    local status = string.match(current, '"status":"(%u+)"')
    if status == wanted then
      verdict = 'repeated'
    elseif status == 'ACKNOWLEDGED' or status == 'FAILED' then
      verdict = 'already'
    elseif status == 'CANCELLED' then
      verdict = 'cancelled'
    elseif status == 'EXPIRED' then
      verdict = 'expired'
    elseif (deadline_of(fields_of[place], current) or math.huge) <= tonumber(now) then
      verdict = 'expired'
    else
      verdict = 'recorded'
      local delivered_at = string.match(current, '"deliveredAt":([^,}]+)')
      local sent = sent_of(current)
      redis.call('HSET', KEYS[k + 2], agent,
                 delivery_json(wanted, delivered_at, now, result, sent))
      found = delivered_at .. ' ' .. sent
      local c = closing[place]
      if c == nil then
        c = {cid = cid, key = command_key, in_flight = KEYS[k + 3], agents = {},
             failures = 0}
        closing[place] = c
      end
      c.agents[#c.agents + 1] = agent
      if wanted == 'FAILED' then c.failures = c.failures + 1 end
      c.retain_until = retain_until
    end
  end
  answers[#answers + 1] = verdict
  answers[#answers + 1] = found
  answers[#answers + 1] = current and place or 0
end
for place = 1, #commands do
  local c = closing[place]
  if c then closed(c.cid, c.key, c.in_flight, c.agents, c.failures, c.retain_until) end
end
return {answers, commands}
"""
)

# KEYS: command hash, deliveries hash, in-flight set, unsent list. ARGV: command id,
# retain-until, 1 to halt the command (it is cancelled), then agent ids.
CANCEL = (
    _PRELUDE
    + """
local agents = {}
for i = 4, #ARGV do agents[#agents + 1] = ARGV[i] end
local changed = cancel(KEYS[2], agents, false)
if #changed > 0 then
  if ARGV[3] == '1' then
    redis.call('HSETNX', KEYS[1], 'halted', 'CANCELLED')
    if redis.call('HEXISTS', KEYS[1], 'window') == 1 then sent_all(KEYS[1], KEYS[4]) end
  end
  closed(ARGV[1], KEYS[1], KEYS[3], agents_of(changed), 0, ARGV[2])
end
return changed
"""
)

# KEYS: in-flight set. ARGV: command id. The expiry sweep is done with the command: index
# it again at its earliest deadline in flight, or not at all.
EXPIRY_DONE = """
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[1] then
  redis.call('ZADD', 'ar:cmd-expiries', first[2], ARGV[1])
else
  redis.call('ZREM', 'ar:cmd-expiries', ARGV[1])
end
"""

# KEYS: command hash, deliveries hash, in-flight set, unsent list, cooling set.
# ARGV: command id, now, retain-until.
# Answers {'sent', agent ids...}, {'stopped', agent id, delivery JSON, ...}, {'idle'} or
# {'gone'} (no such command).
CLAIM = (
    _PRELUDE
    + """
local cid, now_text = ARGV[1], ARGV[2]
local now = tonumber(now_text)
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone'} end
local plan = redis.call('HMGET', KEYS[1], 'window', 'maxFailures', 'interval', 'expiry',
                        'halted', 'failures', 'occupied')
if not plan[1] or plan[5] then
  redis.call('ZREM', DUE, cid)
  return {'idle'}
end
local window, max_failures = tonumber(plan[1]), tonumber(plan[2])
local interval, expiry = tonumber(plan[3]), tonumber(plan[4])
local failures, occupied = tonumber(plan[6] or '0'), tonumber(plan[7] or '0')

-- The failure limit: the unsent targets are CANCELLED, the command STOPPED.
if max_failures >= 0 and failures > max_failures then
  local changed = cancel(KEYS[2], redis.call('LRANGE', KEYS[4], 0, -1), true)
  sent_all(KEYS[1], KEYS[4])
  if #changed > 0 then
    redis.call('HSETNX', KEYS[1], 'halted', 'STOPPED')
    closed(cid, KEYS[1], KEYS[3], agents_of(changed), 0, ARGV[3])
    redis.call('ZREM', DUE, cid)
    local answer = {'stopped'}
    for _, item in ipairs(changed) do answer[#answer + 1] = item end
    return answer
  end
end

-- The room in the window: slots freed since the last claim wait out the interval.
local in_flight = redis.call('ZCARD', KEYS[3])
local freed = math.max(0, occupied - in_flight)
if interval > 0 and freed > 0 then
  local seq = redis.call('HINCRBY', KEYS[1], 'slotSeq', freed)
  for i = 1, freed do redis.call('ZADD', KEYS[5], exact(now + interval), 's' .. (seq - i)) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now_text)
local room = window - in_flight - redis.call('ZCARD', KEYS[5])

local answer = {'sent'}
local deadline = exact(now + expiry)
while room > 0 do
  local agent = redis.call('LPOP', KEYS[4])
  if not agent then break end
  local current = redis.call('HGET', KEYS[2], agent)
  if current then
    local delivery = cjson.decode(current)
    if delivery['status'] == 'PENDING' then  -- else final before its turn: skipped
      delivery['sentAt'] = now_text
      redis.call('HSET', KEYS[2], agent, cjson.encode(delivery))
      redis.call('ZADD', KEYS[3], deadline, agent)
      answer[#answer + 1] = agent
      room = room - 1
    end
  end
end

in_flight = redis.call('ZCARD', KEYS[3])
redis.call('HSET', KEYS[1], 'occupied', in_flight)
if #answer > 1 then
  local last = redis.call('HGET', KEYS[1], 'lastSentAt')
  if not last or tonumber(last) < now then redis.call('HSET', KEYS[1], 'lastSentAt', now_text) end
end
if in_flight > 0 then
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  redis.call('ZADD', EXPIRIES, 'LT', first[2], cid)
end
local next_slot = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
if redis.call('LLEN', KEYS[4]) == 0 then
  sent_all(KEYS[1], KEYS[4])
  redis.call('ZREM', DUE, cid)
elseif next_slot[1] then
  redis.call('ZADD', DUE, next_slot[2], cid)
else
  redis.call('ZREM', DUE, cid)
end
return answer
"""
)
