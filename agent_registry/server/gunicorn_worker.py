"""The gunicorn worker class: gunicorn's gevent worker serving HTTP with gevent's pywsgi.

gevent's HTTP server parses and answers a request for less CPU than gunicorn's own gevent
worker (docs/performance.md has the figures). This handler adds what pywsgi leaves out:

- **Idle keep-alive connections close.** pywsgi keeps one open for ever; here a connection
  that sends no request within gunicorn's ``keepalive`` seconds is closed, as gunicorn's
  own gevent worker does.
- **A stopping worker lets go of its connections.** From ``SIGTERM`` on, every answer
  carries ``Connection: close``, a connection waiting between two requests is closed at
  once, and a new one gets half a second for its first request. A client that reuses its
  connection every 100 ms would otherwise hold the worker until ``graceful_timeout``.
- **The HTTP layer's own refusals are the JSON error shape.** pywsgi answers a request it
  cannot parse before the app runs, with an empty body: ``414`` for a request line over
  8 KiB, ``400`` for a malformed ``Content-Length``, request line or chunked body. Here
  those are ``414 URI_TOO_LONG`` and ``400 BAD_REQUEST`` from the one error table
  (``web/errors.py``), and header fields are read within gunicorn's
  ``limit_request_fields`` and ``limit_request_field_size`` (which pywsgi ignores),
  beyond which the answer is ``431 HEADERS_TOO_LARGE``. gunicorn's own
  ``Worker.handle_error`` does this mapping for gunicorn's parser, which this worker
  does not use.
- **Connections spread by load.** Of the workers woken for a new connection, the one
  holding fewer connections accepts it (``BalancedServer``).
"""

from __future__ import annotations

import contextlib
import email.parser
import json
import logging
import socket
from http import HTTPStatus
from typing import Any

import gevent
from gevent import pywsgi
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler, PyWSGIServer

from agent_registry.errors import BadRequest, HeadersTooLarge, RegistryError, UriTooLong

log = logging.getLogger(__name__)

# Requests here are small (a heartbeat's head is about 100 bytes); pywsgi's default 8 KB
# read buffer per connection would stay allocated for the whole life of every stream.
_READ_BUFFER = 1024
# While the worker stops, a connection that has not sent its first request yet gets this
# long to send it; one between two requests is closed at once.
FIRST_REQUEST_GRACE = 0.5
# gunicorn's limit settings: 0 means "no limit" there; these are the most we then read.
_MOST_FIELDS = 32_768
_MOST_FIELD_SIZE = 65_536
# After a refusal, what the client still sends is read and dropped, this much at most.
LINGER_SECONDS = 1.0
LINGER_BYTES = 1 << 20
# With several workers, one with 1 000 connections waits 2 ms before it accepts one, one
# with 10 000 or more 20 ms; after a wake-up that found two queued, none for 0.1 s.
ACCEPT_DELAY_PER_CONNECTION = 2e-6
MAX_ACCEPT_DELAY = 0.02
BURST_SECONDS = 0.1
_InvalidClientRequest: type[ValueError] = pywsgi._InvalidClientRequest  # type: ignore[attr-defined]


class Drain:
    """One worker process's shutdown: whether it has begun, and the connections that are
    waiting for a request (the only ones that can be closed without cutting an answer)."""

    def __init__(self) -> None:
        self.active = False
        self.waiting: set[KeepAliveHandler] = set()

    def start(self) -> None:
        self.active = True
        for handler in list(self.waiting):
            if handler.answered:
                handler.hang_up()
            else:
                gevent.spawn_later(FIRST_REQUEST_GRACE, self._hang_up_if_waiting, handler)

    def _hang_up_if_waiting(self, handler: KeepAliveHandler) -> None:
        if handler in self.waiting:
            handler.hang_up()


class KeepAliveHandler(PyWSGIHandler):
    # Set from gunicorn's settings when the worker starts (one worker per process).
    idle_timeout: float = 2.0
    max_fields: int = 100
    max_field_size: int = 8190
    drain: Drain = Drain()

    def __init__(self, sock: Any, address: Any, server: Any) -> None:
        # pywsgi takes ``rfile`` (its one way to size the read buffer); the stubs leave it out.
        rfile = sock.makefile("rb", _READ_BUFFER)
        super().__init__(sock, address, server, rfile=rfile)  # type: ignore[call-arg]

    @property
    def answered(self) -> bool:
        """Whether this connection has carried a request (pywsgi keeps the last line)."""
        return self.requestline is not None

    def read_requestline(self) -> str:
        drain = self.drain
        if drain.active and self.answered:
            return ""  # stopping: no next request on this connection
        # Idle for too long: an empty request line makes pywsgi close the connection.
        timeout = min(self.idle_timeout, FIRST_REQUEST_GRACE) if drain.active else self.idle_timeout
        line = ""
        drain.waiting.add(self)
        try:
            # ``False``: gevent's documented silent expiry (the stubs leave it out). A context
            # manager, not gevent.with_timeout, which costs a microsecond more per request.
            with gevent.Timeout(timeout, False):  # type: ignore[arg-type]
                line = super().read_requestline()
        finally:
            drain.waiting.discard(self)
        return line

    def hang_up(self) -> None:
        """End a connection that waits for a request: its read sees end-of-file."""
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RD)

    def MessageClass(self, fp: Any, *args: Any) -> Any:
        """The header fields, read as ``http.client.parse_headers`` does, within gunicorn's
        field limits instead of http.client's (100 fields of 64 KiB)."""
        lines: list[bytes] = []
        most = self.max_field_size + 2  # the field and its CRLF
        while True:
            line = fp.readline(most + 1)
            if len(line) > most:
                raise HeadersTooLarge(f"A header field is longer than {self.max_field_size} bytes.")
            lines.append(line)
            if line in (b"\r\n", b"\n", b""):
                break
            if len(lines) > self.max_fields:
                raise HeadersTooLarge(f"The request has more than {self.max_fields} header fields.")
        text = b"".join(lines).decode("iso-8859-1")
        headers = email.parser.Parser(_class=pywsgi.OldMessage).parsestr(text)
        lengths = headers.get_all("content-length") or []
        if any(not value.strip().isdigit() for value in lengths) or len(set(lengths)) > 1:
            got = ", ".join(lengths)[:100]
            raise BadRequest(f"Content-Length must be one whole number of bytes (got {got!r}).")
        return headers

    def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
        # Close after this answer while stopping, and after a chunked body that could not
        # be parsed (the app answered 400): pywsgi would read its rest as the next request.
        closing = self.drain.active or getattr(self.wsgi_input, "_chunked_input_error", False)
        if closing and not any(name.lower() == "connection" for name, _ in headers):
            headers = [*headers, ("Connection", "close")]
        return super().start_response(status, headers, exc_info)

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        if not isinstance(result, tuple):
            return result
        # Refused before the app ran; pywsgi would send the answer and close at once.
        if result[0] == "414":  # pywsgi's own answer, with an empty body
            limit = MAX_REQUEST_LINE
            result = self._refusal(UriTooLong(f"The request line is longer than {limit} bytes."))
        _log_refusal(self.client_address, result[0], self._refused)
        self._answer_and_linger(result[1])
        return None  # pywsgi closes the connection

    def _answer_and_linger(self, answer: bytes) -> None:
        """Send a refusal, then read what the client still sends before closing: closing
        with unread bytes (the rest of a 20 000-character request line) makes the kernel
        reset the connection, and the client may lose the answer it had not read yet."""
        with contextlib.suppress(OSError):
            self.socket.sendall(answer)
            self.socket.shutdown(socket.SHUT_WR)
            read = 0
            with gevent.Timeout(LINGER_SECONDS, False):  # type: ignore[arg-type]
                while read < LINGER_BYTES:
                    chunk = self.socket.recv(65_536)
                    if not chunk:
                        break
                    read += len(chunk)

    _refused: str = ""  # the message of the last refusal, for its log line

    def _handle_client_error(self, ex: Exception) -> tuple[str, bytes]:
        """A request pywsgi (or ``MessageClass``) could not parse: the JSON answer. Also
        called when the body turns out malformed after the app ran, which then answered
        already (the answer is dropped)."""
        if isinstance(ex, RegistryError):
            return self._refusal(ex)
        # pywsgi's own messages quote the request line or header; others are Python's.
        detail = f": {str(ex)[:200]}" if isinstance(ex, _InvalidClientRequest) else "."
        return self._refusal(BadRequest(f"The request cannot be parsed as HTTP{detail}"))

    def _refusal(self, error: RegistryError) -> tuple[str, bytes]:
        status, body = _error_json(error)
        self._refused = error.message
        head = (
            f"HTTP/1.1 {_status_line(status)}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        return str(status), head.encode("latin-1") + body

    def _send_error_response_if_possible(self, error_code: int) -> None:
        """pywsgi's answer when reading the body failed after the app ran (400) or the app
        raised (500): JSON too, if nothing was sent yet (the app's pipeline answers every
        error itself, so this is a last resort)."""
        if self.response_length:
            self.close_connection = True
            return
        if error_code == 400:
            error: RegistryError = BadRequest("The request body cannot be read.")
        else:  # pywsgi logged the traceback; the table's fallback for RegistryError is 500
            error = RegistryError("The server failed to handle the request; the error was logged.")
        status, body = _error_json(error)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        try:
            self.start_response(_status_line(status), headers)
            self.write(body)
        except OSError:
            self.close_connection = True
        else:
            _log_refusal(self.client_address, str(status), error.message)

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        # The same key gunicorn's own gevent worker uses, so streams can watch the client.
        environ["gunicorn.socket"] = self.socket
        return environ


MAX_REQUEST_LINE: int = pywsgi.MAX_REQUEST_LINE  # type: ignore[attr-defined]


def _error_json(error: Exception) -> tuple[int, bytes]:
    # Imported here: this module is loaded by the gunicorn master too, before gevent has
    # patched anything, and the web layer brings Flask with it.
    from agent_registry.web.errors import error_payload

    status, body, _ = error_payload(error)
    return status, json.dumps(body, separators=(",", ":")).encode()


def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


def _log_refusal(address: Any, status: str, message: str) -> None:
    """One line per request the HTTP layer answered itself (the app's access log and
    metrics never see those requests)."""
    peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address or "-")
    log.info("refused a request from %s before the app: %s %s", peer, status, message)


def _limit(value: Any, default: int, most: int) -> int:
    number = int(value) if value is not None else default
    return most if number <= 0 else min(number, most)


class BalancedServer(PyWSGIServer):
    """pywsgi's server, but a worker holding more connections waits longer to accept.

    Workers share one listening socket, and each new connection wakes them all: whichever
    calls ``accept`` first gets it. Nothing in that race favours the worker with fewer
    connections, so when agents connect one at a time one worker could end up with one and
    a half times its share (``python -m bench.balance``). Here a worker first waits
    ``delay_per_connection`` per connection it holds (at most ``MAX_ACCEPT_DELAY``), then
    accepts what is still queued, so the least loaded worker comes first.

    In a burst (a reconnect storm) the connections spread evenly anyway (likely because
    busy workers are slower to wake), and a delay per wake-up would only slow the storm: a worker
    that found two connections queued after its wait accepts without waiting for the next
    ``BURST_SECONDS``. A lone worker (``delay_per_connection`` 0) never waits.

    A worker that lost the race still accepts when its wait ends, and so takes a connection
    that arrived meanwhile without a new wait. That blurs the order a little (the figures
    in docs/performance.md include it); waiting again instead could leave a connection
    waited on for ever on an overloaded host, where no worker resumes in time.
    """

    delay_per_connection = 0.0  # set by Worker.init_process
    _burst_until = 0.0

    def _do_read(self) -> None:
        delay = min(MAX_ACCEPT_DELAY, self.delay_per_connection * self._held())
        if delay <= 0 or self.loop.now() < self._burst_until:
            super()._do_read()  # type: ignore[misc] # gevent's accept loop, not in its stubs
            return
        self.stop_accepting()
        # gevent's own back-off slot: stop_accepting (the server closing) cancels it.
        self._timer = self.loop.timer(delay)
        self._timer.start(self._accept_after_delay)

    def _accept_after_delay(self) -> None:
        """Accept what another worker has not taken meanwhile (maybe nothing). With several
        workers pywsgi accepts one connection per wake-up; here up to two, and two queued
        means a burst."""
        # The fired timer stays in its slot: the next stop_accepting closes it.
        if not self.started:
            return
        self.start_accepting()
        held, one_per_wake_up = self._held(), self.max_accept
        self.max_accept = 2
        try:
            super()._do_read()  # type: ignore[misc]
        finally:
            self.max_accept = one_per_wake_up
        if self._held() - held > 1:
            self._burst_until = self.loop.now() + BURST_SECONDS

    def _held(self) -> int:
        return len(self.pool) if self.pool is not None else 0


def accept_delay_per_connection(workers: int) -> float:
    """BalancedServer's wait per held connection for a server started with ``workers``.
    Workers added later with ``SIGTTIN`` keep the started count's choice: a server started
    with one worker does not balance the ones added to it (restart it with more)."""
    return 0.0 if workers == 1 else ACCEPT_DELAY_PER_CONNECTION


class Worker(GeventPyWSGIWorker):
    wsgi_handler = KeepAliveHandler
    server_class = BalancedServer

    def init_process(self) -> None:
        BalancedServer.delay_per_connection = accept_delay_per_connection(self.cfg.workers)
        KeepAliveHandler.idle_timeout = float(self.cfg.keepalive or 2)
        KeepAliveHandler.max_fields = _limit(self.cfg.limit_request_fields, 100, _MOST_FIELDS)
        KeepAliveHandler.max_field_size = _limit(
            self.cfg.limit_request_field_size, 8190, _MOST_FIELD_SIZE
        )
        KeepAliveHandler.drain = self.drain = Drain()
        super().init_process()

    def handle_exit(self, sig: int, frame: Any) -> None:
        """``SIGTERM``: gunicorn stops the worker's loop; also let go of idle connections.
        A signal handler may not block, so the closing runs in a greenlet (as gunicorn's
        own ``handle_quit`` does).

        The drain is marked active here, before gunicorn marks the worker not alive: that
        is what turns ``/readyz`` to "draining", so every answer that says so also says
        ``Connection: close``. Marked in the greenlet only, a starved worker could run the
        watcher of ``alive`` first and send a draining answer that kept the connection."""
        self.drain.active = True
        super().handle_exit(sig, frame)
        gevent.spawn(self.drain.start)
