"""SSE wire format of the hub: encoding frames, and reading decoded frames back as events.

Pure functions, no I/O, so the server, the attach client and the tests share
one definition of the wire. Parsing the event stream itself (lines, fields,
``retry:``, comments) is httpx-sse's job: :func:`read_frame` takes what
``httpx_sse.EventSource(response).iter_sse()`` yields. :class:`FrameBounds`
watches the bytes on their way to httpx-sse, because httpx-sse buffers a line,
and an event's data lines, without limit.

Two framings of the same :class:`~nearnb.events.Event`:

``official`` (OpenAI Assistants, the default)::

    id: 17
    event: thread.message.delta
    data: {"id":"msg_...","object":"thread.message.delta","delta":{...}}

``near`` (NEAR AI hub legacy, ``?framing=near``): no ``event:`` line, the name
travels inside the data, which is what NEAR's web UI and old clients parse::

    id: 17
    data: {"event":"thread.message.delta","data":{...}}

Both end with a ``done`` frame (official: ``event: done`` / ``data: [DONE]``;
legacy: ``data: {"event":"done","data":"[DONE]"}``, still valid JSON for
clients that ``JSON.parse`` every frame).

**Timing (opt-in, ``?timing=1``).** A replay at the original pace needs each
event's emit time. It is not on the default wire, which stays exactly what
OpenAI clients and browsers expect; a client that asks with ``?timing=1``
gets one extra key, ``"nearnb_at": <emit time, float seconds>``, in each
event's data object (in the ``near`` framing, in the inner ``data`` object,
not the envelope)::

    id: 17
    event: thread.message.delta
    data: {"id":"msg_...","object":"thread.message.delta","delta":{...},"nearnb_at":1718000000.1}

The ``done`` frame has an emit time too (a replayed run's elapsed time runs
to it), and ``[DONE]`` has no room for one: on a timed stream its data is
``{"nearnb_at": ...}`` instead (``event: done`` / legacy ``"event":"done"``
still mark it). ``nearnb_at`` is spliced into the stored JSON text (no
decode/re-encode), and :func:`read_frame` pops it again, so the decoded data
is exactly the stored object. A hub that ignores ``timing`` (NEAR's) sends no
times; the attach client then uses receipt times. The key name is reserved:
an event object of its own with a ``nearnb_at`` key would lose it on a timed
stream.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Iterator
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
#: The key ``?timing=1`` adds to each event's data object: the producer's emit time.
TIMING_KEY = "nearnb_at"
#: Values of the ``timing`` query parameter.
TIMINGS: tuple[str, ...] = ("0", "1")


#: The most digits an id may have: the hub numbers events with SQLite's 64-bit integers.
MAX_ID_DIGITS = 19


class SSEProtocolError(ValueError):
    """A frame that does not follow the hub's SSE format; the message quotes it."""


class SSELimitError(SSEProtocolError):
    """A line or an event outgrew its limit; ``limit`` names it, ``value`` is its size in bytes."""

    def __init__(self, message: str, *, limit: str, value: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value


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


def with_timing(data: str, at: float) -> str:
    """The JSON text of an object with ``"nearnb_at": at`` added, by splicing before its ``}``.

    Anything that is not an object's text is returned as it is.
    """
    if not data.endswith("}") or not data.startswith("{"):
        return data
    body = data[:-1].rstrip()
    comma = "" if body.endswith("{") else ","
    return f'{body}{comma}"{TIMING_KEY}":{at!r}}}'  # repr: the float round-trips


def encode_row(row: Row, framing: Framing = "official", timing: bool = False) -> bytes:
    """One event as an SSE frame (``done`` included), from its JSON text without re-parsing.

    ``timing``: add the emit time to the data object (see the module docstring).
    """
    seq, name, data, at = row
    head = f"id: {seq}\nevent: {name}\n" if framing == "official" else f"id: {seq}\n"
    if timing:
        data = with_timing("{}" if name == "done" else data, at)
    elif name == "done":
        data = f'"{DONE_DATA}"' if framing == "near" else DONE_DATA
    if framing == "near":
        data = f'{{"event":"{name}","data":{data}}}'
    return f"{head}data: {data}\n\n".encode()


def encode_event(event: Event, framing: Framing = "official", timing: bool = False) -> bytes:
    """One event as an SSE frame (``done`` included)."""
    return encode_row(event_row(event), framing, timing)


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


# ------------------------------------------------------------ frame -> event


@dataclass(frozen=True)
class Decoded:
    """What one frame means: event name, payload, sequence, emit time, framing.

    ``at`` is the frame's ``nearnb_at`` (``None`` when the server sent none).
    """

    name: str
    data: Any
    seq: int | None
    at: float | None
    framing: Framing


def describe(sse: Any) -> str:
    """An httpx-sse event re-serialised and shortened, for error messages."""
    parts = [f"id: {sse.id}"] if sse.id else []
    if sse.event != "message":
        parts.append(f"event: {sse.event}")
    if sse.data:
        parts.append(f"data: {sse.data}")
    text = " | ".join(parts) or "(empty frame)"
    return text if len(text) <= 200 else text[:197] + "..."


def read_frame(sse: Any, previous_id: str = "") -> Decoded | None:
    """Interpret one event from httpx-sse (``ServerSentEvent``), in either framing.

    The framing is detected from the frame itself. ``previous_id``: the id of
    the event before it on the same connection.

    Returns ``None`` for an event with no data and no event name: httpx-sse
    dispatches those for ``id:``- or ``retry:``-only frames and for any blank
    line once an id was seen; they carry nothing to apply.

    Raises :class:`SSEProtocolError` naming what is wrong: an ``event:`` with
    no data, data that is not JSON, an event name outside the OpenAI
    Assistants vocabulary, a non-numeric id or one of more than 19 digits (no
    hub numbers that far, and ``int()`` refuses 4,300), a frame without an id
    of its own in a numbered stream, a ``nearnb_at`` that is not a finite number.

    httpx-sse reports a missing ``event:`` as ``"message"``, so an explicit
    ``event: message`` with no data is skipped like an empty frame; and it
    reports the last id seen, not the frame's own, so a frame without an id
    after a numbered one is recognised by its repeating ``previous_id`` (the
    hub's ids strictly increase on a connection).
    """
    named = sse.event != "message"
    if not sse.data:
        if not named:
            return None
        raise SSEProtocolError(f"malformed frame: event without data: {describe(sse)}")
    seq = _seq(sse, previous_id)
    if not named and sse.data == DONE_DATA:
        return Decoded("done", DONE_DATA, seq, None, "official")
    if named and sse.event == "done":  # [DONE], or {"nearnb_at": ...} on a timed stream
        return Decoded("done", DONE_DATA, seq, _done_at(sse), "official")
    try:
        payload = json.loads(sse.data)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the stack
        raise SSEProtocolError(f"frame data is not JSON: {describe(sse)}") from None
    if named:
        name, data, framing = sse.event, payload, "official"
    elif isinstance(payload, dict) and "event" in payload and "data" in payload:
        name, data, framing = payload["event"], payload["data"], "near"
    else:
        raise SSEProtocolError(
            "malformed frame: no event name, and the data is not NEAR's "
            f'{{"event", "data"}} envelope: {describe(sse)}'
        )
    if name == "done":
        return Decoded("done", DONE_DATA, seq, _at(data, sse), framing)
    if not isinstance(name, str) or name not in EVENT_NAMES:
        raise SSEProtocolError(f"unknown event name {name!r}: {describe(sse)}")
    if not isinstance(data, dict):
        raise SSEProtocolError(f"malformed frame: {name} data is not an object: {describe(sse)}")
    return Decoded(name, data, seq, _at(data, sse), framing)


def _at(data: Any, sse: Any) -> float | None:
    """Pop ``nearnb_at`` from a data object: the emit time, or None when not sent."""
    at = data.pop(TIMING_KEY, None) if isinstance(data, dict) else None
    if at is None:
        return None
    try:
        value = float(at) if isinstance(at, int | float) and not isinstance(at, bool) else math.nan
    except OverflowError:  # an integer past float's range
        value = math.nan
    if not math.isfinite(value):  # a pace computed from it would sleep forever, or fail
        raise SSEProtocolError(
            f"malformed frame: {TIMING_KEY} {_clip(repr(at))} is not a time: {describe(sse)}"
        )
    return value


def _done_at(sse: Any) -> float | None:
    """The emit time of an official ``done`` frame (any data but a JSON object has none)."""
    if not sse.data.startswith("{"):
        return None
    try:
        payload = json.loads(sse.data)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the stack
        raise SSEProtocolError(f"frame data is not JSON: {describe(sse)}") from None
    return _at(payload, sse)


def _seq(sse: Any, previous_id: str) -> int | None:
    if not sse.id:
        return None
    if not (sse.id.isascii() and sse.id.isdigit()):
        raise SSEProtocolError(
            f"malformed frame: id {_clip(repr(sse.id))} is not a sequence number: {describe(sse)}"
        )
    if len(sse.id) > MAX_ID_DIGITS:  # int() would refuse past 4,300 digits with a bare ValueError
        raise SSEProtocolError(
            f"malformed frame: id of {len(sse.id):,} digits is not a sequence number "
            f"(at most {MAX_ID_DIGITS}): {describe(sse)}"
        )
    if sse.id == previous_id:
        raise SSEProtocolError(
            f"malformed frame: no id of its own after id {previous_id} "
            f"(ids must increase): {describe(sse)}"
        )
    return int(sse.id)


def _clip(text: str, limit: int = 40) -> str:
    """``text`` cut to about ``limit`` characters: error messages quote hostile input."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


# ------------------------------------------------------------------ bounds

_EOL = re.compile(rb"\r\n|\r|\n")  # the SSE line ends, as httpx-sse splits them


class FrameBounds:
    """Watches an event stream's bytes before httpx-sse buffers them: lines and events stay bounded.

    httpx-sse keeps a line until its end arrives and an event's data lines
    until the blank line that dispatches it, with no limit, so one endless
    line or endless ``data:`` lines would take all memory. :meth:`check`
    sees every chunk first (after content decoding, so a gzip bomb counts at
    its real size) and raises :class:`SSELimitError` once a line exceeds
    ``max_line_bytes`` or the lines of one event (comments excepted: httpx-sse
    drops them) exceed ``max_event_bytes``. It only finds line ends; fields
    are httpx-sse's business. Memory is then at most about one line, one
    event and one chunk.
    """

    def __init__(self, max_line_bytes: int, max_event_bytes: int) -> None:
        if max_line_bytes <= 0 or max_event_bytes <= 0:
            raise ValueError("max_line_bytes and max_event_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self.max_event_bytes = max_event_bytes
        self._line = 0  # bytes of the unfinished line so far
        self._comment = False  # the unfinished line starts with ":"
        self._event = 0  # bytes of the event's lines so far
        self._cr = False  # the last chunk ended with "\r": a "\n" next ends the same line

    def check(self, chunk: bytes) -> bytes:
        """``chunk`` unchanged once its lines keep the limits; else :class:`SSELimitError`."""
        if not chunk:
            return chunk
        pos = 1 if self._cr and chunk.startswith(b"\n") else 0
        self._cr = chunk.endswith(b"\r")
        for end in _EOL.finditer(chunk, pos):
            self._grow(chunk, pos, end.start())
            self._end_line()
            pos = end.end()
        self._grow(chunk, pos, len(chunk))
        return chunk

    def _grow(self, chunk: bytes, start: int, stop: int) -> None:
        if stop <= start:
            return
        if self._line == 0:
            self._comment = chunk[start : start + 1] == b":"
        self._line += stop - start
        if self._line > self.max_line_bytes:
            raise SSELimitError(
                f"a line of the event stream is longer than max_line_bytes={self.max_line_bytes:,}",
                limit="max_line_bytes",
                value=self._line,
            )

    def _end_line(self) -> None:
        size, self._line = self._line, 0
        if size == 0:  # a blank line dispatches the event
            self._event = 0
            return
        if self._comment:
            return
        self._event += size
        if self._event > self.max_event_bytes:
            raise SSELimitError(
                f"an event of the stream is larger than max_event_bytes={self.max_event_bytes:,}",
                limit="max_event_bytes",
                value=self._event,
            )


class Inflater:
    """One gzip or deflate layer of a body, inflated at most ``step`` bytes at a time.

    httpx inflates a whole network read at once, and 64 KiB of a gzip bomb is
    64 MB; here the unread input waits in zlib's ``unconsumed_tail`` instead.
    """

    def __init__(self, encoding: str, step: int) -> None:
        self.encoding, self.step = encoding, step
        gzip = encoding in ("gzip", "x-gzip")
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)
        self._first = not gzip  # "deflate" is sometimes raw deflate: retry so, as httpx does

    def __call__(self, data: bytes) -> Iterator[bytes]:
        while data:
            try:
                out = self._zlib.decompress(data, self.step)
            except zlib.error as exc:
                if not self._first:
                    raise SSEProtocolError(f"corrupt {self.encoding} body: {exc}") from None
                self._first, self._zlib = False, zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            self._first = False
            data = self._zlib.unconsumed_tail
            if out:
                yield out

    def flush(self) -> bytes:
        return self._zlib.flush()
