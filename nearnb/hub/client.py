"""Attach to a run's SSE stream on any hub: render it live (or replay it) and return its RunResult.

``attach(url)`` reads ``.../threads/{tid}/stream/{rid}`` with httpx, decodes
frames in either framing (OpenAI's or NEAR's legacy, detected per frame),
folds the events through the same reducer and view as a live run, and
returns the same :class:`~nearnb.runs.RunResult`.

Robustness rules (see jupyter-streaming-notes §C):

* the status is checked before anything is parsed, so 401 reads as
  "unauthorized" and 404 as "run not found", never as a content-type error;
* a dropped connection, a read timeout, a 5xx or a stream that ends before
  ``done`` is retried with ``Last-Event-ID`` after the server's ``retry:``
  delay, doubling each time (with jitter), at most ``max_retries`` times in a
  row; a 4xx, a wrong content type, a malformed frame or a finished stream is
  final;
* events already applied (``seq`` not above the last) are skipped, so a
  resume shows every delta exactly once;
* the read timeout (45 s) outlasts the hub's 15 s keepalive.

Every failure raises an :class:`AttachError` whose ``result`` holds what
arrived before it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from ..events import TERMINAL_EVENTS, Event
from ..reducer import RunState
from .sse import RETRY_MS, SSEDecoder, SSEProtocolError, read_frame

log = logging.getLogger(__name__)

READ_TIMEOUT = 45.0
MAX_RETRIES = 6
MAX_DELAY = 30.0
_STREAM_PATH = re.compile(r"/threads/(?P<tid>[^/?#]+)/stream/(?P<rid>[^/?#]+)/?$")


class AttachError(RuntimeError):
    """Attaching failed. ``result`` is the RunResult of what arrived; ``status`` the HTTP status."""

    def __init__(self, message: str, *, result: Any = None, status: int | None = None) -> None:
        super().__init__(message)
        self.result = result
        self.status = status


class Unauthorized(AttachError):
    """401/403: the hub wants a (different) token."""


class RunNotFound(AttachError):
    """404 (or 410: the run's event log has expired)."""


class StreamProtocolError(AttachError):
    """The hub answered, but not with a valid event stream."""


class ConnectionLost(AttachError):
    """The stream kept failing after every retry."""


def stream_url(
    url: str, thread_id: str | None = None, run_id: str | None = None
) -> tuple[str, str, str]:
    """``(full stream url, thread id, run id)`` from a stream URL or a hub URL plus ids."""
    parts = httpx.URL(url)
    match = _STREAM_PATH.search(parts.path)
    if match:
        tid, rid = match["tid"], match["rid"]
        if (thread_id and thread_id != tid) or (run_id and run_id != rid):
            raise ValueError(f"{url} names thread {tid} / run {rid}, not {thread_id} / {run_id}")
        return url, tid, rid
    if not thread_id or not run_id:
        raise ValueError(
            f"{url} is not a .../threads/<thread>/stream/<run> URL; pass thread_id= and run_id="
        )
    base = str(parts.copy_with(query=None, fragment=None)).rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return f"{base}/threads/{thread_id}/stream/{run_id}", thread_id, run_id


# ------------------------------------------------------------------ session


class _Session:
    """The protocol, without I/O: headers, status checks, frames to events, pacing, retries."""

    def __init__(
        self,
        url: str,
        thread_id: str,
        run_id: str,
        *,
        token: str | None,
        speed: float | None,
        display: Any,
        show_streaming_message: bool,
        max_retries: int,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive (None replays instantly)")
        self.url, self.thread_id, self.run_id = url, thread_id, run_id
        self.token = token
        self.speed = speed
        self.display = display
        self.show_streaming_message = show_streaming_message
        self.max_retries = max_retries
        self.state = RunState()
        self.events: list[Event] = []
        self.renderer: Any = None
        self.numbered = False  # the server sends ids (a nearnb hub does; NEAR's did not)
        self.local_seq = 0
        self.finished = False
        self.retry_ms = RETRY_MS
        self.failures = 0
        self._t0: tuple[float, float] | None = None  # (first event's at, wall clock then)

    # ------------------------------------------------------------- requests

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.numbered and self.state.last_seq:
            headers["Last-Event-ID"] = str(self.state.last_seq)
        return headers

    def check(self, response: httpx.Response, body: str) -> bool:
        """Judge a response before parsing: True to read it, False when the stream is over.

        Raises for everything else: 5xx as :class:`ConnectionLost` (retried by
        the caller), the rest as final errors.
        """
        status = response.status_code
        if status == 204:
            return False
        if status >= 400:
            detail = _error_detail(body) or response.reason_phrase
            if status in (401, 403):
                raise Unauthorized(f"unauthorized: {detail}", status=status)
            if status in (404, 410):
                raise RunNotFound(f"run not found: {self.run_id} ({detail})", status=status)
            if status >= 500:
                raise ConnectionLost(f"hub error {status}: {detail}", status=status)
            raise AttachError(f"hub refused the stream ({status}): {detail}", status=status)
        content_type = response.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            raise StreamProtocolError(
                f"{self.url} answered {status} with content type {content_type!r}, "
                "not an event stream (is this a hub stream URL?)",
                status=status,
            )
        self.local_seq = 0
        return True

    # --------------------------------------------------------------- frames

    def receive(self, frame: Any) -> Event | None:
        """One decoded frame -> the Event to apply (None: a duplicate or nothing new)."""
        if frame.retry is not None:
            self.retry_ms = frame.retry
        try:
            decoded = read_frame(frame)
        except SSEProtocolError as exc:
            raise StreamProtocolError(str(exc)) from None
        self.local_seq += 1
        if decoded.seq is not None:
            self.numbered = True
            seq = decoded.seq
        else:
            seq = self.local_seq  # the server replays from the start on each connection
        if seq <= self.state.last_seq:
            return None
        return Event.model_construct(
            seq=seq,
            event=decoded.name,
            data=decoded.data,
            run_id=self.run_id,
            thread_id=self.thread_id,
            at=decoded.at if decoded.at is not None else time.time(),
        )

    def delay(self, event: Event) -> float:
        """Seconds to wait before showing ``event`` to replay at ``speed``."""
        if self.speed is None:
            return 0.0
        wall = time.monotonic()
        if self._t0 is None:
            self._t0 = (event.at, wall)
            return 0.0
        due = self._t0[1] + (event.at - self._t0[0]) / self.speed
        return max(0.0, due - wall)

    def apply(self, event: Event) -> None:
        if not self.state.apply(event):
            return
        self.events.append(event)
        self.failures = 0  # events flow again: the retry budget is whole again
        if self.renderer is None and self.display is not None:
            self.renderer = _open_view(self.display, event, self.show_streaming_message)
        if self.renderer is not None:
            try:
                self.renderer(event)
            except Exception:  # a broken view must not lose the stream
                log.exception("nearnb: attach renderer failed")
        if event.event == "done" or (event.event in TERMINAL_EVENTS and not self.numbered):
            # NEAR's hub never sent done nor closed the stream: its terminal event is the end.
            self.finished = True

    # -------------------------------------------------------------- retries

    def backoff(self, error: AttachError) -> float:
        """Seconds before the next attempt, or raise ``error`` when retries are spent."""
        self.failures += 1
        if self.failures > self.max_retries:
            raise error
        base = self.retry_ms / 1000 * 2 ** (self.failures - 1)
        return min(base, MAX_DELAY) * random.uniform(0.8, 1.2)

    def result(self, error: str | None = None) -> Any:
        from ..runs import RunResult

        result = RunResult.from_state(self.state, list(self.events))
        result.thread_id = result.thread_id or self.thread_id
        result.run_id = result.run_id or self.run_id
        if error and not result.error:
            result.error = error
        return result

    def fail(self, error: AttachError) -> AttachError:
        """Attach what arrived to ``error`` and show it in the view."""
        error.result = self.result(str(error))
        self.close_view(error.result)
        return error

    def close_view(self, result: Any) -> None:
        if self.renderer is not None and hasattr(self.renderer, "finish"):
            try:
                self.renderer.finish(result)
            except Exception:
                log.exception("nearnb: attach renderer failed to finish")


def _error_detail(body: str) -> str:
    import json

    try:
        payload = json.loads(body)
    except ValueError:
        return body.strip()[:200]
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(payload, dict) and payload.get("detail"):
        return str(payload["detail"])
    return body.strip()[:200]


def _open_view(display: Any, first: Event, show_streaming_message: bool) -> Any:
    """A renderer for the attached run: the same view a live run uses.

    ``display`` may already be a renderer (callable with ``finish``), e.g. the
    CLI's terminal renderer; ``None`` renders nothing.
    """
    if callable(display) and hasattr(display, "finish"):
        return display
    try:
        from ..view import open_view
    except ImportError:  # views not installed in this checkout: return the result only
        return None
    run = (
        first.data if first.event.startswith("thread.run.") and isinstance(first.data, dict) else {}
    )
    return open_view(
        display,
        agent_name=str(run.get("assistant_id") or ""),
        show_streaming_message=show_streaming_message,
        model=str(run.get("model") or ""),
    )


def _timeout(read_timeout: float) -> httpx.Timeout:
    return httpx.Timeout(10.0, read=read_timeout)


_RETRYABLE = (httpx.TransportError,)


# --------------------------------------------------------------------- sync


def attach(
    url: str,
    *,
    thread_id: str | None = None,
    run_id: str | None = None,
    token: str | None = None,
    speed: float | None = None,
    display: Any = "auto",
    show_streaming_message: bool = True,
    max_retries: int = MAX_RETRIES,
    read_timeout: float = READ_TIMEOUT,
    client: httpx.Client | None = None,
) -> Any:
    """Follow (or replay) a run from a hub and return its ``RunResult``.

    ``url``: ``http://127.0.0.1:8081/v1/threads/<tid>/stream/<rid>``, or a hub
    URL with ``thread_id`` and ``run_id``. ``speed``: ``None`` shows a
    finished run at once, ``1.0`` at its original pace, ``4.0`` four times
    faster. ``display``: ``"auto"`` (the notebook view), another
    :func:`nearnb.view.open_view` choice, a renderer, or ``None``.
    """
    full, tid, rid = stream_url(url, thread_id, run_id)
    session = _Session(
        full,
        tid,
        rid,
        token=token,
        speed=speed,
        display=display,
        show_streaming_message=show_streaming_message,
        max_retries=max_retries,
    )
    owned = client is None
    http = client or httpx.Client(timeout=_timeout(read_timeout))
    try:
        while not session.finished:
            try:
                _read_once(http, session)
                if not session.finished:
                    raise ConnectionLost("stream ended before its done event")
            except ConnectionLost as exc:
                time.sleep(session.backoff(exc))
            except _RETRYABLE as exc:
                error = ConnectionLost(f"connection to {full} lost: {type(exc).__name__}: {exc}")
                time.sleep(session.backoff(error))
    except AttachError as exc:
        raise session.fail(exc) from None
    except KeyboardInterrupt:
        session.close_view(session.result("interrupted"))
        raise
    finally:
        if owned:
            http.close()
    result = session.result()
    session.close_view(result)
    return result


def _read_once(http: httpx.Client, session: _Session) -> None:
    with http.stream("GET", session.url, headers=session.headers()) as response:
        body = response.read().decode("utf-8", "replace") if response.status_code >= 300 else ""
        if not session.check(response, body):
            session.finished = True
            return
        decoder = SSEDecoder()
        for text in response.iter_text():
            for frame in decoder.feed(text):
                event = session.receive(frame)
                if event is None:
                    continue
                pause = session.delay(event)
                if pause:
                    time.sleep(pause)
                session.apply(event)
                if session.finished:
                    return


# -------------------------------------------------------------------- async


async def attach_async(
    url: str,
    *,
    thread_id: str | None = None,
    run_id: str | None = None,
    token: str | None = None,
    speed: float | None = None,
    display: Any = "auto",
    show_streaming_message: bool = True,
    max_retries: int = MAX_RETRIES,
    read_timeout: float = READ_TIMEOUT,
    client: httpx.AsyncClient | None = None,
) -> Any:
    """:func:`attach` for an event loop (a notebook cell can ``await`` it)."""
    full, tid, rid = stream_url(url, thread_id, run_id)
    session = _Session(
        full,
        tid,
        rid,
        token=token,
        speed=speed,
        display=display,
        show_streaming_message=show_streaming_message,
        max_retries=max_retries,
    )
    owned = client is None
    http = client or httpx.AsyncClient(timeout=_timeout(read_timeout))
    try:
        while not session.finished:
            try:
                await _aread_once(http, session)
                if not session.finished:
                    raise ConnectionLost("stream ended before its done event")
            except ConnectionLost as exc:
                await asyncio.sleep(session.backoff(exc))
            except _RETRYABLE as exc:
                error = ConnectionLost(f"connection to {full} lost: {type(exc).__name__}: {exc}")
                await asyncio.sleep(session.backoff(error))
    except AttachError as exc:
        raise session.fail(exc) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        session.close_view(session.result("interrupted"))
        raise
    finally:
        if owned:
            await http.aclose()
    result = session.result()
    session.close_view(result)
    return result


async def _aread_once(http: httpx.AsyncClient, session: _Session) -> None:
    async with http.stream("GET", session.url, headers=session.headers()) as response:
        if response.status_code >= 300:
            body = (await response.aread()).decode("utf-8", "replace")
        else:
            body = ""
        if not session.check(response, body):
            session.finished = True
            return
        decoder = SSEDecoder()
        async for text in response.aiter_text():
            for frame in decoder.feed(text):
                event = session.receive(frame)
                if event is None:
                    continue
                pause = session.delay(event)
                if pause:
                    await asyncio.sleep(pause)
                session.apply(event)
                if session.finished:
                    return


Renderer = Callable[[Event], None]
