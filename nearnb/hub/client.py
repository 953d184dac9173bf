"""Attach to a run's SSE stream on any hub: show it live (or replay it) and return its RunResult.

``attach(url)`` reads ``.../threads/{tid}/stream/{rid}`` with httpx, decodes
frames in either framing (OpenAI's, or NEAR's legacy, detected per frame),
folds the events through the same reducer and view as a live run, and
returns the same :class:`~nearnb.runs.RunResult`. The rules (status before
parsing, what is retried, dedupe, pacing, limits, 204) live in
:mod:`nearnb.hub.session`; this module only moves bytes, once blocking and
once for an event loop.

The event stream is parsed by httpx-sse (``EventSource(...).iter_sse()`` /
``.aiter_sse()``), once the status and content type were judged. httpx-sse
is not handed the response itself but a relay of its body: the raw bytes
(``iter_raw``), inflated here in steps of at most 64 KiB (httpx would inflate
a whole network read at once: 64 KiB of a gzip bomb is 64 MB), measured by
:class:`~nearnb.hub.sse.FrameBounds` (line and event limits), and checked for
idleness before every read. Each request asks for ``?timing=1``, so a nearnb
hub puts every event's emit time in its data (``nearnb_at``), which replays at
the original pace need. The read timeout (45 s) outlasts the hub's 15 s
keepalive, so a quiet agent is not a dead one; with an ``idle_timeout`` below
it, the client this module makes reads with that timeout instead, so a silent
server ends by it too (a trickling one ends at the first read after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from httpx_sse import EventSource

from . import file_attach
from .follow import Children
from .session import (
    IDLE_TIMEOUT,
    MAX_EVENT_BYTES,
    MAX_LINE_BYTES,
    AttachError,
    ConnectionLost,
    IdleTimeout,
    RunNotFound,
    Session,
    StreamProtocolError,
    StreamTooLarge,
    Unauthorized,
    stream_url,
)
from .sse import FrameBounds, Inflater, SSELimitError, SSEProtocolError

__all__ = [
    "AttachError",
    "ConnectionLost",
    "IdleTimeout",
    "RunNotFound",
    "StreamProtocolError",
    "StreamTooLarge",
    "Unauthorized",
    "attach",
    "attach_async",
    "stream_url",
]

READ_TIMEOUT = 45.0
MAX_RETRIES = 6
#: The most bytes one inflation step produces, so a compressed chunk cannot balloon at once.
INFLATE_STEP = 64 * 1024
#: The most bytes read of an error body (its message is all that is kept).
MAX_ERROR_BODY = 64 * 1024


def _timeout(read_timeout: float, idle_timeout: float | None) -> httpx.Timeout:
    read = read_timeout if idle_timeout is None else min(read_timeout, idle_timeout)
    return httpx.Timeout(10.0, read=read)


def _lost(url: str, exc: Exception) -> ConnectionLost:
    return ConnectionLost(f"connection to {url} lost: {type(exc).__name__}: {exc}")


def _transport_error(session: Session, exc: httpx.TransportError) -> ConnectionLost:
    """A read that timed out past ``idle_timeout`` is idleness; anything else a lost link."""
    idle = session.idle_error() if isinstance(exc, httpx.ReadTimeout) else None
    return idle or _lost(session.url, exc)


# ------------------------------------------------------------------ bodies


class _Body:
    """A body as httpx-sse should see it: inflated in bounded steps and, for the event stream,
    measured line by line (:class:`~nearnb.hub.sse.FrameBounds`) before anything buffers it."""

    def __init__(self, response: httpx.Response, session: Session, *, stream: bool) -> None:
        coding = response.headers.get("content-encoding", "").strip().lower()
        if coding not in ("", "identity", "gzip", "x-gzip", "deflate"):  # stacked ones too
            raise StreamProtocolError(
                f"{session.url} answered with content encoding {coding[:80]!r}; "
                "attach asks for gzip or deflate",
                status=response.status_code,
            )
        self.inflate = Inflater(coding, INFLATE_STEP) if coding not in ("", "identity") else None
        self.url = session.url
        limits = (session.max_line_bytes, session.max_event_bytes)
        self.bounds = FrameBounds(*limits) if stream else None

    def feed(self, raw: bytes, *, inflated: bool = False) -> Iterator[bytes]:
        """The decoded bytes of ``raw``; bytes that break a limit or the encoding as an
        AttachError (``inflated``: ``raw`` is already past the inflater)."""
        try:
            for out in self.inflate(raw) if self.inflate and not inflated else (raw,):
                if self.bounds is not None:
                    self.bounds.check(out)
                yield out
        except SSELimitError as exc:
            hint = f"on {self.url} (attach(..., {exc.limit}=...) accepts more)"
            raise StreamTooLarge(f"{exc} {hint}", limit=exc.limit, size=exc.value) from None
        except SSEProtocolError as exc:
            raise StreamProtocolError(f"{exc} from {self.url}") from None

    def flush(self) -> Iterator[bytes]:
        return self.feed(self.inflate.flush(), inflated=True) if self.inflate else iter(())


def _relay(response: httpx.Response, content: Any) -> httpx.Response:
    """A response for httpx-sse whose body is ``content`` (already decoded: SSE is UTF-8)."""
    headers = {"content-type": "text/event-stream; charset=utf-8"}
    return httpx.Response(response.status_code, headers=headers, content=content)


def _text(data: bytearray, cap: int) -> str:
    return bytes(data[:cap]).decode("utf-8", "replace")


# --------------------------------------------------------------------- sync


def attach(
    url: str,
    *,
    thread_id: str | None = None,
    run_id: str | None = None,
    token: str | None = None,
    speed: float | None = None,
    display: Any = None,
    show_streaming_message: bool = True,
    max_retries: int = MAX_RETRIES,
    read_timeout: float = READ_TIMEOUT,
    idle_timeout: float | None = IDLE_TIMEOUT,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_event_bytes: int = MAX_EVENT_BYTES,
    client: httpx.Client | None = None,
) -> Any:
    """Follow (or replay) a run from a hub, show it, and return its ``RunResult``.

    ``url``: ``http://127.0.0.1:8081/v1/threads/<tid>/stream/<rid>`` (add
    ``?framing=near`` for the legacy framing), or a hub URL with ``thread_id``
    and ``run_id``; ``timing=1`` is added to it. ``speed``: ``None`` shows a
    finished run at once, ``1.0`` at its original pace, ``4.0`` four times
    faster (a hub that sends no emit times is paced as its events arrive). ``display``: as for
    :func:`nearnb.run_agent` (``None`` = automatic: the widget in a notebook;
    ``"widget"``, ``"handle"``, ``"plain"``, ``"terminal"``, ``"none"``), or
    a renderer. The view's Stop button stops watching; the run goes on.
    Sub-agents the run's steps name are followed too, nested in the view (:mod:`.follow`).

    Bounds (see :mod:`nearnb.hub.session`): ``max_line_bytes`` (4 MiB) and
    ``max_event_bytes`` (16 MiB) cap what one line and one event may take,
    counted after gzip/deflate; ``idle_timeout`` (60 s, ``None``: no limit)
    ends a connection on which no new event arrived for that long (bytes and
    keepalives do not count), retried like a dropped one.

    Raises :class:`AttachError` (``Unauthorized``, ``RunNotFound`` — also for a
    hub with no events for the run —, ``StreamProtocolError``, ``StreamTooLarge``,
    ``ConnectionLost``, ``IdleTimeout``) with ``.result`` holding what arrived.

    ``url`` may be a recorded-run file instead, played with no hub (:mod:`.file_attach`).
    """
    if file_attach.is_file_source(url):
        return file_attach.attach_file(url, speed, display, show_streaming_message)
    full, tid, rid = stream_url(url, thread_id, run_id)
    session = Session(
        full,
        tid,
        rid,
        token=token,
        speed=speed,
        display=display,
        show_streaming_message=show_streaming_message,
        max_retries=max_retries,
        max_line_bytes=max_line_bytes,
        max_event_bytes=max_event_bytes,
        idle_timeout=idle_timeout,
    )
    limits = {"max_line_bytes": max_line_bytes, "max_event_bytes": max_event_bytes}
    session.follower = Children(session, attach, token=token, speed=speed, client=client, **limits)
    http = client or httpx.Client(timeout=_timeout(read_timeout, idle_timeout))
    try:
        while not session.over:
            try:
                _read_once(http, session)
                if session.settling:
                    _settle(http, session)
                if not session.over:
                    raise ConnectionLost("stream ended before its done event")
            except ConnectionLost as exc:
                time.sleep(session.backoff(exc))
            except httpx.TransportError as exc:
                if session.stopped:
                    break
                time.sleep(session.backoff(_transport_error(session, exc)))
    except AttachError as exc:
        raise session.fail(exc) from None
    except KeyboardInterrupt:
        session.close_view(session.result("interrupted"))
        raise
    finally:
        if client is None:
            http.close()
    result = session.result()
    session.close_view(result)
    return result


def _read_once(http: httpx.Client, session: Session) -> None:
    with http.stream("GET", session.request_url, headers=session.headers()) as response:
        body = _read_capped(response, session) if response.status_code >= 300 else ""
        if not session.check(response, body):
            session.finished = True
            return
        session.response = response
        try:
            relay = _relay(response, _stream_bytes(response, session))
            with contextlib.closing(EventSource(relay).iter_sse()) as events:
                for sse in events:
                    event = session.receive(sse)
                    if event is None:
                        continue
                    pause = session.delay(event)
                    if pause:
                        time.sleep(pause)
                    session.apply(event)
                    if session.over:
                        return
        finally:
            session.response = None


def _stream_bytes(response: httpx.Response, session: Session) -> Iterator[bytes]:
    """The event stream's decoded, measured bytes; ends the connection once it is idle."""
    body = _Body(response, session, stream=True)
    chunks = response.iter_raw()
    while True:
        if idle := session.idle_error():
            raise idle
        raw = next(chunks, None)
        if raw is None:
            break
        yield from body.feed(raw)
    yield from body.flush()


def _read_capped(response: httpx.Response, session: Session, cap: int = MAX_ERROR_BODY) -> str:
    """At most ``cap`` bytes of a body, decoded, so a hostile error body stays small; one in
    an encoding attach cannot read is left unread (the status still says what happened)."""
    data = bytearray()
    with contextlib.suppress(StreamProtocolError):
        body = _Body(response, session, stream=False)
        for raw in response.iter_raw():
            for piece in body.feed(raw):
                data += piece
                if len(data) >= cap:
                    return _text(data, cap)
    return _text(data, cap)


def _settle(http: httpx.Client, session: Session) -> None:
    """After a 204 without the run's end: ask the hub for the run (see the session docstring)."""
    try:
        with http.stream("GET", session.run_url, headers=session.headers(stream=False)) as response:
            body = _read_capped(response, session, session.max_event_bytes)
    except httpx.TransportError as exc:
        session.settle(None, f"{type(exc).__name__}: {exc}")
    else:
        session.settle(response.status_code, body)


# -------------------------------------------------------------------- async


async def attach_async(
    url: str,
    *,
    thread_id: str | None = None,
    run_id: str | None = None,
    token: str | None = None,
    speed: float | None = None,
    display: Any = None,
    show_streaming_message: bool = True,
    max_retries: int = MAX_RETRIES,
    read_timeout: float = READ_TIMEOUT,
    idle_timeout: float | None = IDLE_TIMEOUT,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_event_bytes: int = MAX_EVENT_BYTES,
    client: httpx.AsyncClient | None = None,
) -> Any:
    """:func:`attach` for an event loop (a notebook cell can ``await`` it)."""
    if file_attach.is_file_source(url):
        return await file_attach.attach_file_async(url, speed, display, show_streaming_message)
    full, tid, rid = stream_url(url, thread_id, run_id)
    session = Session(
        full,
        tid,
        rid,
        token=token,
        speed=speed,
        display=display,
        show_streaming_message=show_streaming_message,
        max_retries=max_retries,
        max_line_bytes=max_line_bytes,
        max_event_bytes=max_event_bytes,
        idle_timeout=idle_timeout,
    )
    limits = {"max_line_bytes": max_line_bytes, "max_event_bytes": max_event_bytes}
    session.follower = Children(session, attach, token=token, speed=speed, **limits)  # threads
    http = client or httpx.AsyncClient(timeout=_timeout(read_timeout, idle_timeout))
    try:
        while not session.over:
            try:
                await _aread_once(http, session)
                if session.settling:
                    await _asettle(http, session)
                if not session.over:
                    raise ConnectionLost("stream ended before its done event")
            except ConnectionLost as exc:
                await asyncio.sleep(session.backoff(exc))
            except httpx.TransportError as exc:
                if session.stopped:
                    break
                await asyncio.sleep(session.backoff(_transport_error(session, exc)))
    except AttachError as exc:
        raise session.fail(exc) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        session.close_view(session.result("interrupted"))
        raise
    finally:
        if client is None:
            await http.aclose()
    result = session.result()
    session.close_view(result)
    return result


async def _aread_once(http: httpx.AsyncClient, session: Session) -> None:
    async with http.stream("GET", session.request_url, headers=session.headers()) as response:
        body = await _aread_capped(response, session) if response.status_code >= 300 else ""
        if not session.check(response, body):
            session.finished = True
            return
        relay = _relay(response, _astream_bytes(response, session))
        async with contextlib.aclosing(EventSource(relay).aiter_sse()) as events:
            async for sse in events:
                event = session.receive(sse)
                if event is None:
                    continue
                pause = session.delay(event)
                if pause:
                    await asyncio.sleep(pause)
                session.apply(event)
                if session.over:
                    return


async def _astream_bytes(response: httpx.Response, session: Session) -> AsyncIterator[bytes]:
    """:func:`_stream_bytes` for an event loop."""
    body = _Body(response, session, stream=True)
    chunks = response.aiter_raw()
    try:
        while True:
            if idle := session.idle_error():
                raise idle
            raw = await anext(chunks, None)
            if raw is None:
                break
            for piece in body.feed(raw):
                yield piece
        for piece in body.flush():
            yield piece
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def _aread_capped(
    response: httpx.Response, session: Session, cap: int = MAX_ERROR_BODY
) -> str:
    """:func:`_read_capped` for an event loop."""
    data = bytearray()
    with contextlib.suppress(StreamProtocolError):
        body = _Body(response, session, stream=False)
        async for raw in response.aiter_raw():
            for piece in body.feed(raw):
                data += piece
                if len(data) >= cap:
                    return _text(data, cap)
    return _text(data, cap)


async def _asettle(http: httpx.AsyncClient, session: Session) -> None:
    """:func:`_settle` for an event loop."""
    try:
        async with http.stream(
            "GET", session.run_url, headers=session.headers(stream=False)
        ) as response:
            body = await _aread_capped(response, session, session.max_event_bytes)
    except httpx.TransportError as exc:
        session.settle(None, f"{type(exc).__name__}: {exc}")
    else:
        session.settle(response.status_code, body)
