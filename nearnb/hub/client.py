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
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
from httpx_sse import EventSource

from . import file_attach
from .client_body import _aread_capped, _Body, _read_capped, _relay
from .follow import Children
from .remote import Remote, stream_urls
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


def _timeout(read_timeout: float, idle_timeout: float | None) -> httpx.Timeout:
    read = read_timeout if idle_timeout is None else min(read_timeout, idle_timeout)
    return httpx.Timeout(10.0, read=read)


def _lost(url: str, exc: Exception) -> ConnectionLost:
    return ConnectionLost(f"connection to {url} lost: {type(exc).__name__}: {exc}")


def _pause(backoff: float, remote: Remote) -> float:
    """The wait before the next attempt: short when there is another hub to go on from."""
    return min(backoff, 0.1) if remote.failover() else backoff


def _transport_error(session: Session, exc: httpx.TransportError) -> ConnectionLost:
    """A read that timed out past ``idle_timeout`` is idleness; anything else a lost link."""
    idle = session.idle_error() if isinstance(exc, httpx.ReadTimeout) else None
    return idle or _lost(session.url, exc)


# --------------------------------------------------------------------- sync


def attach(
    url: str | Sequence[str],
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
    cancel: bool | None = None,
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

    ``url`` may be a recorded-run file instead, played with no hub (:mod:`.file_attach`),
    or a list of hubs sharing one store and bus: a failed connection goes on from the
    next, resuming after the last event seen. ``cancel``: by default (None) the
    view's Stop cancels the run, on whichever process executes it, as a live
    view's Stop does, and follows it to its end, while Ctrl-C (a kernel
    interrupt) only stops watching; ``True``: Ctrl-C cancels too; ``False``:
    Stop only stops watching (:mod:`.remote`).
    """
    if not isinstance(url, list | tuple) and file_attach.is_file_source(url):
        return file_attach.attach_file(url, speed, display, show_streaming_message)
    urls, tid, rid = stream_urls(url, thread_id, run_id)
    full = urls[0]
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
    limits["cancel"] = cancel
    session.follower = Children(session, attach, token=token, speed=speed, client=client, **limits)
    remote = Remote(session, urls, token=token, cancel=cancel)
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
                time.sleep(_pause(session.backoff(exc), remote))
            except httpx.TransportError as exc:
                if session.stopped:
                    break
                time.sleep(_pause(session.backoff(_transport_error(session, exc)), remote))
            except KeyboardInterrupt:
                if not remote.interrupted():  # cancel=True: cancelled, follow to the end
                    raise
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
    url: str | Sequence[str],
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
    cancel: bool | None = None,
) -> Any:
    """:func:`attach` for an event loop (a notebook cell can ``await`` it)."""
    if not isinstance(url, list | tuple) and file_attach.is_file_source(url):
        return await file_attach.attach_file_async(url, speed, display, show_streaming_message)
    urls, tid, rid = stream_urls(url, thread_id, run_id)
    full = urls[0]
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
    limits["cancel"] = cancel
    session.follower = Children(session, attach, token=token, speed=speed, **limits)  # threads
    remote = Remote(session, urls, token=token, cancel=cancel)
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
                await asyncio.sleep(_pause(session.backoff(exc), remote))
            except httpx.TransportError as exc:
                if session.stopped:
                    break
                await asyncio.sleep(_pause(session.backoff(_transport_error(session, exc)), remote))
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
