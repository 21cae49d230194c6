"""The WSGI entry point gunicorn loads in each worker (after gevent patched it)."""

from agent_registry import create_app

app = create_app()
