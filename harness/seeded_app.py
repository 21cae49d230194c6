"""The real app with its store pre-filled, for big-answer tests and benchmarks:
``gunicorn -c gunicorn.conf.py harness.seeded_app:app`` with ``HARNESS_SEED_AGENTS=100000``.

The app is the one ``agent_registry.server.wsgi`` builds, under the same gunicorn settings;
only its memory store starts with a fleet in it (written by each worker as it loads the app,
which is why this is a memory-store tool: a Redis store is seeded from outside, once, with
``harness.big_fleet.seed_redis``).
"""

from __future__ import annotations

import os

from agent_registry import create_app
from agent_registry.server.runtime import Runtime
from harness.big_fleet import SEED_ENV, parse_seed, seed_store

app = create_app()

_seed = os.environ.get(SEED_ENV)
if _seed:
    _runtime: Runtime = app.extensions["agent_registry"]
    seed_store(_runtime.registry.store, *parse_seed(_seed))
