"""``nearnb.attach("run.jsonl")``: play a recorded-run file through the view, no hub.

The file's events go through the very :class:`~nearnb.hub.session.Session` a
hub stream goes through (the same validation, pacing, view and result), only
read from disk instead of a socket, so a file replay and a URL replay of the
same run look and end the same. ``speed``: ``None`` shows it at once, ``1.0``
at the original pace (the recorded emit times), ``4.0`` four times faster.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..events import Event
from .session import AttachError, RunNotFound, Session, StreamProtocolError


def is_file_source(source: Any) -> bool:
    """A path (or ``file://`` URL) rather than a hub URL: what ``attach`` plays from disk."""
    if isinstance(source, os.PathLike):
        return True
    text = str(source)
    if text.startswith("file://"):
        return True
    if "://" in text:
        return False
    return text.endswith((".jsonl", ".ndjson")) or Path(text).expanduser().is_file()


def _path(source: Any) -> Path:
    text = os.fspath(source) if isinstance(source, os.PathLike) else str(source)
    return Path(text.removeprefix("file://")).expanduser()


def _open(
    source: Any, speed: float | None, display: Any, show_streaming_message: bool
) -> tuple[Session, Iterator[Event]]:
    from ..replayfile import RecordingError, load

    path = _path(source)
    try:
        recording = load(path, calls=False)
    except RecordingError as exc:
        status = 404 if not path.exists() else None
        error = RunNotFound if status else StreamProtocolError
        raise error(str(exc), status=status) from None
    header = recording.header
    run_id, thread_id = str(header.get("run_id") or ""), str(header.get("thread_id") or "")
    session = Session(
        path.resolve().as_uri(),
        thread_id,
        run_id,
        token=None,
        speed=speed,
        display=display,
        show_streaming_message=show_streaming_message,
        max_retries=0,
    )
    events = (
        Event.trusted(e["seq"], e["event"], e["data"], run_id, thread_id, float(e["at"]))
        for e in recording.events
    )
    return session, events


def attach_file(
    source: str | os.PathLike[str],
    speed: float | None = None,
    display: Any = None,
    show_streaming_message: bool = True,
) -> Any:
    """Play a recorded-run file through the view and return its ``RunResult``.

    Raises :class:`~nearnb.hub.session.RunNotFound` for a missing file and
    :class:`~nearnb.hub.session.StreamProtocolError` for one that is not a
    recording or holds a malformed event, with ``.result`` holding what played.
    """
    session, events = _open(source, speed, display, show_streaming_message)
    try:
        for event in events:
            if session.over:  # the view's Stop
                break
            wait = session.delay(event)
            if wait > 0:
                time.sleep(wait)
            session.apply(event)
    except AttachError as exc:
        raise session.fail(exc) from None
    except KeyboardInterrupt:
        session.close_view(session.result("interrupted"))
        raise
    result = session.result()
    session.close_view(result)
    return result


async def attach_file_async(
    source: str | os.PathLike[str],
    speed: float | None = None,
    display: Any = None,
    show_streaming_message: bool = True,
) -> Any:
    """:func:`attach_file` for an event loop (pacing sleeps without blocking it)."""
    session, events = _open(source, speed, display, show_streaming_message)
    try:
        for event in events:
            if session.over:
                break
            wait = session.delay(event)
            if wait > 0:
                await asyncio.sleep(wait)
            session.apply(event)
    except AttachError as exc:
        raise session.fail(exc) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        session.close_view(session.result("interrupted"))
        raise
    result = session.result()
    session.close_view(result)
    return result
