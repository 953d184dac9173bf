"""How a run's event log lies in the store's ``events`` table: one row per event, except
runs of text deltas, which share a row.

A streamed reply is one ``thread.message.delta`` per chunk, tens of thousands a run,
and as one row each they were most of the store sink's time (SQLite alone took 0.11 s
to insert 50,000 rows, about as long as reading them off the network). So consecutive
compact text deltas of one message that arrive in the same batch (see
:mod:`nearnb.compactdelta`) are written as one row:

* ``seq`` is the first delta's number and ``last_seq`` the last's (a row of one event
  has ``last_seq = seq``, or NULL in tables written before the column existed);
* ``event`` is :data:`DELTAS` (never an event name: it cannot leak as one);
* ``data`` is ``[message_id, index, [text, ...], ats]`` as compact JSON: each delta's
  text in order, and ``ats`` their emit times as base64 of little-endian float64s (exact,
  and ten times cheaper to write than JSON numbers, whose ``repr`` was most of the
  cost of encoding a row); ``at`` is the first delta's time.

Readers never see the difference: :func:`expand_rows` and :func:`expand_events` turn rows
back into one entry per event, byte for byte the JSON a row per event held. Numbering is
unchanged, so ``Last-Event-ID``, ``after`` and the REST objects mean what they meant, and
the primary key ``(run_id, seq)`` still makes two writers that both append after the same
event collide (each one's first row starts at that event + 1).

A batch of one delta, a slow model's usual batch, is still a plain row.
"""

from __future__ import annotations

import base64
import json
import sys
from array import array
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring_ascii as _json_str  # type: ignore[attr-defined]
from typing import Any

from .compactdelta import DELTA_JSON_TAIL, compact_json, delta_json, delta_json_head
from .events import Event
from .eventseq import DELTA, EventSeq, event_of, raw_entries
from .logcolumns import Stretch

#: The ``event`` column of a row holding several text deltas.
DELTAS = "nearnb.deltas"
#: Most deltas in one row: a reader resuming mid-row decodes at most this many it skips.
MAX_DELTAS_PER_ROW = 256

#: A row as written: ``(run_id, seq, last_seq, event, data JSON, thread_id, at)``.
LogRow = tuple[str, int, int, str, str, str, float]
#: A row as read: ``(seq, last_seq or None, event, data JSON, thread_id, at)``.
ReadRow = tuple[int, int | None, str, str, str, float]

_SWAP = sys.byteorder != "little"


def _pack_times(ats: list[float] | array[float]) -> str:
    packed = array("d", ats)
    if _SWAP:
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _unpack_times(text: str) -> list[float]:
    packed = array("d")
    packed.frombytes(base64.b64decode(text, validate=True))
    if _SWAP:
        packed.byteswap()
    return packed.tolist()


def log_rows(events: Iterable[Event]) -> list[LogRow]:
    """The rows that append ``events`` (one batch, in order) to their logs."""
    stretch = events.stretch() if isinstance(events, EventSeq) else None
    if stretch is not None:
        return _stretch_rows(stretch)  # a fast stream's usual batch: no loop per delta
    entries = raw_entries(events)
    rows: list[LogRow] = []
    texts: list[str] = []
    ats: list[float] = []
    first: tuple[Any, ...] | None = None  # the first compact delta of the pending run

    def flush() -> None:
        assert first is not None
        seq, _, message_id, _, index, run_id, thread_id = first
        rows.append(_deltas_row(run_id, thread_id, seq, message_id, index, texts, ats))

    for entry in entries:
        if type(entry) is not tuple and (packed := entry.text_delta) is not None:
            entry = (entry.seq, entry.at, *packed, entry.run_id, entry.thread_id)
        if type(entry) is tuple:  # (seq, at, message_id, text, index, run_id, thread_id)
            if (
                first is not None
                and entry[0] == first[0] + len(texts)
                and entry[2] == first[2]
                and entry[4] == first[4]
                and entry[5] == first[5]
                and len(texts) < MAX_DELTAS_PER_ROW
            ):
                texts.append(entry[3])
                ats.append(entry[1])
                continue
            if first is not None:
                flush()
            first, texts, ats = entry, [entry[3]], [entry[1]]
            continue
        if first is not None:
            flush()
            first = None
        e = entry
        rows.append((e.run_id, e.seq, e.seq, e.event, e.data_json(), e.thread_id, e.at))
    if first is not None:
        flush()
    return rows


def _stretch_rows(stretch: Stretch) -> list[LogRow]:
    """What :func:`log_rows` makes of a :class:`~nearnb.logcolumns.Stretch`."""
    seq, message_id, index, run_id, thread_id, texts, ats = stretch
    rows: list[LogRow] = []
    for start in range(0, len(texts), MAX_DELTAS_PER_ROW):
        end = start + MAX_DELTAS_PER_ROW
        part, times = texts[start:end], ats[start:end]
        rows.append(_deltas_row(run_id, thread_id, seq + start, message_id, index, part, times))
    return rows


def _deltas_row(
    run_id: str,
    thread_id: str,
    seq: int,
    message_id: str,
    index: int,
    texts: list[str],
    ats: list[float] | array[float],
) -> LogRow:
    """The row of consecutive deltas of one message numbered from ``seq``: a plain
    delta row for one, a :data:`DELTAS` row for more."""
    if len(texts) == 1:
        return (run_id, seq, seq, DELTA, delta_json(message_id, texts[0], index), thread_id, ats[0])
    data = compact_json([message_id, index, texts, _pack_times(ats)])
    return (run_id, seq, seq + len(texts) - 1, DELTAS, data, thread_id, ats[0])


def _deltas(row: ReadRow) -> tuple[str, int, list[str], list[float]]:
    """The ``(message_id, index, texts, ats)`` of a :data:`DELTAS` row, checked."""
    seq, last, _, data, _, _ = row
    try:
        message_id, index, texts, packed = json.loads(data)
        ats = _unpack_times(packed)
        ok = len(texts) == len(ats) == (last or seq) - seq + 1
    except (ValueError, TypeError):  # binascii.Error is a ValueError
        ok = False
    if not ok:
        raise ValueError(f"corrupt row of text deltas {seq}..{last} in the event log: {data[:80]}")
    return message_id, index, texts, ats


def expand_rows(
    rows: Iterable[ReadRow], after: int = 0, *, thread: bool = True
) -> list[tuple[Any, ...]]:
    """``(seq, event, data JSON, thread_id, at)`` per event with ``seq > after``
    (``thread=False``: ``(seq, event, data JSON, at)``, what the hub sends)."""
    out: list[tuple[Any, ...]] = []
    append = out.append
    for row in rows:
        seq, last, name, data, thread_id, at = row
        if name != DELTAS:
            if seq > after:
                append((seq, name, data, thread_id, at) if thread else (seq, name, data, at))
            continue
        message_id, index, texts, ats = _deltas(row)
        head = delta_json_head(message_id, index)
        for i in range(max(0, after - seq + 1), len(texts)):
            data = head + _json_str(texts[i]) + DELTA_JSON_TAIL
            append(
                (seq + i, DELTA, data, thread_id, ats[i])
                if thread
                else (seq + i, DELTA, data, ats[i])
            )
    return out


def expand_events(rows: Iterable[ReadRow], run_id: str, after: int = 0) -> Iterator[Event]:
    """The Events of ``rows`` with ``seq > after`` (text deltas stay compact until read)."""
    for row in rows:
        seq, last, name, data, thread_id, at = row
        if name != DELTAS:
            if seq > after:
                yield Event.trusted(seq, name, json.loads(data), run_id, thread_id, at)
            continue
        message_id, index, texts, ats = _deltas(row)
        for i in range(max(0, after - seq + 1), len(texts)):
            yield event_of((seq + i, ats[i], message_id, texts[i], index, run_id, thread_id))
