"""A real, scripted OpenAI-compatible chat-completions server for tests.

Tests must exercise the real HTTP path (openai SDK -> httpx -> SSE parsing), not a mocked client,
so this module serves ``POST /v1/chat/completions`` from a Starlette app run by uvicorn on
``127.0.0.1`` (a free port) in a background thread. Each request consumes the next scripted
:class:`Reply`; the same reply answers a streamed request (SSE chunks) or a non-streamed one
(one ``chat.completion``), so a test does not have to know which one the code under test uses.

Usage::

    from tests.support.openai_server import Reply, ScriptedOpenAI

    with ScriptedOpenAI() as srv:                     # srv.base_url == "http://127.0.0.1:PORT/v1"
        srv.script(["Hel", "lo"])                     # 1st request: two content chunks
        srv.script(Reply.text("Hi", delay=0.05))      # 2nd: one chunk, 50 ms before each chunk
        srv.script(Reply.error(429))                  # 3rd: HTTP 429 with an OpenAI error body
        srv.script(Reply.text("a", "b", "c", drop_after=2))   # 4th: connection cut mid-stream
        srv.script(Reply.tool_call("get_time", {"tz": "UTC"}))  # 5th: delta.tool_calls
        srv.script(Reply.text("x", "y", gate=ready))  # 6th: role chunk, then waits for ready.set()
        ...
        srv.requests[0].body["temperature"]           # what the client sent (JSON body)
        srv.requests[0].headers["authorization"]      # and its headers (lower-case names)

or as the pytest fixture ``scripted_openai``: add
``pytest_plugins = ["tests.support.openai_server"]`` to the root ``tests/conftest.py`` (importing
the fixture into a test module works too, but ruff flags the parameter as a redefinition).

Stream shape (what api.openai.com sends): a role chunk ``delta={"role": "assistant"}``, one chunk
per scripted piece, a final chunk with ``delta={}`` and ``finish_reason``, an optional usage chunk
(when the request has ``stream_options.include_usage``), then ``data: [DONE]``. ``drop_after=N``
sends the role chunk and N further chunks, then closes the TCP connection without ``[DONE]`` (the
client sees an incomplete chunked body); ``error_after=N`` instead sends an OpenAI error event
``data: {"error": {...}}`` there and ends the body (what OpenAI does on a mid-stream failure).
When nothing is scripted, :attr:`ScriptedOpenAI.default`
answers (``None`` -> HTTP 500 "no scripted reply left", which makes a forgotten script obvious).
Streams without a per-chunk delay are written in batches, so 50,000 chunks take well under a
second of server time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

_ERROR_DEFAULTS = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_denied", None, "You are not allowed to use this model."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded."),
}
_BATCH = 512  # chunks per socket write when there is no per-chunk delay


@dataclass(frozen=True)
class ToolCallScript:
    """One function call the assistant makes; ``arguments`` arrive in these pieces."""

    name: str
    arguments: tuple[str, ...]
    id: str


@dataclass(frozen=True)
class Reply:
    """What the server answers to one request. Build with the classmethods."""

    pieces: tuple[str, ...] = ()
    tool_calls: tuple[ToolCallScript, ...] = ()
    finish_reason: str | None = None  # None -> "tool_calls" if tool_calls else "stop"
    delay: float = 0.0  # seconds slept before each streamed chunk
    drop_after: int | None = None  # cut the connection after role chunk + N chunks
    error_after: int | None = None  # send an error event after role chunk + N chunks
    status: int = 200
    error_message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    model: str | None = None  # None -> echo the requested model
    gate: threading.Event | None = None  # streamed: hold the chunks after the role chunk until set

    @classmethod
    def text(
        cls,
        *pieces: str,
        delay: float = 0.0,
        drop_after: int | None = None,
        error_after: int | None = None,
        error_message: str | None = None,
        finish_reason: str = "stop",
        model: str | None = None,
        gate: threading.Event | None = None,
    ) -> Reply:
        """Content streamed one piece per chunk (non-stream: the pieces joined).

        ``gate``: the stream sends its role chunk, then waits (up to 60 s) until the event is
        set, so a test or bench can open the stream's content once its listeners are ready.
        """
        return cls(
            pieces=tuple(pieces),
            delay=delay,
            drop_after=drop_after,
            error_after=error_after,
            error_message=error_message,
            finish_reason=finish_reason,
            model=model,
            gate=gate,
        )

    @classmethod
    def tool_call(
        cls,
        name: str,
        arguments: str | dict[str, Any] | Sequence[str] = "{}",
        *,
        text: Sequence[str] = (),
        call_id: str | None = None,
        more: Sequence[tuple[str, str | dict[str, Any]]] = (),
        delay: float = 0.0,
        drop_after: int | None = None,
    ) -> Reply:
        """Optional content ``text`` pieces, then one or more tool calls.

        ``arguments``: a dict (JSON-encoded), a string (streamed in 8-character pieces, as real
        servers do) or an explicit sequence of pieces. ``more``: further ``(name, arguments)``
        calls, streamed after the first with increasing ``index``.
        """
        calls = [(name, arguments, call_id)] + [(n, a, None) for n, a in more]
        scripts = tuple(
            ToolCallScript(n, _argument_pieces(a), cid or f"call_{i:04d}{n[:8]}")
            for i, (n, a, cid) in enumerate(calls)
        )
        return cls(pieces=tuple(text), tool_calls=scripts, delay=delay, drop_after=drop_after)

    @classmethod
    def error(
        cls, status: int, message: str | None = None, *, retry_after_ms: int | None = None
    ) -> Reply:
        """An HTTP error with an OpenAI error body ``{"error": {"message", "type", ...}}``.

        ``retry_after_ms`` sets the header the openai SDK honours, so a test of retries does not
        wait for the SDK's exponential back-off.
        """
        headers = {} if retry_after_ms is None else {"retry-after-ms": str(retry_after_ms)}
        return cls(status=status, error_message=message, headers=headers)


def _argument_pieces(arguments: str | dict[str, Any] | Sequence[str]) -> tuple[str, ...]:
    if isinstance(arguments, dict):
        arguments = json.dumps(arguments)
    if isinstance(arguments, str):
        return tuple(arguments[i : i + 8] for i in range(0, len(arguments), 8)) or ("",)
    return tuple(arguments)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]  # lower-case names


class _Drop(Exception):
    """Raised inside a streaming body to make uvicorn abort the connection."""


class _QuietDrops(logging.Filter):
    """Hide uvicorn's traceback for connections this server cut on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not _contains_drop(exc)


def _contains_drop(exc: BaseException | None) -> bool:
    if exc is None:
        return False
    if isinstance(exc, _Drop):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_contains_drop(e) for e in exc.exceptions)
    return _contains_drop(exc.__cause__ or exc.__context__)


class ScriptedOpenAI:
    """The server. Use as a context manager; see the module docstring for the API.

    ``api_key``: when set, requests without ``Authorization: Bearer <api_key>`` get HTTP 401, so a
    test can prove the client sent the right key.
    """

    def __init__(self, *, api_key: str | None = None, default: Reply | None = None) -> None:
        self.api_key = api_key
        self.default = default
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ------------------------------------------------------------------ public API

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: pass it as an OpenAI ``base_url``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply | str | Sequence[str]) -> ScriptedOpenAI:
        """Queue replies, one per future request. ``"text"`` or ``["pie", "ces"]`` = text."""
        with self._lock:
            for reply in replies:
                if isinstance(reply, str):
                    reply = Reply.text(reply)
                elif not isinstance(reply, Reply):
                    reply = Reply.text(*reply)
                self._queue.append(reply)
        return self

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every chat-completions request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        with self._lock:
            return len(self._queue)

    def start(self) -> ScriptedOpenAI:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(),
            log_config=None,  # never reconfigure the test process's logging
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            daemon=True,
            name=f"ScriptedOpenAI:{self.port}",
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("ScriptedOpenAI: uvicorn did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> ScriptedOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the app

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    async def _chat(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            self._requests.append(RecordedRequest(request.url.path, body, headers))
            reply = self._queue.popleft() if self._queue else self.default
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            reply = Reply.error(401)
        if reply is None:
            reply = Reply.error(500, "ScriptedOpenAI: no scripted reply left for this request")
        if reply.status != 200:
            return _error_response(reply)
        model = reply.model or str(body.get("model", "scripted"))
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                _sse(reply, model, usage),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", **reply.headers},
            )
        return JSONResponse(_completion(reply, model), headers=reply.headers)


# ---------------------------------------------------------------------- response bodies


def _error_response(reply: Reply) -> Response:
    kind, code, message = _ERROR_DEFAULTS.get(reply.status, ("server_error", None, "Error."))
    error = {"message": reply.error_message or message, "type": kind, "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=reply.status, headers=reply.headers)


def _finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _tool_call_objects(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id,
            "type": "function",
            "function": {"name": c.name, "arguments": "".join(c.arguments)},
        }
        for c in reply.tool_calls
    ]


def _usage(reply: Reply) -> dict[str, int]:
    out = len(reply.pieces) + sum(len(c.arguments) for c in reply.tool_calls)
    return {"prompt_tokens": 10, "completion_tokens": out, "total_tokens": 10 + out}


def _completion(reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.pieces) or None}
    if reply.tool_calls:
        message["tool_calls"] = _tool_call_objects(reply)
    elif message["content"] is None:
        message["content"] = ""
    return {
        "id": f"chatcmpl-scripted{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(reply)}
        ],
        "usage": _usage(reply),
    }


def _deltas(reply: Reply) -> Iterator[dict[str, Any]]:
    """Every delta after the role chunk, in stream order."""
    for piece in reply.pieces:
        yield {"content": piece}
    for index, call in enumerate(reply.tool_calls):
        yield {
            "tool_calls": [
                {
                    "index": index,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
            ]
        }
        for piece in call.arguments:
            yield {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}


async def _sse(reply: Reply, model: str, include_usage: bool) -> AsyncIterator[str]:
    """The SSE body. Content chunks are formatted from a template: the hot path of benchmarks."""
    cid = f"chatcmpl-scripted{time.monotonic_ns()}"
    head = json.dumps(
        {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    )[:-1]  # '{"id": ..., "model": "..."' without the closing brace
    usage_field = ', "usage": null' if include_usage else ""

    def event(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return f'data: {head}, "choices": [{json.dumps(choice)}]{usage_field}}}\n\n'

    def content_event(piece: str) -> str:
        return (
            f'data: {head}, "choices": [{{"index": 0, "delta": {{"content": {json.dumps(piece)}}}'
            f', "logprobs": null, "finish_reason": null}}]{usage_field}}}\n\n'
        )

    events: Iterator[str] = (
        content_event(d["content"]) if "content" in d else event(d) for d in _deltas(reply)
    )
    batch = [event({"role": "assistant", "content": ""})]
    if reply.gate is not None:
        yield "".join(batch)
        batch = []
        deadline = time.monotonic() + 60
        while not reply.gate.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
    stop_at = reply.drop_after if reply.drop_after is not None else reply.error_after
    sent = 0
    for item in events:
        if stop_at is not None and sent >= stop_at:
            break
        if reply.delay:
            if batch:
                yield "".join(batch)
                batch = []
            await asyncio.sleep(reply.delay)
            yield item
        else:
            batch.append(item)
            if len(batch) >= _BATCH:
                yield "".join(batch)
                batch = []
        sent += 1
    if stop_at is not None and sent >= stop_at:
        if reply.drop_after is None:
            message = reply.error_message or _ERROR_DEFAULTS[500][2]
            error = {"message": message, "type": "server_error", "param": None, "code": None}
            yield "".join(batch) + f"data: {json.dumps({'error': error})}\n\n"
            return
        yield "".join(batch)
        await asyncio.sleep(0.01)  # let the transport flush before the abort
        raise _Drop("ScriptedOpenAI: connection dropped on purpose")
    if reply.delay:
        await asyncio.sleep(reply.delay)
    batch.append(event({}, _finish(reply)))
    if include_usage:
        batch.append(f'data: {head}, "choices": [], "usage": {json.dumps(_usage(reply))}}}\n\n')
    batch.append("data: [DONE]\n\n")
    yield "".join(batch)


@pytest.fixture
def scripted_openai() -> Iterator[ScriptedOpenAI]:
    """A running :class:`ScriptedOpenAI`, stopped after the test."""
    with ScriptedOpenAI() as srv:
        yield srv
