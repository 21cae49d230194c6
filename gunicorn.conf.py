"""gunicorn configuration: the settings live in the package
(agent_registry.server.gunicorn_settings), so that `make run`, `gunicorn -c gunicorn.conf.py`
and `agent-registry serve` agree."""

from agent_registry.server.gunicorn_settings import *  # noqa: F403
