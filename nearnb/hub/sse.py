"""SSE wire format of the hub: encoding frames, decoding them, reading them back as events.

Pure functions and one incremental decoder, no I/O, so the server, the attach
client and the tests share one definition of the wire.

Two framings of the same :class:`~nearnb.events.Event`:

``official`` (OpenAI Assistants, the default)::

    id: 17
    event: thread.message.delta
    at: 1718000000.123456
    data: {"id":"msg_...","object":"thread.message.delta","delta":{...}}

``near`` (NEAR AI hub legacy, ``?framing=near``): no ``event:`` line, the name
travels inside the data, which is what NEAR's web UI and old clients parse::

    id: 17
    at: 1718000000.123456
    data: {"event":"thread.message.delta","data":{...}}

Both end with a ``done`` frame (official: ``event: done`` / ``data: [DONE]``;
legacy: ``data: {"event":"done","data":"[DONE]"}``, still valid JSON for
clients that ``JSON.parse`` every frame).

``at:`` (the producer's emit time) is a nearnb extension so a replay can
reproduce the original timing. The SSE spec tells every parser to ignore
unknown fields, and browsers, httpx-sse and openai-python all do; that is why
the attach client decodes with :class:`SSEDecoder` here rather than httpx-sse's
decoder, which drops the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from ..events import EVENT_NAMES, Event

Framing = Literal["official", "near"]
FRAMINGS: tuple[str, ...] = ("official", "near")

#: Reconnection delay suggested to clients (``retry:``), in milliseconds.
RETRY_MS = 1000
#: Seconds between keepalive comments on an idle stream.
KEEPALIVE_SECONDS = 15.0
DONE_DATA = "[DONE]"


class SSEProtocolError(ValueError):
    """A frame that does not follow the hub's SSE format; the message quotes it."""


# ------------------------------------------------------------------ encoding


#: One stored or pushed event as the hub keeps it: (seq, name, data as JSON text, at).
Row = tuple[int, str, str, float]


def to_json(data: Any) -> str:
    """``data`` as the store writes it, so a pushed event and its stored copy are the same bytes.

    ASCII-only: JSON escapes CR, LF and every non-ASCII character (U+2028
    included), so one object is always exactly one ``data:`` line.
    """
    return json.dumps(data, separators=(",", ":"))


def event_row(event: Event) -> Row:
    return (event.seq, event.event, to_json(event.data), event.at)


def encode_row(row: Row, framing: Framing = "official") -> bytes:
    """One event as an SSE frame (``done`` included), from its JSON text without re-parsing."""
    seq, name, data, at = row
    head = f"id: {seq}\nevent: {name}\n" if framing == "official" else f"id: {seq}\n"
    if name == "done":
        data = f'"{DONE_DATA}"' if framing == "near" else DONE_DATA
    if framing == "near":
        data = f'{{"event":"{name}","data":{data}}}'
    return f"{head}at: {at!r}\ndata: {data}\n\n".encode()  # repr: the float round-trips


def encode_event(event: Event, framing: Framing = "official") -> bytes:
    """One event as an SSE frame (``done`` included)."""
    return encode_row(event_row(event), framing)


def retry_field(ms: int = RETRY_MS) -> bytes:
    """A ``retry:`` line to prepend to a frame.

    Never sent as a frame of its own: openai-python json-decodes every frame it
    is handed, and a data-less frame would make it fail.
    """
    return f"retry: {int(ms)}\n".encode()


def keepalive_comment() -> bytes:
    """A comment line with no blank line after it.

    The blank line matters: httpx-sse and openai-python keep the last event id
    across frames and dispatch an empty event at any blank line once one was
    seen, so ``: ping\\n\\n`` (sse-starlette's default) makes openai-python
    ``json.loads("")`` and abort the stream at the first keepalive.
    """
    return b": keepalive\n"


# ------------------------------------------------------------------ decoding


@dataclass(frozen=True)
class Frame:
    """One dispatched SSE frame, fields as received (``None`` when absent)."""

    event: str | None = None
    data: str | None = None
    id: str | None = None
    retry: int | None = None
    at: str | None = None

    def describe(self) -> str:
        """The frame re-serialised and shortened, for error messages."""
        parts = [
            f"{k}: {v}"
            for k, v in (("id", self.id), ("event", self.event), ("data", self.data))
            if v is not None
        ]
        text = " | ".join(parts) or "(empty frame)"
        return text if len(text) <= 200 else text[:197] + "..."


class SSEDecoder:
    """Incremental WHATWG event-stream parser that also keeps the ``at:`` field.

    Feed it text as it arrives; it returns the complete frames. Lines end at
    CR, LF or CRLF only (never at U+2028, unlike ``str.splitlines``). A frame
    is returned if it had any ``event`` or ``data`` line (its ``id`` is the
    frame's own, not the inherited last id, so dedupe by id stays exact), so the caller can
    reject an ``event:`` with no data instead of silently dropping it as a
    browser would; ``id``/``retry``-only frames update :attr:`last_id` and
    :attr:`retry` and are not returned.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._started = False
        self._trailing_cr = False
        self._reset()
        self.last_id: str | None = None
        self.retry: int | None = None

    def _reset(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._at: str | None = None

    def feed(self, text: str) -> list[Frame]:
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._trailing_cr:
            # A CR at the end of the last chunk: a following LF belongs to it.
            text = text.removeprefix("\n")
            self._trailing_cr = False
        if not text:
            return []
        self._trailing_cr = text.endswith("\r")
        text = self._buffer + text
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        self._buffer = lines.pop()
        frames: list[Frame] = []
        for line in lines:
            frame = self._line(line)
            if frame is not None:
                frames.append(frame)
        return frames

    def flush(self) -> list[Frame]:
        """End of stream: an unterminated frame is discarded, as the spec says."""
        self._buffer = ""
        self._reset()
        return []

    def _line(self, line: str) -> Frame | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = self.last_id = value
        elif name == "retry":
            if value.isdigit():
                self._retry = self.retry = int(value)
        elif name == "at":
            self._at = value
        return None

    def _dispatch(self) -> Frame | None:
        if self._event is None and not self._data:
            self._reset()
            return None
        frame = Frame(
            event=self._event,
            data="\n".join(self._data) if self._data else None,
            id=self._id,
            retry=self._retry,
            at=self._at,
        )
        self._reset()
        return frame


# ------------------------------------------------------------ frame -> event


@dataclass(frozen=True)
class Decoded:
    """What one frame means: event name, payload, sequence, emit time, framing."""

    name: str
    data: Any
    seq: int | None
    at: float | None
    framing: Framing


def read_frame(frame: Frame) -> Decoded:
    """Interpret one frame in either framing (detected from the frame itself).

    Raises :class:`SSEProtocolError` naming what is wrong: data that is not
    JSON, an event name outside the OpenAI Assistants vocabulary, a non-numeric
    id, a frame with no data.
    """
    seq = _seq(frame)
    at = _at(frame)
    if frame.data is None:
        raise SSEProtocolError(f"malformed frame: event without data: {frame.describe()}")
    official = frame.event not in (None, "", "message")
    if (official and frame.event == "done") or (not official and frame.data == DONE_DATA):
        return Decoded("done", DONE_DATA, seq, at, "official")
    try:
        payload = json.loads(frame.data)
    except ValueError:
        raise SSEProtocolError(f"frame data is not JSON: {frame.describe()}") from None
    if official:
        name, data, framing = frame.event, payload, "official"
    elif isinstance(payload, dict) and "event" in payload and "data" in payload:
        name, data, framing = payload["event"], payload["data"], "near"
    else:
        raise SSEProtocolError(
            "malformed frame: no event name, and the data is not NEAR's "
            f'{{"event", "data"}} envelope: {frame.describe()}'
        )
    if name == "done":
        return Decoded("done", DONE_DATA, seq, at, framing)
    if not isinstance(name, str) or name not in EVENT_NAMES:
        raise SSEProtocolError(f"unknown event name {name!r}: {frame.describe()}")
    if not isinstance(data, dict):
        raise SSEProtocolError(f"malformed frame: {name} data is not an object: {frame.describe()}")
    return Decoded(name, data, seq, at, framing)


def _seq(frame: Frame) -> int | None:
    if frame.id in (None, ""):
        return None
    if not frame.id.isdigit():
        raise SSEProtocolError(f"malformed frame: id {frame.id!r} is not a sequence number")
    return int(frame.id)


def _at(frame: Frame) -> float | None:
    if frame.at is None:
        return None
    try:
        return float(frame.at)
    except ValueError:
        raise SSEProtocolError(f"malformed frame: at {frame.at!r} is not a time") from None
