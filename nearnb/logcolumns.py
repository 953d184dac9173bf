"""A run's log as it is kept in memory: columns, with each entry made when it is read.

A fast stream emits tens of thousands of text deltas a run, on the agent's
thread. Kept as an entry tuple each (:mod:`nearnb.eventseq`), every delta left
three new objects behind for the run's lifetime - the tuple, its emit time and
its number - and in bench_pipeline's 50,000-chunk run each kind of object kept
per delta cost the run about 4% of its transport's time (allocation from fresh
memory between the transport's own short-lived objects, not the collector). So
:class:`LogColumns` keeps a delta as three slots in columns: its text (the
string the chunk already brought), its message id (one shared string) and its
emit time (8 bytes of an ``array``). Its number is its position plus one.

Readers index and slice it like the list of entries it replaces: ``cols[i]``
and ``cols[a:b]`` make the entries - the exact tuple
``(seq, at, message_id, text, index, run_id, thread_id)`` for a delta, the
Event itself otherwise - at that moment, in C-level passes for a slice, and
drop them when done. Nothing else about entries changes.

Appends happen under the owning :class:`~nearnb.runlog.RunLog`'s lock; a
reader on another thread sees a consistent log because :func:`len` is the
count of entries whose every column is written (``n`` is set last).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from itertools import repeat
from operator import countOf
from typing import Any, NamedTuple, overload

from .events import Event

#: One log entry: an Event, or a compact text delta
#: ``(seq, at, message_id, text, index, run_id, thread_id)``.
Entry = Any


class Stretch(NamedTuple):
    """Text deltas of one message numbered one after another (``seq`` the first's), as
    columns: what a fast stream's batch usually is, and what its consumers take whole."""

    seq: int
    message_id: str
    index: int
    run_id: str
    thread_id: str
    texts: list[str]
    ats: array[float]

    def entries(self) -> list[Entry]:
        """The same deltas as entries."""
        n, (seq, mid, index, run_id, thread_id, texts, ats) = len(self.texts), self
        ids = (repeat(mid, n), texts, repeat(index, n), repeat(run_id, n), repeat(thread_id, n))
        return list(zip(range(seq, seq + n), ats, *ids, strict=True))


class LogColumns:
    """One run's entries in columns; reads as a list of entries (see the module doc)."""

    __slots__ = ("run_id", "thread_id", "n", "items", "mids", "ats", "_whole", "_odd", "_index")

    def __init__(self, run_id: str, thread_id: str) -> None:
        self.run_id = run_id
        self.thread_id = thread_id
        #: Entries whose columns are all written (readers go by this, not by ``items``).
        self.n = 0
        #: Per entry: a delta's text, or the Event.
        self.items: list[str | Event] = []
        #: Per entry: a delta's message id, or None.
        self.mids: list[str | None] = []
        #: Per entry: its emit time.
        self.ats = array("d")
        self._whole: list[int] = []  # positions of Events, in order
        self._odd: list[int] = []  # positions of deltas whose content index is not 0
        self._index: list[int] = []  # ... and those indexes

    # ------------------------------------------------------------------ writing

    def append_event(self, event: Event) -> None:
        n = self.n
        self._whole.append(n)
        self.items.append(event)
        self.mids.append(None)
        self.ats.append(event.at)
        self.n = n + 1

    def append_text(self, message_id: str, text: str, index: int, at: float) -> None:
        """One text delta (the hot path: :meth:`~nearnb.runlog.RunLog.emit_text`
        appends to the columns itself, this is the same for other callers)."""
        n = self.n
        if index:
            self._odd.append(n)
            self._index.append(index)
        self.items.append(text)
        self.mids.append(message_id)
        self.ats.append(at)
        self.n = n + 1

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, key: int) -> Entry: ...

    @overload
    def __getitem__(self, key: slice) -> list[Entry]: ...

    def __getitem__(self, key: int | slice) -> Entry | list[Entry]:
        n = self.n
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step != 1:
                return self[start:stop][::step]
            return self._entries(start, max(start, stop))
        if not -n <= key < n:
            raise IndexError("log index out of range")
        at = key % n
        item = self.items[at]
        if type(item) is not str:
            return item
        odd = self._odd
        k = bisect_left(odd, at)
        index = self._index[k] if k < len(odd) and odd[k] == at else 0
        return (at + 1, self.ats[at], self.mids[at], item, index, self.run_id, self.thread_id)

    def whole(self, start: int, stop: int) -> list[Event]:
        """The Events among entries ``start`` to ``stop - 1`` (no delta's entry made)."""
        whole, items = self._whole, self.items
        positions = whole[bisect_left(whole, start) : bisect_left(whole, stop)]
        return [items[at] for at in positions]  # type: ignore[misc]

    def stretch(self, start: int, stop: int) -> Stretch | None:
        """Entries ``start`` to ``stop - 1`` as a :class:`Stretch`, if they are one:
        no Event among them and one content index (bisections), one message id (a
        C-level count). Their texts and times are slices; no entry is made."""
        count = stop - start
        whole, odd = self._whole, self._odd
        if count <= 0 or bisect_left(whole, start) != bisect_left(whole, stop):
            return None
        low, high = bisect_left(odd, start), bisect_left(odd, stop)
        index = self._index[low] if high > low else 0
        if high > low and (high - low != count or countOf(self._index[low:high], index) != count):
            return None  # some at content index 0 and some not, or two indexes
        mids = self.mids[start:stop]
        if countOf(mids, mids[0]) != count:
            return None
        texts, ats = self.items[start:stop], self.ats[start:stop]
        return Stretch(start + 1, mids[0], index, self.run_id, self.thread_id, texts, ats)  # type: ignore[arg-type]

    def _entries(self, start: int, stop: int) -> list[Entry]:
        """Entries ``start`` to ``stop - 1``, made now (C-level passes, then the few
        Events and odd content indexes put in their places)."""
        count = stop - start
        out: list[Entry] = list(
            zip(
                range(start + 1, stop + 1),
                self.ats[start:stop],
                self.mids[start:stop],
                self.items[start:stop],
                repeat(0, count),
                repeat(self.run_id, count),
                repeat(self.thread_id, count),
                strict=True,
            )
        )
        whole, items = self._whole, self.items
        for at in whole[bisect_left(whole, start) : bisect_left(whole, stop)]:
            out[at - start] = items[at]
        odd = self._odd
        for k in range(bisect_left(odd, start), bisect_left(odd, stop)):
            seq, when, message_id, text, _, run_id, thread_id = out[odd[k] - start]
            out[odd[k] - start] = (seq, when, message_id, text, self._index[k], run_id, thread_id)
        return out
