"""A run's events as its log holds them: text deltas as plain tuples, Events made on demand.

A fast stream makes tens of thousands of ``thread.message.delta`` events a
run. Each as an :class:`~nearnb.events.Event` is a tracked object the garbage
collector promotes to its oldest generation and rescans, with the whole heap,
on every full collection for as long as the run is kept: measured in a
50,000-chunk run, building and keeping those Events cost the agent's thread
about 4 us a chunk, more than all its other pipeline work together. Kept as
an *entry* - the exact tuple ``(seq, at, message_id, text, index, run_id,
thread_id)``, atomic values only, which the collector stops tracking at its
first look - they cost nothing after that.

:class:`EventSeq` is what every reader gets instead of a list: a read-only
``Sequence[Event]`` over entries (an entry is such a tuple or an ordinary
Event). Indexing and iterating give Events - a delta's made right then, with
its ``data`` still compact until read (:mod:`nearnb.compactdelta`) - so any
consumer that takes ``list[Event]`` works unchanged. Consumers on the hot
path read :meth:`EventSeq.raw` instead: the store encodes a row straight from
the tuple (:func:`event_rows`), the reducer folds its text, and
:func:`whole_events` walks only the events that are not compact deltas (the
ones that change a row or a result).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from json.encoder import encode_basestring_ascii as _json_str  # type: ignore[attr-defined]
from operator import countOf, itemgetter
from typing import Any, overload

from .compactdelta import DELTA_JSON_TAIL, CompactDelta, delta_json_head
from .events import Event

DELTA = "thread.message.delta"

#: One log entry: an Event, or a compact text delta
#: ``(seq, at, message_id, text, index, run_id, thread_id)``.
Entry = Any


def delta_entry(
    seq: int, at: float, delta: CompactDelta, run_id: str, thread_id: str
) -> tuple[int, float, str, str, int, str, str]:
    """The entry of a compact text delta (an exact tuple: untracked by the GC)."""
    return (seq, at, delta[0], delta[1], delta[2], run_id, thread_id)


def event_of(entry: Entry) -> Event:
    """The Event an entry stands for (a compact delta's ``data`` stays compact until read)."""
    if type(entry) is not tuple:
        return entry  # type: ignore[no-any-return]
    seq, at, message_id, text, index, run_id, thread_id = entry
    return Event.trusted(seq, DELTA, CompactDelta(message_id, text, index), run_id, thread_id, at)


_SEQ, _MESSAGE, _INDEX, _RUN = itemgetter(0), itemgetter(2), itemgetter(4), itemgetter(5)
#: The texts of a list of compact-delta entries: ``list(map(text_of, entries))``.
text_of = itemgetter(3)


def delta_stretch(entries: list[Entry], *, ordered: bool = False) -> tuple[Any, ...] | None:
    """The first entry, if ``entries`` are all compact deltas of one message (one
    run, one content index) numbered one after another; else None.

    A fast stream's batch is nearly always such a stretch, and its consumers (the
    reducer, the store's rows, a view) then take it whole: these checks are C-level
    passes, a fraction of a Python loop over the entries. ``ordered``: the entries
    come from an :class:`EventSeq` (numbered strictly upwards, as a log holds them),
    so the first and last numbers tell whether any is missing.
    """
    n = len(entries)
    if not n or type(entries[0]) is not tuple or countOf(map(type, entries), tuple) != n:
        return None
    first = entries[0]
    if (
        countOf(map(_MESSAGE, entries), first[2]) != n
        or countOf(map(_INDEX, entries), first[4]) != n
        or countOf(map(_RUN, entries), first[5]) != n
    ):
        return None
    if ordered:
        numbered = entries[-1][0] - first[0] == n - 1
    else:
        numbered = list(map(_SEQ, entries)) == list(range(first[0], first[0] + n))
    return first if numbered else None  # type: ignore[no-any-return]


def seq_of(entry: Entry) -> int:
    return entry[0] if type(entry) is tuple else entry.seq  # type: ignore[no-any-return]


class EventSeq(Sequence[Event]):
    """A read-only sequence of Events over log entries, numbered strictly upwards as a
    log holds them, up to ``stop`` (None: as many as there are now; the log only appends, so a
    bounded view is a snapshot)."""

    __slots__ = ("_entries", "_stop")

    def __init__(self, entries: list[Entry], stop: int | None = None) -> None:
        self._entries = entries
        self._stop = stop

    def raw(self) -> list[Entry]:
        """The entries themselves (a copy of the list, not of the entries)."""
        return self._entries[: self._stop] if self._stop is not None else self._entries[:]

    def raw_after(self, seq: int) -> list[Entry]:
        """The entries numbered above ``seq`` (found by bisection: a log's entries, and so
        an EventSeq's, are in ``seq`` order)."""
        entries = self.raw()
        return entries[bisect_right(entries, seq, key=seq_of) :]

    def snapshot(self) -> EventSeq:
        """This view bounded at its current length: later appends are not in it."""
        return EventSeq(self._entries, len(self))

    def __len__(self) -> int:
        n = len(self._entries)
        return n if self._stop is None else min(n, self._stop)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        if isinstance(index, slice):
            return [event_of(e) for e in self.raw()[index]]
        n = len(self)
        if not -n <= index < n:
            raise IndexError("event index out of range")
        return event_of(self._entries[index % n])

    def __iter__(self) -> Iterator[Event]:
        for entry in self.raw():
            yield event_of(entry)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EventSeq | list | tuple):
            if len(self) != len(other):
                return False
            return all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like a list

    def __repr__(self) -> str:
        return f"EventSeq({list(self)!r})"


def raw_entries(events: Iterable[Event]) -> Iterable[Entry]:
    """The entries behind ``events``: an EventSeq's raw entries, or the events themselves."""
    return events.raw() if isinstance(events, EventSeq) else events


def whole_events(events: Iterable[Event]) -> Iterator[Event]:
    """The events of ``events`` that are not compact deltas, never building one."""
    for entry in raw_entries(events):
        if type(entry) is not tuple:
            yield entry


def event_rows(events: Iterable[Event]) -> list[tuple[str, int, str, str, str, float]]:
    """``(run_id, seq, event, data JSON, thread_id, at)`` per event: the store's rows.

    A compact delta's JSON is :func:`~nearnb.compactdelta.delta_json`, built from
    its message's head (encoded once per message) and its encoded text.
    """
    heads: dict[tuple[str, int], str] = {}
    rows = []
    for e in raw_entries(events):
        if type(e) is tuple:
            head = heads.get((e[2], e[4]))
            if head is None:
                head = heads[e[2], e[4]] = delta_json_head(e[2], e[4])
            rows.append((e[5], e[0], DELTA, head + _json_str(e[3]) + DELTA_JSON_TAIL, e[6], e[1]))
        else:
            rows.append((e.run_id, e.seq, e.event, e.data_json(), e.thread_id, e.at))
    return rows
