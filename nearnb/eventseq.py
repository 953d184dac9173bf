"""A run's events as its log holds them: text deltas as entries, Events made on demand.

A fast stream makes tens of thousands of ``thread.message.delta`` events a
run. Each as an :class:`~nearnb.events.Event` is a tracked object the garbage
collector promotes to its oldest generation and rescans, with the whole heap,
on every full collection for as long as the run is kept: measured in a
50,000-chunk run, building and keeping those Events cost the agent's thread
about 4 us a chunk, more than all its other pipeline work together. A delta is
an *entry* instead: the exact tuple ``(seq, at, message_id, text, index,
run_id, thread_id)``, atomic values only, made when it is read from the log's
columns (:mod:`nearnb.logcolumns`), which keep none.

:class:`EventSeq` is what every reader gets instead of a list: a read-only
``Sequence[Event]`` over entries (an entry is such a tuple or an ordinary
Event). Indexing and iterating give Events - a delta's made right then, with
its ``data`` still compact until read (:mod:`nearnb.compactdelta`) - so any
consumer that takes ``list[Event]`` works unchanged. Consumers on the hot
path ask for less: :meth:`EventSeq.stretch` gives a batch that is one
message's deltas as two columns (the reducer folds its text, the store writes
its rows, no entry made), :meth:`EventSeq.raw` gives the entries (the store
encodes a row straight from the tuple: :func:`event_rows`), and
:meth:`EventSeq.whole` / :func:`whole_events` give only the events that are
not compact deltas (the ones that change a row or a result).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from json.encoder import encode_basestring_ascii as _json_str  # type: ignore[attr-defined]
from operator import countOf, itemgetter
from typing import Any, overload

from .compactdelta import DELTA_JSON_TAIL, CompactDelta, delta_json_head
from .events import Event
from .logcolumns import Stretch

DELTA = "thread.message.delta"

#: One log entry: an Event, or a compact text delta
#: ``(seq, at, message_id, text, index, run_id, thread_id)``.
Entry = Any


def event_of(entry: Entry) -> Event:
    """The Event an entry stands for (a compact delta's ``data`` stays compact until read)."""
    if type(entry) is not tuple:
        return entry  # type: ignore[no-any-return]
    seq, at, message_id, text, index, run_id, thread_id = entry
    return Event.trusted(seq, DELTA, CompactDelta(message_id, text, index), run_id, thread_id, at)


_AT, _MESSAGE, _TEXT, _INDEX, _RUN = (itemgetter(i) for i in (1, 2, 3, 4, 5))


def delta_stretch(entries: list[Entry]) -> tuple[Any, ...] | None:
    """The first entry, if ``entries`` (numbered strictly upwards, as an EventSeq's)
    are all compact deltas of one message (one run, one content index) with no
    number missing; else None. C-level passes, a fraction of a loop over them.
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
    return first if entries[-1][0] - first[0] == n - 1 else None  # type: ignore[no-any-return]


def seq_of(entry: Entry) -> int:
    return entry[0] if type(entry) is tuple else entry.seq  # type: ignore[no-any-return]


class EventSeq(Sequence[Event]):
    """A read-only sequence of Events over log entries, numbered strictly upwards as a
    log holds them: those from index ``start`` up to ``stop`` (None: as many as there
    are now; the log only appends, so a bounded view is a snapshot)."""

    __slots__ = ("_entries", "_start", "_stop")

    def __init__(self, entries: Sequence[Entry], stop: int | None = None, start: int = 0) -> None:
        self._entries = entries
        self._start = start
        self._stop = stop

    def raw(self) -> list[Entry]:
        """The entries themselves (a copy of the list, not of the entries)."""
        return self._entries[self._start : self._start + len(self)]

    def after(self, seq: int) -> EventSeq:
        """The events numbered above ``seq`` (found by bisection: a log's entries, and so
        an EventSeq's, are in ``seq`` order), as a view like this one."""
        stop = self._start + len(self)
        at = bisect_right(self._entries, seq, self._start, stop, key=seq_of)
        return EventSeq(self._entries, stop, at)

    def whole(self) -> list[Event]:
        """The entries that are Events, not compact deltas (a log's columns know where)."""
        whole = getattr(self._entries, "whole", None)
        if whole is not None:
            return whole(self._start, self._start + len(self))  # type: ignore[no-any-return]
        return [entry for entry in self.raw() if type(entry) is not tuple]

    def stretch(self) -> Stretch | None:
        """These events as one :class:`~nearnb.logcolumns.Stretch` of text deltas, if they
        are one: a fast stream's usual batch, which its consumers then take whole."""
        columns = getattr(self._entries, "stretch", None)
        if columns is not None:
            return columns(self._start, self._start + len(self))  # type: ignore[no-any-return]
        entries = self.raw()
        head = delta_stretch(entries)
        if head is None:
            return None
        texts, ats = list(map(_TEXT, entries)), array("d", map(_AT, entries))
        return Stretch(head[0], head[2], head[4], head[5], head[6], texts, ats)

    def snapshot(self) -> EventSeq:
        """This view bounded at its current length: later appends are not in it."""
        return EventSeq(self._entries, self._start + len(self), self._start)

    def __len__(self) -> int:
        n = len(self._entries)
        return max(0, (n if self._stop is None else min(n, self._stop)) - self._start)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [event_of(e) for e in self.raw()[index]]
            first = self._start  # only the entries asked for are made
            return [event_of(e) for e in self._entries[first + start : first + max(start, stop)]]
        n = len(self)
        if not -n <= index < n:
            raise IndexError("event index out of range")
        return event_of(self._entries[self._start + index % n])

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
    if isinstance(events, EventSeq):
        yield from events.whole()
        return
    for entry in events:
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
