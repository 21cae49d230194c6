"""Test and benchmark harness: fake clock, polling, real server processes. Not shipped.

``tests/`` and ``python -m bench`` both import it with the repository root on
``sys.path``; ``setup.cfg`` packages only ``agent_registry*``.

No port is ever found by binding port 0, closing the socket and hoping it is still free
when the server binds it later:

* gunicorn gets its listening socket from us: :func:`harness.sockets.listening_socket`
  binds and listens in this process, and the child inherits the descriptor
  (``subprocess.Popen(pass_fds=...)``) and serves on ``AGENT_REGISTRY_BIND=fd://N``, which
  gunicorn takes as an already bound socket (``gunicorn.sock.create_sockets``).
* redis-server cannot take a socket, so :class:`harness.redis_server.RedisServer` asks
  the kernel for a free port and, when redis-server exits because someone took it in
  between, retries on another one (a bind failure shows as the process exiting).

Which worker process holds a connection is read from the process state (``/proc``), never
from a server's log: :mod:`harness.procfs`.
"""
