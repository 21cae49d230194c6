"""Agents in Redis, shared by every worker and host.

Keys (``ar:`` prefix): ``agent:{id}`` hash; ``agents`` sorted set of all ids (score 0, so
ZRANGEBYLEX pages in code point order); ``state:{STATE}`` and ``group:{name}`` sets;
``agent-deadlines`` sorted set scored by the next lifecycle deadline, so a sweep reads
only what is due; ``dead-since`` sorted set of DEAD agents scored by when they went DEAD,
so a prune reads only what it removes; ``generation-floor``, the highest generation of a
deleted agent; ``last-sweep``, when the last lifecycle sweep (of any process) ran, and
``outages``, a short list of the recent gaps between sweeps (``"T0 T1"`` each, oldest
first; core/grace.py). Every write that must not race is one Lua script (atomic in Redis).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Collection, Iterator, Sequence

import redis

from ..core.agent_query import EVERY_AGENT, AgentQuery, ids_after, keyset_pages
from ..core.models import Agent, AgentState, HeartbeatOutcome, Outage, SweepNote
from .client import (
    REPLY_TIMEOUT,
    ReportsOutages,
    compact_json,
    guard_public_methods,
    num,
    outage_as_unavailable,
    text_hash,
    text_set,
    texts,
)
from .group_commit import GroupCommit, group_commit_if, held_connection_if, send_one

P = "ar:"
ALL_AGENTS = P + "agents"
DEADLINES = P + "agent-deadlines"
DEAD_SINCE = P + "dead-since"
DEAD = P + "state:DEAD"
LAST_SWEEP = P + "last-sweep"
OUTAGES = P + "outages"

# KEYS: agent hash. ARGV: id, name, group, version, routeIds, capabilities, now, deadline,
# generation, expected generation or ''. Returns {} when the expected generation is not the
# known one (nothing changes).
REGISTER_SCRIPT = """
local key, id = KEYS[1], ARGV[1]
local p = 'ar:'
local registered, changed = ARGV[7], ARGV[7]
local created = 1
local generation = tonumber(ARGV[9])
local old = redis.call(
  'HMGET', key, 'registeredAt', 'state', 'stateChangedAt', 'group', 'generation')
if ARGV[10] ~= '' and old[5] ~= ARGV[10] then return {} end
if old[1] then
  created = 0
  registered = old[1]
  generation = math.max(generation, tonumber(old[5] or '0') + 1)
  if old[2] == 'LIVE' then changed = old[3] end
  if old[2] == 'DEAD' then redis.call('ZREM', p .. 'dead-since', id) end
  redis.call('SREM', p .. 'state:' .. old[2], id)
  redis.call('SREM', p .. 'group:' .. old[4], id)
else
  -- A new id starts above every deleted agent's generation: their tokens stay refused.
  local floor = redis.call('GET', p .. 'generation-floor')
  if floor then generation = math.max(generation, tonumber(floor) + 1) end
end
redis.call('HSET', key, 'id', id, 'name', ARGV[2], 'group', ARGV[3], 'version', ARGV[4],
  'routeIds', ARGV[5], 'capabilities', ARGV[6], 'state', 'LIVE',
  'registeredAt', registered, 'lastHeartbeatAt', ARGV[7], 'stateChangedAt', changed,
  'deadline', ARGV[8], 'generation', string.format('%d', generation))
redis.call('HDEL', key, 'graceThrough')
redis.call('ZADD', p .. 'agents', 0, id)
redis.call('SADD', p .. 'state:LIVE', id)
redis.call('SADD', p .. 'group:' .. ARGV[3], id)
redis.call('ZADD', p .. 'agent-deadlines', ARGV[8], id)
return {created, registered, changed, string.format('%d', generation)}
"""

# Heartbeats, one or many (a group commit). ARGV[1]: a JSON array with, for each, [id,
# now, deadline, expected generation or ''] (all text): one argument for the batch, since
# redis-py's encoding of each argument cost more than the script; the agents' hashes are
# named here, as the state sets are. Returns one outcome per agent: 0 for an
# unknown agent, 2 when the generation is not the agent's, 1 when recorded, 3 when recorded
# and the agent was STALE or DEAD (revived). A heartbeat clears the grace mark (why:
# core/grace.py).
_HEARTBEATS = """
local outcomes = {}
for i, beat in ipairs(cjson.decode(ARGV[1])) do
  local id, now, deadline, expected = beat[1], beat[2], beat[3], beat[4]
  local key = 'ar:agent:' .. id
  local current = redis.call('HMGET', key, 'state', 'generation', 'graceThrough')
  local state = current[1]
  if not state then
    outcomes[i] = 0
  elseif expected ~= '' and current[2] ~= expected then
    outcomes[i] = 2
  else
    redis.call('HSET', key, 'lastHeartbeatAt', now, 'deadline', deadline)
    if current[3] then redis.call('HDEL', key, 'graceThrough') end
    outcomes[i] = 1
    if state ~= 'LIVE' then
      redis.call('HSET', key, 'state', 'LIVE', 'stateChangedAt', now)
      redis.call('SMOVE', 'ar:state:' .. state, 'ar:state:LIVE', id)
      if state == 'DEAD' then redis.call('ZREM', 'ar:dead-since', id) end
      outcomes[i] = 3
    end
    redis.call('ZADD', 'ar:agent-deadlines', deadline, id)
  end
end
return outcomes
"""

# KEYS: agent hash. ARGV: id, expected deadline, new state, changed at, next deadline or ''.
_TRANSITION = """
local key, id = KEYS[1], ARGV[1]
local current = redis.call('HMGET', key, 'deadline', 'state')
if current[1] ~= ARGV[2] then return 0 end
redis.call('HSET', key, 'state', ARGV[3], 'stateChangedAt', ARGV[4], 'deadline', ARGV[5])
redis.call('SMOVE', 'ar:state:' .. current[2], 'ar:state:' .. ARGV[3], id)
if ARGV[3] == 'DEAD' then redis.call('ZADD', 'ar:dead-since', ARGV[4], id) end
if ARGV[5] == '' then
  redis.call('ZREM', 'ar:agent-deadlines', id)
else
  redis.call('ZADD', 'ar:agent-deadlines', ARGV[5], id)
end
return 1
"""

# KEYS: agent hash. ARGV: id, expected deadline, deadline, grace through.
_POSTPONE = """
if redis.call('HGET', KEYS[1], 'deadline') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'deadline', ARGV[3], 'graceThrough', ARGV[4])
redis.call('ZADD', 'ar:agent-deadlines', ARGV[3], ARGV[1])
return 1
"""

# KEYS: last-sweep, outages. ARGV: now, outage after, keep, reply timeout. Returns
# {found (0|1), outages}. ``last-sweep`` is "time offset": the noted time, and how far
# Redis's clock was ahead of it, so that a note's lag (how much longer than usual it took to
# reach Redis) shows. A note that lagged behind a paused Redis (by more than a sweep
# interval, half of ``outage after``) is dated when it arrived: its caller's sweep began
# before the pause ended. One that lagged more than the reply timeout
# is ignored: its caller gave up on it, so it would find the outage for nobody.
_NOTE_SWEEP = """
local now, text = tonumber(ARGV[1]), ARGV[1]
local time = redis.call('TIME')
local clock = tonumber(time[1]) + tonumber(time[2]) / 1e6
local last = redis.call('GET', KEYS[1])
local noted, previous, lag = nil, nil, 0
if last then
  local offset
  noted, offset = string.match(last, '^(%S+) (%S+)$')
  previous = tonumber(noted)
  lag = clock - now - tonumber(offset)
end
local found = 0
if lag <= tonumber(ARGV[4]) then
  if lag > tonumber(ARGV[2]) / 2 then
    now = now + lag
    text = string.format('%.17g', now)
  end
  if not previous or now > previous then
    redis.call('SET', KEYS[1], text .. ' ' .. string.format('%.17g', clock - now))
  end
  if previous and now - previous > tonumber(ARGV[2]) then
    redis.call('RPUSH', KEYS[2], noted .. ' ' .. text)
    redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
    found = 1
  end
end
return {found, redis.call('LRANGE', KEYS[2], 0, -1)}
"""

# KEYS: outages. ARGV: ended by. Drops the oldest outages while they ended by then.
_FORGET_OUTAGES = """
local by = tonumber(ARGV[1])
while true do
  local first = redis.call('LINDEX', KEYS[1], 0)
  if not first or tonumber(string.match(first, ' (.+)$')) > by then return 0 end
  redis.call('LPOP', KEYS[1])
end
"""

# KEYS: agent hash. ARGV: id, dead-before or ''. Removes the agent from every key (with
# dead-before: only if DEAD since then at the latest) and answers its fields, or {}. An
# index entry of an agent that does not qualify (revived, or gone) is dropped, so a prune
# always gets on with the next ones.
_DELETE = """
local key, id = KEYS[1], ARGV[1]
local p = 'ar:'
local fields = redis.call('HGETALL', key)
if #fields == 0 then
  redis.call('ZREM', p .. 'dead-since', id)
  return {}
end
local agent = {}
for i = 1, #fields, 2 do agent[fields[i]] = fields[i + 1] end
if ARGV[2] ~= '' and (agent['state'] ~= 'DEAD'
    or tonumber(agent['stateChangedAt']) > tonumber(ARGV[2])) then
  if agent['state'] ~= 'DEAD' then redis.call('ZREM', p .. 'dead-since', id) end
  return {}
end
redis.call('DEL', key)
redis.call('ZREM', p .. 'agents', id)
redis.call('SREM', p .. 'state:' .. agent['state'], id)
redis.call('SREM', p .. 'group:' .. agent['group'], id)
redis.call('ZREM', p .. 'agent-deadlines', id)
redis.call('ZREM', p .. 'dead-since', id)
local generation = tonumber(agent['generation'] or '0')
local floor = tonumber(redis.call('GET', p .. 'generation-floor') or '0')
if generation > floor then
  redis.call('SET', p .. 'generation-floor', string.format('%d', generation))
end
return fields
"""

# Index the DEAD agents that went DEAD before ``dead-since`` existed (data written by an
# older version). One pass over the DEAD set, made once per process when the two differ.
_INDEX_DEAD = """
local added = 0
for _, id in ipairs(redis.call('SMEMBERS', 'ar:state:DEAD')) do
  local changed = redis.call('HGET', 'ar:agent:' .. id, 'stateChangedAt')
  if changed then added = added + redis.call('ZADD', 'ar:dead-since', 'NX', changed, id) end
end
return added
"""

# One heartbeat as the script takes it: id, now, deadline, expected generation or ''.
_Heartbeat = tuple[str, str, str, str]

_HEARTBEAT_OUTCOMES = (
    HeartbeatOutcome.UNKNOWN,
    HeartbeatOutcome.RECORDED,
    HeartbeatOutcome.SUPERSEDED,
    HeartbeatOutcome.REVIVED,
)


def agent_key(agent_id: str) -> str:
    return f"{P}agent:{agent_id}"


def _decode(fields: dict[str, str]) -> Agent | None:
    if not fields:
        return None
    return Agent(
        id=fields["id"],
        name=fields["name"],
        group=fields["group"],
        version=json.loads(fields["version"]),
        route_ids=json.loads(fields["routeIds"]),
        capabilities=json.loads(fields["capabilities"]),
        state=AgentState(fields["state"]),
        registered_at=float(fields["registeredAt"]),
        last_heartbeat_at=float(fields["lastHeartbeatAt"]),
        state_changed_at=float(fields["stateChangedAt"]),
        deadline=float(fields["deadline"]) if fields["deadline"] else None,
        generation=int(fields.get("generation", 0)),
        grace_through=float(fields["graceThrough"]) if fields.get("graceThrough") else None,
    )


def _outage(entry: str) -> Outage:
    started, ended = entry.split(" ")
    return Outage(float(started), float(ended))


def register_args(agent: Agent, expected_generation: int | None = None) -> list[str | int]:
    """ARGV of ``REGISTER_SCRIPT`` for ``agent``: the store's encoding of an agent (tools that
    seed a store in bulk pipeline the script with these)."""
    assert agent.deadline is not None
    return [
        agent.id,
        agent.name,
        agent.group,
        json.dumps(agent.version),
        compact_json(agent.route_ids),
        compact_json(agent.capabilities),
        num(agent.registered_at),
        num(agent.deadline),
        agent.generation,
        "" if expected_generation is None else expected_generation,
    ]


@guard_public_methods
class RedisAgentStore(ReportsOutages):
    _PAGE = 500

    def __init__(self, client: redis.Redis, group_commit: bool = False) -> None:
        """``group_commit``: heartbeats (and generation checks) from concurrent greenlets
        share one Redis call (``group_commit.py``); for a gevent worker, where every
        request is a greenlet."""
        self._redis = client
        self._register = client.register_script(REGISTER_SCRIPT)
        self._heartbeats = client.register_script(_HEARTBEATS)
        self.heartbeat_batches: GroupCommit[_Heartbeat, int] | None = group_commit_if(
            group_commit, self._record_heartbeats
        )
        self._heartbeat_connection = held_connection_if(group_commit, client)
        # An agent token's check on every ack (``Registry.check_generation``).
        self.generation_batches: GroupCommit[str, int | None] | None = group_commit_if(
            group_commit, self._generations
        )
        self._transition = client.register_script(_TRANSITION)
        self._delete = client.register_script(_DELETE)
        self._index_dead = client.register_script(_INDEX_DEAD)
        self._postpone = client.register_script(_POSTPONE)
        self._note_sweep = client.register_script(_NOTE_SWEEP)
        self._forget_outages = client.register_script(_FORGET_OUTAGES)
        self._dead_indexed = False

    def register(
        self, agent: Agent, expected_generation: int | None = None
    ) -> tuple[Agent, bool] | None:
        stored = self._register(
            keys=[agent_key(agent.id)], args=register_args(agent, expected_generation)
        )
        if not stored:
            return None
        created, registered, changed, generation = stored
        agent.registered_at = float(registered)
        agent.state_changed_at = float(changed)
        agent.generation = int(generation)
        return agent, bool(created)

    def heartbeat(
        self, agent_id: str, now: float, deadline: float, generation: int | None = None
    ) -> HeartbeatOutcome:
        heartbeat = (
            agent_id,
            num(now),
            num(deadline),
            "" if generation is None else str(generation),
        )
        outcome = send_one(self.heartbeat_batches, self._record_heartbeats, heartbeat)
        return _HEARTBEAT_OUTCOMES[outcome]

    def _record_heartbeats(self, heartbeats: builtins.list[_Heartbeat]) -> builtins.list[int]:
        outcomes = self._heartbeats([], [compact_json(heartbeats)], self._heartbeat_connection())
        return [int(outcome) for outcome in outcomes]

    def get(self, agent_id: str) -> Agent | None:
        return _decode(text_hash(self._redis.hgetall(agent_key(agent_id))))

    def generation(self, agent_id: str) -> int | None:
        return send_one(self.generation_batches, self._generations, agent_id)

    def _generations(self, agent_ids: builtins.list[str]) -> builtins.list[int | None]:
        pipe = self._redis.pipeline(transaction=False)
        for agent_id in agent_ids:
            pipe.hget(agent_key(agent_id), "generation")
        return [None if value is None else int(value) for value in pipe.execute()]

    def get_many(self, agent_ids: Sequence[str]) -> list[Agent | None]:
        pipe = self._redis.pipeline(transaction=False)
        for agent_id in agent_ids:
            pipe.hgetall(agent_key(agent_id))
        return [_decode(fields) for fields in pipe.execute()]

    def list(self, query: AgentQuery = EVERY_AGENT) -> list[Agent]:
        return [agent for page in self.pages(query, size=self._PAGE) for agent in page]

    def pages(self, query: AgentQuery, *, size: int = _PAGE) -> Iterator[builtins.list[Agent]]:
        return keyset_pages(query, size, self._ids_after_for(query), self.get_many)

    def _ids_after_for(self, query: AgentQuery) -> Callable[[str | None, int], builtins.list[str]]:
        """How the pages find their ids: a filter's candidates, read from the state and
        group sets at the first page (unless it keeps most of the fleet, see _candidates);
        without one, or then, the id index."""
        candidates: builtins.list[str] | None = None
        read = False

        def ids(cursor: str | None, count: int) -> builtins.list[str]:
            nonlocal candidates, read
            if not read:  # nothing is read before the first page is asked for
                candidates, read = self._candidates(query.states, query.group), True
            if candidates is None:
                return self._ids_after(cursor, count)
            return ids_after(candidates, cursor, count)

        return ids

    @outage_as_unavailable
    def _candidates(
        self, states: Collection[AgentState] | None, group: str | None
    ) -> builtins.list[str] | None:
        """Ids that may match the filter, sorted; None to walk the id index instead.

        A filter that may keep at least half of the fleet (by the sets' sizes, O(1) each)
        walks the index: it reads few agents it drops, and sorts nothing (sorting 100 000
        ids at once would hold the worker for tens of milliseconds).
        """
        if not states and group is None:
            return None
        state_keys = [f"{P}state:{state}" for state in states or ()]
        group_key = f"{P}group:{group}"
        pipe = self._redis.pipeline(transaction=False)
        pipe.zcard(ALL_AGENTS)
        for key in state_keys:
            pipe.scard(key)
        if group is not None:
            pipe.scard(group_key)
        total, *sizes = (int(size) for size in pipe.execute())
        most = min(
            sum(sizes[: len(state_keys)]) if state_keys else total,
            sizes[-1] if group is not None else total,
        )
        if 2 * most >= total:
            return None
        pipe = self._redis.pipeline(transaction=False)
        if group is None:
            for key in state_keys:
                pipe.smembers(key)
        elif not state_keys:
            pipe.smembers(group_key)
        else:
            for key in state_keys:
                pipe.sinter([group_key, key])
        found: set[str] = set()
        for members in pipe.execute():
            found.update(text_set(members))
        return sorted(found)

    @outage_as_unavailable
    def _ids_after(self, cursor: str | None, count: int) -> builtins.list[str]:
        start = f"({cursor}" if cursor is not None else "-"
        return texts(self._redis.zrangebylex(ALL_AGENTS, start, "+", start=0, num=count))

    def live_ids(self, group: str | None = None) -> builtins.list[str]:
        live = f"{P}state:{AgentState.LIVE}"
        if group is None:
            return sorted(text_set(self._redis.smembers(live)))
        return sorted(text_set(self._redis.sinter([live, f"{P}group:{group}"])))

    def due(self, now: float, limit: int) -> builtins.list[Agent]:
        ids = texts(self._redis.zrangebyscore(DEADLINES, "-inf", num(now), start=0, num=limit))
        return [agent for agent in self.get_many(ids) if agent is not None]

    def counts(self) -> dict[AgentState, int]:
        # The scripts move each id between the state sets; SCARD is O(1). MULTI makes the
        # three one snapshot, so an agent moving meanwhile is counted once.
        pipe = self._redis.pipeline(transaction=True)
        for state in AgentState:
            pipe.scard(f"{P}state:{state}")
        sizes = pipe.execute()
        return {state: int(size) for state, size in zip(AgentState, sizes, strict=True)}

    def transition(
        self,
        agent_id: str,
        expected_deadline: float,
        new_state: AgentState,
        changed_at: float,
        next_deadline: float | None,
    ) -> bool:
        return bool(
            self._transition(
                keys=[agent_key(agent_id)],
                args=[
                    agent_id,
                    num(expected_deadline),
                    new_state.value,
                    num(changed_at),
                    "" if next_deadline is None else num(next_deadline),
                ],
            )
        )

    def postpone(
        self, agent_id: str, expected_deadline: float, deadline: float, grace_through: float
    ) -> bool:
        return bool(
            self._postpone(
                keys=[agent_key(agent_id)],
                args=[agent_id, num(expected_deadline), num(deadline), num(grace_through)],
            )
        )

    def note_sweep(self, now: float, outage_after: float, keep: int) -> SweepNote:
        found, entries = self._note_sweep(
            keys=[LAST_SWEEP, OUTAGES],
            args=[num(now), num(outage_after), keep, num(REPLY_TIMEOUT)],
        )
        recent = [_outage(entry) for entry in entries]
        return SweepNote(recent[-1] if found else None, recent)

    def forget_outages(self, ended_by: float) -> None:
        self._forget_outages(keys=[OUTAGES], args=[num(ended_by)])

    def delete(self, agent_id: str, dead_before: float | None = None) -> Agent | None:
        fields = self._delete(
            keys=[agent_key(agent_id)],
            args=[agent_id, "" if dead_before is None else num(dead_before)],
        )
        return _decode(dict(zip(fields[::2], fields[1::2], strict=True)))

    def dead(self, before: float, limit: int) -> builtins.list[str]:
        if not self._dead_indexed:
            self._index_legacy_dead()
        return texts(self._redis.zrangebyscore(DEAD_SINCE, "-inf", num(before), 0, limit))

    def _index_legacy_dead(self) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.zcard(DEAD_SINCE)
        pipe.scard(DEAD)
        indexed, dead = pipe.execute()
        if int(indexed) < int(dead):
            self._index_dead()
        self._dead_indexed = True
