"""The gunicorn worker class: gunicorn's gevent worker serving HTTP with gevent's pywsgi.

gevent's HTTP server parses and answers a request for less CPU than gunicorn's own gevent
worker (docs/performance.md has the figures); it keeps an idle keep-alive connection open
for ever. That would hold a stopping worker until
``graceful_timeout`` and leave every agent a second connection between heartbeats, so
this handler closes a connection that sends no request within gunicorn's ``keepalive``
seconds, as gunicorn's own gevent worker does.
"""

from __future__ import annotations

from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

# Requests here are small (a heartbeat's head is about 100 bytes); pywsgi's default 8 KB
# read buffer per connection would stay allocated for the whole life of every stream.
_READ_BUFFER = 1024


class KeepAliveHandler(PyWSGIHandler):
    # Set from gunicorn's ``keepalive`` setting when the worker starts.
    idle_timeout: float = 2.0

    def __init__(self, sock: Any, address: Any, server: Any) -> None:
        # pywsgi takes ``rfile`` (its one way to size the read buffer); the stubs leave it out.
        rfile = sock.makefile("rb", _READ_BUFFER)
        super().__init__(sock, address, server, rfile=rfile)  # type: ignore[call-arg]

    def read_requestline(self) -> str:
        # Idle for too long: an empty request line makes pywsgi close the connection.
        line = ""
        # ``False``: gevent's documented silent expiry (the stubs leave it out). A context
        # manager, not gevent.with_timeout, which costs a microsecond more per request.
        with gevent.Timeout(self.idle_timeout, False):  # type: ignore[arg-type]
            line = super().read_requestline()
        return line

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        # The same key gunicorn's own gevent worker uses, so streams can watch the client.
        environ["gunicorn.socket"] = self.socket
        return environ


class Worker(GeventPyWSGIWorker):
    wsgi_handler = KeepAliveHandler

    def init_process(self) -> None:
        KeepAliveHandler.idle_timeout = float(self.cfg.keepalive or 2)
        super().init_process()
