"""Attach to a run's SSE stream on any hub: show it live (or replay it) and return its RunResult.

``attach(url)`` reads ``.../threads/{tid}/stream/{rid}`` with httpx, decodes
frames in either framing (OpenAI's, or NEAR's legacy, detected per frame),
folds the events through the same reducer and view as a live run, and
returns the same :class:`~nearnb.runs.RunResult`. The rules (status before
parsing, what is retried, dedupe, pacing) live in :mod:`nearnb.hub.session`;
this module only moves bytes, once blocking and once for an event loop.

The event stream is parsed by httpx-sse (``EventSource(response).iter_sse()``
/ ``.aiter_sse()``), once the status and content type were judged. Each
request asks for ``?timing=1``, so a nearnb hub puts every event's emit time
in its data (``nearnb_at``), which replays at the original pace need. The
read timeout (45 s) outlasts the hub's 15 s keepalive, so a quiet agent is
not a dead one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
from httpx_sse import EventSource

from .session import (
    AttachError,
    ConnectionLost,
    RunNotFound,
    Session,
    StreamProtocolError,
    Unauthorized,
    stream_url,
)

__all__ = [
    "AttachError",
    "ConnectionLost",
    "RunNotFound",
    "StreamProtocolError",
    "Unauthorized",
    "attach",
    "attach_async",
    "stream_url",
]

READ_TIMEOUT = 45.0
MAX_RETRIES = 6


def _timeout(read_timeout: float) -> httpx.Timeout:
    return httpx.Timeout(10.0, read=read_timeout)


def _lost(url: str, exc: Exception) -> ConnectionLost:
    return ConnectionLost(f"connection to {url} lost: {type(exc).__name__}: {exc}")


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

    Raises :class:`AttachError` (``Unauthorized``, ``RunNotFound``,
    ``StreamProtocolError``, ``ConnectionLost``) with ``.result`` holding
    what arrived.
    """
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
    )
    http = client or httpx.Client(timeout=_timeout(read_timeout))
    try:
        while not session.over:
            try:
                _read_once(http, session)
                if not session.over:
                    raise ConnectionLost("stream ended before its done event")
            except ConnectionLost as exc:
                time.sleep(session.backoff(exc))
            except httpx.TransportError as exc:
                if session.stopped:
                    break
                time.sleep(session.backoff(_lost(full, exc)))
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
        body = response.read().decode("utf-8", "replace") if response.status_code >= 300 else ""
        if not session.check(response, body):
            session.finished = True
            return
        session.response = response
        try:
            with contextlib.closing(EventSource(response).iter_sse()) as events:
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
    client: httpx.AsyncClient | None = None,
) -> Any:
    """:func:`attach` for an event loop (a notebook cell can ``await`` it)."""
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
    )
    http = client or httpx.AsyncClient(timeout=_timeout(read_timeout))
    try:
        while not session.over:
            try:
                await _aread_once(http, session)
                if not session.over:
                    raise ConnectionLost("stream ended before its done event")
            except ConnectionLost as exc:
                await asyncio.sleep(session.backoff(exc))
            except httpx.TransportError as exc:
                if session.stopped:
                    break
                await asyncio.sleep(session.backoff(_lost(full, exc)))
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
        if response.status_code >= 300:
            body = (await response.aread()).decode("utf-8", "replace")
        else:
            body = ""
        if not session.check(response, body):
            session.finished = True
            return
        async with contextlib.aclosing(EventSource(response).aiter_sse()) as events:
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
