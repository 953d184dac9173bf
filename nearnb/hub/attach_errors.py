"""What attaching can fail with, and the stream URLs it understands.

Apart from :mod:`nearnb.hub.session` (the protocol) so both the sync and the
async client, and callers catching errors, import them without the protocol.
Every :class:`AttachError` carries ``result``: the RunResult of what arrived.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

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


class StreamTooLarge(StreamProtocolError):
    """A line or an event outgrew its limit. ``limit`` names it (``"max_line_bytes"`` or
    ``"max_event_bytes"``); ``size`` is how many bytes it had reached."""

    def __init__(self, message: str, *, limit: str, size: int, result: Any = None) -> None:
        super().__init__(message, result=result)
        self.limit = limit
        self.size = size


class ConnectionLost(AttachError):
    """The stream kept failing after every retry."""


class IdleTimeout(ConnectionLost):
    """No new event for ``idle_timeout`` s on every retry (bytes and keepalives don't count)."""


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


def timed_url(url: str) -> str:
    """``url`` asking for the events' emit times (``timing=1``), its other parameters kept."""
    return str(httpx.URL(url).copy_set_param("timing", "1"))


# ------------------------------------------------------------------ session
