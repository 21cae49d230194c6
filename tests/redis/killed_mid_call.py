"""A held connection's call killed midway leaves nothing for the next call, in a
gevent-patched process (as a gunicorn gevent worker runs it; the pytest process is not
patched, where a blocked read would block the whole thread). Prints one JSON object.

Usage: python -W error -m tests.redis.killed_mid_call REDIS_URL
"""

# The patching must come before anything imports socket, threading or time.
# ruff: noqa: E402
from gevent import monkey

monkey.patch_all()

import json
import sys

import gevent

from agent_registry.redis.client import connect
from agent_registry.redis.group_commit import HeldConnection
from harness.wait import wait_until


def main(url: str) -> None:
    client = connect(url)
    held = HeldConnection(client)
    held().ping()
    # A call whose reply comes later: BLPOP on an empty list (a slow script, in a flush).
    waiting = gevent.spawn(held().blpop, ["killed-mid-call"], 10)
    blocked = wait_until(lambda: client.info("clients")["blocked_clients"] == 1, 5)
    waiting.kill()  # as a worker stopping kills its flusher
    killed = isinstance(waiting.value, gevent.GreenletExit)  # not ended by its reply timeout
    # Redis has dropped the BLPOP once its connection is gone; were the connection kept as
    # it was, this would time out, and the BLPOP's reply would answer the next call.
    unblocked = wait_until(lambda: client.info("clients")["blocked_clients"] == 0, 5)
    client.rpush("killed-mid-call", "late")
    after = held().echo("after")
    left = client.llen("killed-mid-call")
    seen = {"blocked": bool(blocked), "killed": killed, "unblocked": bool(unblocked)}
    json.dump({**seen, "after": after, "left": left}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
