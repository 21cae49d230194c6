"""A fleet of many agents written straight into a store, for tests and benchmarks of big
answers (``GET /api/v1/agents`` over 100 000 agents).

Registering 100 000 agents through the API costs minutes of one worker's CPU; these write the
same records in seconds, with the stores' own code: the memory store's ``register`` (in the
server process, through ``harness.seeded_app``), and the Redis store's registration script
with its own argument encoding, pipelined.

Agent ``n`` is ``agent-{n:06d}`` in group ``g{n % groups}``, LIVE, registered "now", with
two route ids and two capabilities: about 320 bytes of JSON each in a list (32 MB for
100 000; the fuzzing campaign that found the stall listed 25 MiB).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import redis

from agent_registry.core.models import Agent, AgentState
from agent_registry.core.ports import AgentStore
from agent_registry.redis.agents import REGISTER_SCRIPT, agent_key, register_args

# Read by harness.seeded_app in the server process: "COUNT" or "COUNT:GROUPS".
SEED_ENV = "HARNESS_SEED_AGENTS"
DEFAULT_GROUPS = 10
STALE_AFTER = 3600.0  # far enough for no sweep to touch them during a test


def agent_id(n: int) -> str:
    return f"agent-{n:06d}"


def fleet(count: int, groups: int = DEFAULT_GROUPS, now: float | None = None) -> Iterator[Agent]:
    """``count`` LIVE agents in id order (so a sorted index takes each one at its end)."""
    now = time.time() if now is None else now
    for n in range(count):
        yield Agent(
            id=agent_id(n),
            name=f"Service {n}",
            group=f"g{n % groups}",
            version="3.2.1",
            route_ids=["route-a", "route-b"],
            capabilities={"deep-trace": True, "replay": True},
            state=AgentState.LIVE,
            registered_at=now,
            last_heartbeat_at=now,
            state_changed_at=now,
            deadline=now + STALE_AFTER,
            generation=int(now * 1000),
        )


def seed_store(store: AgentStore, count: int, groups: int = DEFAULT_GROUPS) -> None:
    """Register the fleet in ``store`` directly (no log line, no metric per agent)."""
    for agent in fleet(count, groups):
        store.register(agent)


# The store's own registration script, called once per agent by a loop inside Redis: one
# round trip per batch instead of one per agent, which the client side would pay for in
# packing (seconds of CPU for 100 000). ARGV: first n, count, groups, agent key prefix,
# then the script's ARGV for a template agent; id, name and group are made here as
# ``fleet`` makes them.
_SEED_SCRIPT = """
local function register(KEYS, ARGV)
REGISTER_SCRIPT
end
local first, count, groups, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  ARGV[4]
local args = {}
for i = 5, #ARGV do args[i - 4] = ARGV[i] end
for n = first, first + count - 1 do
  args[1] = string.format('agent-%06d', n)
  args[2] = 'Service ' .. n
  args[3] = 'g' .. (n % groups)
  register({prefix .. args[1]}, args)
end
return count
""".replace("REGISTER_SCRIPT", REGISTER_SCRIPT.strip())


def seed_redis(
    client: redis.Redis, count: int, groups: int = DEFAULT_GROUPS, batch: int = 10_000
) -> None:
    """Register ``fleet(count, groups)`` with the Redis store's own script and encoding."""
    template = register_args(next(fleet(1, groups)))
    script = client.register_script(_SEED_SCRIPT)
    for first in range(0, count, batch):
        size = min(batch, count - first)
        script(args=[first, size, groups, agent_key(""), *template])


def parse_seed(value: str) -> tuple[int, int]:
    """``"COUNT"`` or ``"COUNT:GROUPS"`` (the value of ``SEED_ENV``)."""
    count, _, groups = value.partition(":")
    return int(count), int(groups) if groups else DEFAULT_GROUPS
