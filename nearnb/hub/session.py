"""The attach protocol without I/O: URLs, status checks, frames to events, pacing, retries, bounds.

:mod:`nearnb.hub.client` moves bytes (sync and async); everything it decides
is decided here, once, so both twins behave the same:

* the status is judged before anything is parsed, so 401 reads as
  "unauthorized" and 404 as "run not found", never as a content-type error;
* a 5xx, a dropped connection or a stream that ends before ``done`` is
  retried with ``Last-Event-ID`` after the server's ``retry:`` delay,
  doubling each time (with jitter), at most ``max_retries`` times in a row
  (the count restarts when events flow again); a 4xx, a wrong content type,
  a malformed frame or a finished stream is final;
* events already applied (``seq`` not above the last) are skipped, so a
  resume shows every delta exactly once; frames without ids (NEAR's hub,
  which replayed from the start on every connection) are numbered locally;
* ``speed`` paces a replay by the events' original emit times (``?timing=1``
  asks a nearnb hub for ``nearnb_at`` in each data object; it is popped and
  becomes ``Event.at``); a hub that sends none (NEAR's) is paced by receipt;
* bounds: a line over ``max_line_bytes`` (4 MiB; the hub sends an event as
  one line, and a ``thread.message.completed`` holds a whole answer) or an
  event over ``max_event_bytes`` (16 MiB), after gzip/deflate, is
  :class:`StreamTooLarge`, final (it would come again). ``idle_timeout`` (60 s)
  counts new events only, not bytes, keepalives or replayed ids; an idle link
  is :class:`IdleTimeout`, a :class:`ConnectionLost` retried like a dropped
  one (silence is what a stalled proxy looks like; a resume loses nothing),
  the retry budget bounding the wait to about ``(max_retries + 1) * idle_timeout``;
* 204 with nothing received: the hub has no events for the run,
  :class:`RunNotFound` (status 204), not an empty ``queued`` result. On a
  resume after the run's terminal event it is the normal end (``done`` lost).
  Without one, the stream ended before the run (a hub restarted after a crash
  does this) and ``in_progress`` would be a lie, so the client asks the hub
  (``GET .../threads/{tid}/runs/{rid}``, same token): an ended run's status,
  error and traceback become the result's, with the events that came (what
  the caller wants); a run not ended, or unreadable, raises
  :class:`StreamProtocolError` ("ended (204) before the run's end"): a guessed
  status would be worse than an error.

Frames are decoded by httpx-sse in :mod:`nearnb.hub.client`;
:meth:`Session.receive` takes its ``ServerSentEvent`` objects. Every failure
raises an :class:`AttachError` whose ``result`` is the
:class:`~nearnb.runs.RunResult` of what arrived before it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from typing import Any

import httpx

from ..events import TERMINAL_EVENTS, TERMINAL_STATUSES, Event, Message
from ..reducer import RunState
from .attach_errors import (
    _STREAM_PATH,
    AttachError,
    ConnectionLost,
    IdleTimeout,
    RunNotFound,
    StreamProtocolError,
    StreamTooLarge,
    Unauthorized,
    stream_url,
    timed_url,
)
from .sse import RETRY_MS, FrameBounds, SSEProtocolError, read_frame

__all__ = [
    "AttachError",
    "ConnectionLost",
    "IdleTimeout",
    "RunNotFound",
    "Session",
    "StreamProtocolError",
    "StreamTooLarge",
    "Unauthorized",
    "stream_url",
    "timed_url",
]

log = logging.getLogger("nearnb.hub.client")

MAX_DELAY = 30.0
#: Defaults of ``attach(max_line_bytes=, max_event_bytes=, idle_timeout=)``; see the docstring.
MAX_LINE_BYTES = 4 * 1024 * 1024
MAX_EVENT_BYTES = 16 * 1024 * 1024
IDLE_TIMEOUT = 60.0
#: Run statuses after which a run never changes (``requires_action`` waits for tool outputs).
ENDED = TERMINAL_STATUSES - {"requires_action"}
_MESSAGE_ENDS = ("thread.message.completed", "thread.message.incomplete")


class Session:
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
        max_line_bytes: int = MAX_LINE_BYTES,
        max_event_bytes: int = MAX_EVENT_BYTES,
        idle_timeout: float | None = IDLE_TIMEOUT,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive (None replays instantly)")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive (None waits forever)")
        FrameBounds(max_line_bytes, max_event_bytes)  # validates the limits now, not mid-stream
        self.max_line_bytes, self.max_event_bytes = max_line_bytes, max_event_bytes
        self.idle_timeout = idle_timeout
        self.url, self.thread_id, self.run_id = url, thread_id, run_id
        self.request_url = timed_url(url)
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
        self.stopped = False
        self.response: Any = None  # the open response, so stop() can close it
        self.previous_id = ""  # the last event id on this connection (httpx-sse inherits it)
        self._t0: tuple[float, float] | None = None  # (first event's at, wall clock then)
        self.idle_since = time.monotonic()  # the connection's start or its last new event
        self.settling = False  # a resume got 204 without the run's end: ask for the run
        self.hub_run: dict[str, Any] | None = None  # the run object asked for, once it had ended
        self.follower: Any = None  # nearnb.hub.follow.Children: the sub-agents' own attaches
        self.on_stop: Any = None  # the view's Stop, if not stop watching (nearnb.hub.remote)

    # ------------------------------------------------------------- requests

    def headers(self, stream: bool = True) -> dict[str, str]:
        """For the stream (``Last-Event-ID`` once events came), or for the run object."""
        # Only the encodings the client inflates in bounded steps (a gzip bomb stays small).
        accept = "text/event-stream" if stream else "application/json"
        headers = {
            "Accept": accept,
            "Accept-Encoding": "gzip, deflate",
            "Cache-Control": "no-store",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if stream and self.numbered and self.state.last_seq:
            headers["Last-Event-ID"] = str(self.state.last_seq)
        return headers

    def check(self, response: httpx.Response, body: str) -> bool:
        """Judge a response before parsing: True to read it, False when the stream is over.

        Raises for everything else: 5xx as :class:`ConnectionLost` (retried by
        the caller), the rest as final errors.
        """
        status = response.status_code
        if status == 204:
            return self._no_content()
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
        if "text/event-stream" not in content_type.partition(";")[0]:  # httpx-sse's own test
            raise StreamProtocolError(
                f"{self.url} answered {status} with content type {content_type!r}, "
                "not an event stream (is this a hub stream URL?)",
                status=status,
            )
        self.local_seq = 0
        self.previous_id = ""
        self.idle_since = time.monotonic()
        return True

    def idle_error(self) -> IdleTimeout | None:
        """The error ending this connection once no new event came for ``idle_timeout``."""
        idle = time.monotonic() - self.idle_since
        if self.idle_timeout is None or idle < self.idle_timeout:
            return None
        return IdleTimeout(
            f"no new event from {self.url} for {idle:.1f} s (idle_timeout={self.idle_timeout:g};"
            " bytes and keepalive comments do not count)"
        )

    # ------------------------------------------------------------------ 204

    def _no_content(self) -> bool:
        """204: the hub has nothing more to send. Raise, finish, or ask for the run (docstring)."""
        if not self.events:
            raise RunNotFound(
                f"the hub has no events for this run: {self.run_id} "
                "(204 No Content with nothing received)",
                status=204,
            )
        if not any(e.event in TERMINAL_EVENTS for e in self.events):
            self.settling = True
        return False

    @property
    def run_url(self) -> str:
        """The run object's URL on the same hub: ``.../threads/{tid}/runs/{rid}``."""
        parts = httpx.URL(self.url)
        match = _STREAM_PATH.search(parts.path)
        base = parts.path[: match.start()] if match else "/v1"
        path = f"{base}/threads/{self.thread_id}/runs/{self.run_id}"
        return str(parts.copy_with(path=path, query=None, fragment=None))

    def settle(self, status: int | None, body: str) -> None:
        """Judge the run object asked for after a 204 without the run's end (``status`` None:
        the request failed, ``body`` says why). Keeps an ended run; raises otherwise."""
        self.settling = False
        run: Any = None
        with contextlib.suppress(ValueError, RecursionError):
            run = json.loads(body) if status == 200 else None
        state = run.get("status") if isinstance(run, dict) else None
        if isinstance(state, str) and state in ENDED:
            log.warning(
                "nearnb: run %s's stream lacked its end; the hub says %s", self.run_id, state
            )
            self.hub_run = run
            return
        said = f"failed: {body}" if status is None else f"answered {status}: {_error_detail(body)}"
        if status == 200:
            said = f"says {repr(state)[:40]}" if state else "is not a run object"
        raise StreamProtocolError(
            f"the stream of run {self.run_id} ended (204) before the run's end; "
            f"GET {self.run_url} {said}",
            status=204,
        )

    # --------------------------------------------------------------- frames

    def receive(self, sse: Any) -> Event | None:
        """An ``httpx_sse.ServerSentEvent`` -> the Event to apply (None: a duplicate, or empty)."""
        if sse.retry is not None and sse.retry >= 0:  # httpx-sse takes any int, "-5" too
            self.retry_ms = min(sse.retry, int(MAX_DELAY * 1000))  # 10**4000 would overflow
        try:
            decoded = read_frame(sse, self.previous_id)
        except SSEProtocolError as exc:
            raise StreamProtocolError(str(exc)) from None
        self.previous_id = sse.id
        if decoded is None:  # an id- or retry-only frame, or an empty dispatch
            return None
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
            at=decoded.at if decoded.at is not None else time.time(),  # receipt time
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
        try:  # the reducer and RunResult trust their events' shapes; a foreign hub's may lie
            if not self.state.apply(event):
                return
            if event.event in _MESSAGE_ENDS and "content" in event.data:
                Message.model_validate(event.data)  # RunResult.from_state builds it later
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            raise StreamProtocolError(
                f"malformed {event.event} event {event.seq}: {detail}"
            ) from None
        self.events.append(event)
        self.failures = 0  # events flow again: the retry budget is whole again
        self.idle_since = time.monotonic()  # after any pacing pause: that wait is ours
        if self.renderer is None:
            stop = self.on_stop or self.stop
            self.renderer = _open_view(self.display, event, self.show_streaming_message, stop)
        if self.renderer is not None:
            try:
                self.renderer(event)
            except Exception:  # a broken view must not lose the stream
                log.exception("nearnb: attach renderer failed")
        if self.follower is not None:
            self.follower.see(event)  # a step naming a child: follow it (its own thread)
        if event.event == "done" or (event.event in TERMINAL_EVENTS and not self.numbered):
            # NEAR's hub never sent done nor closed the stream: its terminal event is the end.
            self.finished = True

    def stop(self) -> None:
        """Stop watching (the view's Stop button); the run itself goes on. Any thread."""
        self.stopped = True
        response = self.response
        if response is not None and hasattr(response, "close"):
            with contextlib.suppress(Exception):  # closing from another thread may race
                response.close()

    @property
    def over(self) -> bool:
        return self.finished or self.stopped

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
        if self.hub_run is not None:  # the run's end, asked for after a 204 (docstring)
            result.status = self.hub_run["status"]
            last_error = self.hub_run.get("last_error")
            if isinstance(last_error, dict) and last_error.get("message"):
                result.error = str(last_error["message"])
            metadata = self.hub_run.get("metadata")
            if isinstance(metadata, dict) and metadata.get("nearnb.traceback"):
                result.traceback = str(metadata["nearnb.traceback"])
        if error and not result.error:
            result.error = error
        return result

    def fail(self, error: AttachError) -> AttachError:
        """Attach what arrived to ``error`` and show it in the view."""
        error.result = self.result(str(error))
        self.close_view(error.result)
        return error

    def close_view(self, result: Any) -> None:
        if self.follower is not None:  # the children end first; the view shows them all
            result.children = self.follower.join(stop=self.stopped or not self.finished)
        if self.renderer is not None and hasattr(self.renderer, "finish"):
            try:
                self.renderer.finish(result)
            except Exception:
                log.exception("nearnb: attach renderer failed to finish")


def _error_detail(body: str) -> str:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return body.strip()[:200]
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(payload, dict) and payload.get("detail"):
        return str(payload["detail"])
    return body.strip()[:200]


def _open_view(display: Any, first: Event, show_streaming_message: bool, on_stop: Any) -> Any:
    """A renderer for the attached run: the same view a live run uses.

    Opened at the first event, on the caller's thread (where a notebook view
    must be displayed), so a URL that fails at once leaves no empty view.
    ``display`` is :func:`nearnb.view.open_view`'s choice (``None`` = auto,
    ``"none"`` = nothing) or a renderer already made (callable with
    ``finish``), such as the CLI's terminal renderer.
    """
    if callable(display) and hasattr(display, "finish"):
        getattr(display, "bind_stop", lambda stop: None)(on_stop)  # a sub-agent's feed
        return display
    from ..view import open_view

    is_run = first.event.startswith("thread.run.") and isinstance(first.data, dict)
    run = first.data if is_run else {}
    assistant = str(run.get("assistant_id") or "")
    parts = assistant.split("/")  # runs name agents local/<name>/<version>
    return open_view(
        display,
        agent_name=parts[1] if len(parts) == 3 and parts[0] == "local" else assistant,
        show_streaming_message=show_streaming_message,
        model=str(run.get("model") or ""),
        on_stop=on_stop,
    )
