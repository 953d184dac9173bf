"""A deliberately hostile HTTP server for ``attach``: raw sockets, so every byte is the test's.

uvicorn and Starlette would frame, buffer and compress for us; a hostile hub does none of
that politely. Each request is answered by a handler chosen by the last segment of the path
(the run id), called on its own thread with the parsed request and a :class:`Conn` to write
to. Bodies are close-delimited (``Connection: close``, no length), which httpx reads to EOF.

Usage::

    def huge_line(request: Request, conn: Conn) -> None:
        conn.head()
        conn.send(b"data: ")
        conn.send_forever(b"x" * 65536)

    with HostileServer({"run_huge": huge_line}) as server:
        attach(f"{server.url}/v1/threads/thread_a/stream/run_huge", ...)

Paths under ``/runs/`` are proxied to ``upstream`` (a real hub) when one is given, so a
hostile stream can sit in front of a real hub's run objects. Nothing here mocks httpx: the
client under test talks to a real socket.

:data:`HANDLERS` is the repertoire ``tests/test_attach_limits.py`` uses: every stream starts
with three good events (:data:`GOOD_BYTES`, with ``retry: 20`` so retries are quick), then
misbehaves as its name says.
"""

from __future__ import annotations

import functools
import socket
import socketserver
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from nearnb.events import Event, message_delta
from nearnb.hub.sse import encode_event

#: Endless senders stop after this long even if the client never goes away.
MAX_SECONDS = 20.0
KiB, MiB = 1024, 1024 * 1024


@dataclass
class Request:
    """A request head as the server read it; ``headers`` has lower-cased names."""

    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def kind(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


class Conn:
    """The response side of one connection: write a head, then bytes, until the client leaves."""

    def __init__(self, sock: socket.socket, closing: threading.Event) -> None:
        self.sock = sock
        self.closing = closing
        self.sent = 0

    def head(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        """A status line and headers (an event stream unless ``headers`` says otherwise)."""
        fields = {"Content-Type": "text/event-stream", "Connection": "close", **(headers or {})}
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Whatever')}"]
        lines += [f"{name}: {value}" for name, value in fields.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send(self, data: bytes) -> bool:
        """Write ``data``; False once the client has gone (or the server is closing)."""
        if self.closing.is_set():
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.sent += len(data)
        return True

    def send_forever(self, data: bytes, every: float = 0.0) -> None:
        """Write ``data`` again and again (``every`` seconds apart) until the client leaves."""
        deadline = time.monotonic() + MAX_SECONDS
        while time.monotonic() < deadline and self.send(data):
            if every:
                time.sleep(every)

    def trickle(self, data: bytes, every: float) -> None:
        """Write ``data`` one byte at a time, ``every`` seconds apart."""
        for index in range(len(data)):
            if not self.send(data[index : index + 1]):
                return
            time.sleep(every)

    def wait_gone(self) -> None:
        """Send nothing, hold the connection until the client closes it."""
        self.sock.settimeout(0.05)
        deadline = time.monotonic() + MAX_SECONDS
        while time.monotonic() < deadline and not self.closing.is_set():
            try:
                if self.sock.recv(1024) == b"":
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def respond(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        """A whole response with a length (for 204s and JSON)."""
        length = {} if status == 204 else {"Content-Length": str(len(body))}
        self.head(status, {"Content-Type": "application/json", **length, **(headers or {})})
        self.send(body)


Handler = Callable[[Request, Conn], None]
_REASONS = {200: "OK", 204: "No Content", 404: "Not Found", 500: "Internal Server Error"}


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True  # a handler stuck sending must not hold the test process
    allow_reuse_address = True


class HostileServer:
    """Raw-socket HTTP/1.1 on 127.0.0.1: ``handlers`` by run id; ``requests`` records each head."""

    def __init__(self, handlers: dict[str, Handler], upstream: str | None = None) -> None:
        self.handlers = handlers
        self.upstream = upstream
        self.requests: list[Request] = []
        self.closing = threading.Event()
        outer = self

        class _Handle(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._serve(self.request)

        self._server = _Server(("127.0.0.1", 0), _Handle)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def of(self, kind: str) -> list[Request]:
        """The requests made for run id ``kind``, in order."""
        return [r for r in self.requests if r.kind == kind]

    def _serve(self, sock: socket.socket) -> None:
        request = _read_head(sock)
        if request is None:
            return
        self.requests.append(request)
        conn = Conn(sock, self.closing)
        if "/runs/" in request.path and self.upstream:
            self._proxy(request, conn)
            return
        handler = self.handlers.get(request.kind)
        if handler is None:
            conn.respond(404, b'{"error": {"message": "no such hostile route"}}')
            return
        try:
            handler(request, conn)
        except OSError:
            pass  # the client left mid-write: that is the point of most handlers

    def _proxy(self, request: Request, conn: Conn) -> None:
        auth = request.headers.get("authorization")
        headers = {"Authorization": auth} if auth else {}
        answer = httpx.get(f"{self.upstream}{request.target}", headers=headers, timeout=10)
        conn.respond(answer.status_code, answer.content)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _read_head(sock: socket.socket) -> Request | None:
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return None
        if not chunk or len(data) > 65536:
            return None
        data += chunk
    lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    sock.settimeout(None)
    return Request(method, target, headers)


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in pieces of ``size`` bytes (to cut frames, CRLFs and gzip blocks anywhere)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


# ---------------------------------------------------------------- repertoire
# The run's first events, then each handler's hostility (by run id in HANDLERS).


def event(seq: int, name: str, data: Any) -> Event:
    return Event(seq=seq, event=name, data=data, run_id="run_x", thread_id="thread_a")


RUN = {"id": "run_x", "status": "queued", "assistant_id": "local/x/1", "model": "m"}
GOOD = [
    event(1, "thread.run.created", RUN),
    event(2, "thread.run.in_progress", {**RUN, "status": "in_progress"}),
    event(3, "thread.message.delta", message_delta("msg_1", "kept ")),
]
#: ``retry: 20`` first, so a retried test waits 20 ms, not the default second.
GOOD_BYTES = b"retry: 20\n" + b"".join(encode_event(e) for e in GOOD)
COMPLETED = event(4, "thread.run.completed", {**RUN, "status": "completed"})


def huge_line(request: Request, conn: Conn) -> None:
    conn.head()
    conn.send(GOOD_BYTES + b"id: 4\nevent: thread.message.delta\ndata: ")
    conn.send_forever(b"x" * (64 * KiB))


def endless_data(request: Request, conn: Conn) -> None:
    conn.head()
    conn.send(GOOD_BYTES + b"id: 4\nevent: thread.message.delta\n")
    conn.send_forever(b"data: " + b"y" * 1000 + b"\n")


@functools.cache
def gzip_bomb(lines: bool) -> bytes:
    """GOOD, then 64 MB of one endless ``data: zzz...`` line or of ``data:`` lines, in ~65 kB
    of gzip (made on first use: it takes a few tenths of a second)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    head = GOOD_BYTES + b"id: 4\nevent: thread.message.delta\n" + (b"" if lines else b"data: ")
    block = (b"data: " + b"z" * 58 + b"\n") * (MiB // 64) if lines else b"z" * MiB
    parts = [packer.compress(head), *(packer.compress(block) for _ in range(64))]
    return b"".join(parts) + packer.flush()


def bomb(request: Request, conn: Conn) -> None:
    """A gzip bomb as an event stream, or (``run_500``) as the body of a 500."""
    error = request.kind == "run_500"
    conn.head(500 if error else 200, {"Content-Encoding": "gzip"})
    for piece in chunks(gzip_bomb(error or request.kind == "run_bomb_lines"), 16 * KiB):
        if not conn.send(piece):
            return
    conn.wait_gone()


def _whole_run() -> bytes:
    """A run whose fourth frame is raw UTF-8 with CRLF line ends, as other servers send."""
    utf8 = '{"id":"msg_1","object":"thread.message.delta","delta":{"content":[{"index":0,'
    utf8 += '"type":"text","text":{"value":"h\u00e9llo \u2713"}}]}}'
    frame = f"id: 4\r\nevent: thread.message.delta\r\ndata: {utf8}\r\n\r\n".encode()
    closing = [event(5, COMPLETED.event, COMPLETED.data), event(6, "done", "[DONE]")]
    return GOOD_BYTES + b": keepalive\n" + frame + b"".join(encode_event(e) for e in closing)


def compressed(request: Request, conn: Conn) -> None:
    """A whole run compressed as the path says, cut into 7-byte pieces (boundaries anywhere)."""
    encoding = request.kind.removeprefix("run_enc_")
    wbits = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS, "raw": -zlib.MAX_WBITS}
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits[encoding])
    body = packer.compress(_whole_run()) + packer.flush()
    conn.head(headers={"Content-Encoding": "gzip" if encoding == "gzip" else "deflate"})
    for piece in chunks(body, 7):
        conn.send(piece)


def brotli(request: Request, conn: Conn) -> None:
    conn.head(headers={"Content-Encoding": "br"})
    conn.send(b"\x8b\x02\x80not really brotli")


def trickle(request: Request, conn: Conn) -> None:
    """The events, then a frame one byte every 50 ms: bytes flow, no event ever completes."""
    conn.head()
    conn.send(GOOD_BYTES)
    conn.trickle(b'id: 4\nevent: thread.message.delta\ndata: {"id": "msg_1"}\n\n' * 10, 0.05)


def keepalive(request: Request, conn: Conn) -> None:
    conn.head()
    conn.send(GOOD_BYTES if "last-event-id" not in request.headers else b"")
    conn.send_forever(b": keepalive\n", every=0.05)


def silent(request: Request, conn: Conn) -> None:
    conn.head()
    conn.send(GOOD_BYTES)
    conn.wait_gone()


def replays(request: Request, conn: Conn) -> None:
    """Old events again and again (new ids each time, but sequence numbers already seen)."""
    conn.head()
    conn.send(GOOD_BYTES)
    conn.send_forever(encode_event(GOOD[0]) + encode_event(GOOD[1]), every=0.02)


def slow_but_alive(request: Request, conn: Conn) -> None:
    """Real events 0.15 s apart (keepalives between), for longer than the idle timeout."""
    conn.head()
    conn.send(GOOD_BYTES)
    for seq in range(4, 12):
        time.sleep(0.15)
        delta = event(seq, "thread.message.delta", message_delta("msg_1", f"w{seq} "))
        conn.send(b": keepalive\n" + encode_event(delta))
    done = [event(12, COMPLETED.event, COMPLETED.data), event(13, "done", "[DONE]")]
    conn.send(b"".join(encode_event(e) for e in done))


def nested(request: Request, conn: Conn) -> None:
    """Data nested past the recursion limit: json.loads raises RecursionError, not ValueError."""
    conn.head()
    conn.send(GOOD_BYTES + b"id: 4\nevent: thread.message.delta\ndata: " + b"[" * 100_000 + b"\n\n")


def bad_shape(request: Request, conn: Conn) -> None:
    """Valid JSON the reducer cannot fold (content must be a list of parts)."""
    conn.head()
    conn.send(GOOD_BYTES + b'id: 4\nevent: thread.message.completed\ndata: {"content": 1}\n\n')


def corrupt_gzip(request: Request, conn: Conn) -> None:
    packer = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    body = packer.compress(GOOD_BYTES) + packer.flush(zlib.Z_SYNC_FLUSH)
    conn.head(headers={"Content-Encoding": "gzip"})
    conn.send(body)
    time.sleep(0.1)  # the events arrive first; the garbage is a read of its own
    conn.send(b"\xff" * 64)


def long_id(request: Request, conn: Conn) -> None:
    conn.head()
    conn.send(GOOD_BYTES + b"id: " + b"5" * 5000 + b"\nevent: thread.message.delta\ndata: {}\n\n")


def no_content(request: Request, conn: Conn) -> None:
    conn.respond(204)


def ends_then_204(request: Request, conn: Conn) -> None:
    """The events without the run's end (``run_done_lost``: with its terminal event but not
    its ``done``), then the connection closes; the resume gets 204."""
    if "last-event-id" in request.headers:
        conn.respond(204)
        return
    conn.head()
    conn.send(GOOD_BYTES + (encode_event(COMPLETED) if request.kind == "run_done_lost" else b""))


HANDLERS = {
    "run_huge": huge_line,
    "run_endless": endless_data,
    "run_bomb_line": bomb,
    "run_bomb_lines": bomb,
    "run_enc_gzip": compressed,
    "run_enc_deflate": compressed,
    "run_enc_raw": compressed,
    "run_br": brotli,
    "run_500": bomb,
    "run_trickle": trickle,
    "run_keepalive": keepalive,
    "run_silent": silent,
    "run_replays": replays,
    "run_slow": slow_but_alive,
    "run_longid": long_id,
    "run_nested": nested,
    "run_corrupt": corrupt_gzip,
    "run_shape": bad_shape,
    "run_204": no_content,
    "run_done_lost": ends_then_204,
}
