"""A gunicorn worker that gives no thread to a slow client (``worker_class`` in gunicorn.conf.py).

gunicorn's ``gthread`` worker hands a connection to a thread as soon as its first bytes arrive;
the thread then reads the headers and body with blocking reads, so about two dozen clients that
trickle a byte every few seconds hold every thread and nothing else is served. This worker keeps
the ``gthread`` design (threads for the app, one selector loop for the sockets) but reads each
request, headers and body, in the selector loop without blocking, and only a request that is
complete reaches a thread. Each request has one deadline for its headers and body together
(``BATI_REQUEST_TIMEOUT_SECONDS``, from the first byte; a new connection's clock starts when it
is accepted): past it the client gets ``400 body_timeout`` (or ``header_timeout``) and the
connection is closed, however many bytes it sent meanwhile.

Only plain HTTP/1.x is buffered; TLS or HTTP/2 settings fall back to the ``gthread`` behaviour
(terminate TLS at the proxy).
"""

from __future__ import annotations

import contextlib
import errno
import json
import selectors
import time
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn.workers.gthread import ThreadWorker

_RECV = 64 * 1024
_NO_BODY = -1


def request_complete(buf: bytes | bytearray, max_body: int, max_head: int) -> bool:
    """Whether ``buf`` holds one whole HTTP/1.x request (or enough to refuse it).

    True once the headers and the body they announce (``Content-Length`` or chunked) are
    in; also True for anything the HTTP parser or the app answers without the rest (headers
    longer than ``max_head``, a body announced larger than ``max_body``, malformed framing),
    so the thread answers at once instead of waiting for bytes that never matter.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return len(buf) > max_head
    length, chunked = _framing(bytes(buf[:end]))
    start = end + 4
    if chunked:
        return _chunked_complete(buf, start, max_body)
    if length is None:
        return True  # malformed Content-Length: the parser refuses it
    if length == _NO_BODY or length > max_body:
        return True
    return len(buf) - start >= length


def _framing(head: bytes) -> tuple[int | None, bool]:
    """(Content-Length or ``_NO_BODY``; None when malformed, chunked?) from the header block."""
    length: int | None = _NO_BODY
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            text = value.strip()
            length = int(text) if text.isdigit() else None
        elif name == b"transfer-encoding":
            chunked = chunked or b"chunked" in value.lower()
    return length, chunked


def _chunked_complete(buf: bytes | bytearray, pos: int, max_body: int) -> bool:
    total = 0
    while True:
        nl = buf.find(b"\r\n", pos)
        if nl < 0:
            return len(buf) - pos > 1024  # an endless size line: let the parser refuse it
        size_text = bytes(buf[pos:nl]).split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return True  # malformed: answered 400 by the app
        if size < 0:
            return True
        if size == 0:
            rest = buf[nl + 2 :]
            return rest.startswith(b"\r\n") or b"\r\n\r\n" in rest
        total += size
        if total > max_body:
            return True
        pos = nl + 2 + size + 2
        if pos > len(buf):
            return False


def timeout_response(code: str, seconds: float) -> bytes:
    """The ``400`` sent to a client whose request missed its deadline (the API's error shape)."""
    what = "body" if code == "body_timeout" else "request headers"
    body = json.dumps(
        {
            "error": {
                "code": code,
                "message": f"the request {what} did not arrive within {seconds:g} s",
                "details": [],
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
    )
    return head.encode() + body


class BufferingThreadWorker(ThreadWorker):
    """``gthread`` with whole requests read in the selector loop under one deadline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffering: dict[Any, Any] = {}  # conn -> conn (insertion order: oldest first)
        self.request_seconds = 10.0
        self.max_body = 2 * 1024 * 1024
        self.max_head = 64 * 1024

    def run(self) -> None:
        settings = self._settings()
        if settings is not None:
            self.request_seconds = float(settings.request_timeout_seconds)
            self.max_body = int(settings.max_body_bytes)
        cfg = self.cfg
        self.max_head = (
            cfg.limit_request_line + cfg.limit_request_fields * cfg.limit_request_field_size + 4
        )
        super().run()

    def _settings(self) -> Any:
        state = getattr(self.wsgi, "extensions", {}).get("bati")
        return getattr(state, "settings", None)

    def _buffers(self) -> bool:
        cfg = self.cfg
        return not cfg.is_ssl and getattr(cfg, "http2_cleartext", "off") == "off"

    # -- every connection with work to do comes through here ---------------------------------
    def enqueue_req(self, conn: Any) -> None:
        if getattr(conn, "bati_ready", False) or not self._buffers():
            conn.bati_ready = False
            super().enqueue_req(conn)
            return
        self._start_buffering(conn)

    def _start_buffering(self, conn: Any) -> None:
        leftover = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        conn.bati_buf = bytearray(leftover)
        conn.bati_continue_sent = False
        now = time.monotonic()
        kept_alive = conn.parser is not None
        # A kept-alive connection may idle for ``keepalive`` before its next request starts.
        conn.bati_started = bool(leftover) or not kept_alive
        conn.bati_deadline = now + (
            self.request_seconds if conn.bati_started else max(self.cfg.keepalive, 1)
        )
        if leftover and self._complete(conn):
            self._dispatch(conn)
            return
        conn.sock.setblocking(False)
        self.buffering[conn] = conn
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _complete(self, conn: Any) -> bool:
        return request_complete(conn.bati_buf, self.max_body, self.max_head)

    def _on_readable(self, conn: Any, _sock: Any) -> None:
        while True:
            try:
                data = conn.sock.recv(_RECV)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop(conn)
                return
            if not data:  # closed before a whole request: nothing to answer
                self._drop(conn)
                return
            if not conn.bati_started:
                conn.bati_started = True
                conn.bati_deadline = time.monotonic() + self.request_seconds
            conn.bati_buf += data
            if len(data) < _RECV:
                break
        if self._complete(conn):
            self._stop_buffering(conn)
            self._dispatch(conn)
        else:
            self._send_continue(conn)

    def _send_continue(self, conn: Any) -> None:
        """``Expect: 100-continue`` clients wait for this before sending the body."""
        if conn.bati_continue_sent:
            return
        end = conn.bati_buf.find(b"\r\n\r\n")
        if end >= 0 and b"100-continue" in bytes(conn.bati_buf[:end]).lower():
            conn.bati_continue_sent = True
            with contextlib.suppress(OSError):
                conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _stop_buffering(self, conn: Any) -> None:
        self.buffering.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _dispatch(self, conn: Any) -> None:
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(conn.bati_buf))
        conn.bati_buf = bytearray()
        conn.data_ready = True
        conn.bati_ready = True
        self.enqueue_req(conn)

    def _drop(self, conn: Any, answer: bytes | None = None) -> None:
        self._stop_buffering(conn)
        if answer:
            try:
                conn.sock.send(answer)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EPIPE, errno.ECONNRESET):
                    self.log.debug("could not send the timeout answer: %s", exc)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c in self.buffering if c.bati_deadline <= now]:
            if not conn.bati_buf:
                self._drop(conn)  # an idle connection: close quietly
                continue
            code = "body_timeout" if b"\r\n\r\n" in conn.bati_buf else "header_timeout"
            self.log.info("request cut at its %g s deadline (%s)", self.request_seconds, code)
            self._drop(conn, timeout_response(code, self.request_seconds))
