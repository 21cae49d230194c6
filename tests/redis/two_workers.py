"""Two started RedisBus "workers" on one Redis, in a gevent-patched process.

A gunicorn gevent worker runs the bus with the standard library monkey-patched. The pytest
process is not patched, so there a started subscriber would block the whole thread in
redis-py's socket reads. This script runs the scenario as a worker would and prints what
it observed as one JSON object (read by tests/redis/test_bus.py).

Usage: python -W error -m tests.redis.two_workers REDIS_URL
"""

# The patching must come before anything imports socket, threading or time.
# ruff: noqa: E402
from gevent import monkey

monkey.patch_all()

import gc
import json
import sys

import gevent

from agent_registry.core.models import Delivery
from agent_registry.redis.bus import CHANNEL, RedisBus
from agent_registry.redis.client import connect
from agent_registry.redis.commands import RedisCommandStore
from agent_registry.streams.hub import StreamHub
from harness.clock import FakeClock
from harness.wait import wait_until
from tests.redis.helpers import command


def running_greenlets() -> set[int]:
    """Spawned greenlets still running (gevent's own thread-pool workers are not counted:
    its resolver starts them on first use)."""
    return {
        id(obj) for obj in gc.get_objects() if isinstance(obj, gevent.Greenlet) and not obj.dead
    }


def worker(url: str, clock: FakeClock) -> tuple[RedisBus, StreamHub, RedisCommandStore]:
    client = connect(url)
    hub = StreamHub(8, clock=clock)
    store = RedisCommandStore(client)
    return RedisBus(client, hub, store, clock, refresh_every=0.5), hub, store


def main(url: str) -> dict[str, object]:
    clock = FakeClock()
    bus_a, _, store_a = worker(url, clock)
    bus_b, hub_b, _ = worker(url, clock)
    stream = hub_b.open("agent-b")
    before = running_greenlets()
    bus_a.start()
    bus_b.start()
    observer = connect(url)
    subscribed = wait_until(lambda: observer.pubsub_numsub(CHANNEL) == [(CHANNEL, 2)], 5.0)
    cmd = command("c1")
    store_a.add(cmd, [Delivery("agent-b")])
    bus_a.publish(cmd, ["agent-b"])
    arrived = wait_until(lambda: len(stream.queue) > 0, 5.0)
    queued = [stream.queue.get_nowait()[0] for _ in range(len(stream.queue))]
    bus_a.stop()
    bus_b.stop()
    leaked = len(running_greenlets() - before)
    unsubscribed = wait_until(lambda: observer.pubsub_numsub(CHANNEL) == [(CHANNEL, 0)], 5.0)
    hub_b.close(stream)
    return {
        "subscribed": subscribed,
        "arrived": bool(arrived),
        "queued": queued,
        "leaked_greenlets": leaked,
        "unsubscribed": unsubscribed,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
