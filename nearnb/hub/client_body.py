"""The bodies attach reads: inflated in bounded steps, measured, capped (for :mod:`.client`).

Apart from the client so it stays about moving a stream; nothing here does I/O
but reading the response it is given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx

from .session import Session, StreamProtocolError, StreamTooLarge
from .sse import FrameBounds, Inflater, SSELimitError, SSEProtocolError

#: The most bytes one inflation step produces, so a compressed chunk cannot balloon at once.
INFLATE_STEP = 64 * 1024
#: The most bytes read of an error body (its message is all that is kept).
MAX_ERROR_BODY = 64 * 1024


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
