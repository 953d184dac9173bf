"""Delivery of a run's events to one consumer, on that consumer's own thread.

A run produces events on the agent's thread; the store, each notebook view
and the hub all consume them. If they consumed them on the agent's thread, a
slow disk or a busy widget would slow the agent, and a consumer that raises
would fail the run. So each consumer gets a :class:`QueuedSink` with a
thread of its own, which hands the consumer everything that arrived since
its last call as one batch. A consumer that falls behind therefore catches
up in larger batches instead of one call per event (views coalesce; the
store writes one transaction per batch: group commit).

A sink attached to a run's log (:meth:`QueuedSink.follow`) reads the log
itself through a cursor: the agent's thread appends each event once, and pays
per sink only a flag test (``sleeping``), plus a wake-up when that sink had
run dry. Each batch is a window on the log (an
:class:`~nearnb.eventseq.EventSeq`): a consumer makes only the entries it
reads. A queue per sink cost a put on the agent's thread and a get on the
sink's, per event and per sink: about a tenth of a 50,000-chunk run's whole
pipeline overhead (bench_pipeline). A sink used on its own takes
events by :meth:`QueuedSink.put` into a list of its own instead.

A consumer that raises is reported once (logged at ERROR with its
traceback, and kept in :attr:`QueuedSink.error`) and keeps receiving later
events; a stuck one only holds up whoever explicitly waits for it
(:meth:`QueuedSink.wait_for` and :meth:`QueuedSink.close` take timeouts).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from queue import SimpleQueue
from typing import Any

from .events import Event
from .eventseq import Entry, EventSeq

logger = logging.getLogger("nearnb.sinks")

#: Seconds a woken sink waits for more events before consuming (see ``_loop``):
#: caps wake-ups at ~500/s for a fast stream and adds at most 2 ms of latency.
LINGER = 0.002

#: A consumer of event batches, in ``seq`` order (an :class:`EventSeq`: a
#: ``Sequence[Event]`` whose raw entries hold compact deltas as tuples).
Consumer = Callable[[EventSeq], None]


def per_event(callback: Callable[[Event], None]) -> Consumer:
    """A batch consumer calling ``callback`` once per event, in order.

    A callback that can take a batch itself says so with a ``feed_batch``
    method (a view folds a batch under one lock and offers one refresh); that
    method is then the consumer.
    """
    feed_batch = getattr(callback, "feed_batch", None)
    if callable(feed_batch):
        return feed_batch

    def consume(batch: EventSeq) -> None:
        for event in batch:  # Events, compact deltas made into Events here
            callback(event)

    consume.__qualname__ = f"per_event({getattr(callback, '__qualname__', callback)!s})"
    return consume


class QueuedSink:
    """One consumer's cursor and thread. Thread-safe; feeding it never blocks on the consumer.

    Fed either by the log it follows (:meth:`follow`; the log calls :meth:`wake` when
    :attr:`sleeping`) or by :meth:`put`; the thread starts with the first of them.
    """

    def __init__(self, consume: Consumer, *, name: str, linger: float = LINGER) -> None:
        self.name = name
        self.linger = linger
        self.error: BaseException | None = None
        #: True while the thread waits for entries: the feeder must :meth:`wake` it.
        self.sleeping = False
        self._consume = consume
        self._source: Any = []  # the entries (a list, or a log's columns), from ``_cursor`` on
        self._cursor = 0
        self._own = True  # ``_source`` is ours (fed by put): trimmed as it is consumed
        self._bell: SimpleQueue[None] = SimpleQueue()  # wakes the thread; extra rings are harmless
        self._cond = threading.Condition()  # guards _processed / _done / start-up
        self._closed = False
        self._done = False
        self._processed = 0  # highest seq handed to the consumer (and returned from it)
        self._thread = threading.Thread(target=self._loop, name=f"nearnb-sink-{name}", daemon=True)

    # ---------------------------------------------------------------- producer

    def follow(self, source: Sequence[Entry], start: int = 0) -> None:
        """Read ``source`` (a log's entries, only ever appended to) from index ``start`` on.

        Once, before anything is :meth:`put`. The log that owns ``source`` appends
        under its lock and then calls :meth:`wake` if :attr:`sleeping`.
        """
        with self._cond:
            if self._thread.ident is not None or not self._own:
                raise RuntimeError(f"sink {self.name} already has a source")
            self._source, self._cursor, self._own = source, start, False
            self._thread.start()

    def put(self, event: Entry) -> None:
        """Queue one event (a sink used on its own; one following a log is fed by it)."""
        if self._closed:
            return
        if not self._own:
            raise RuntimeError(f"sink {self.name} follows a log: the log feeds it")
        self._source.append(event)
        if self._thread.ident is None:
            with self._cond:
                if self._thread.ident is None:
                    self._thread.start()
        if self.sleeping:
            self.wake()

    def wake(self) -> None:
        """Entries were added: wake the thread if it sleeps (cheap; safe to repeat)."""
        self.sleeping = False
        self._bell.put(None)

    def close(self, timeout: float | None = None) -> bool:
        """No more events; deliver what is queued, then stop. True if it finished in time."""
        with self._cond:
            if not self._closed:
                self._closed = True
                if self._thread.ident is None:  # never fed: nothing to deliver
                    self._done = True
                    self._cond.notify_all()
            started = self._thread.ident is not None
        if not started:
            return True
        self._bell.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ---------------------------------------------------------------- barriers

    @property
    def processed(self) -> int:
        """The highest ``seq`` the consumer has been handed and returned from."""
        return self._processed

    def wait_for(self, seq: int, timeout: float | None = None) -> bool:
        """Block until the consumer has processed ``seq`` (or it stopped). True if so."""
        with self._cond:
            return self._cond.wait_for(lambda: self._processed >= seq or self._done, timeout)

    # ------------------------------------------------------------------ thread

    def _loop(self) -> None:
        source = self._source
        while True:
            closing = self._closed  # read first: after it, the source holds its last entry
            if len(source) > self._cursor:
                if self.linger and not closing:
                    # Let a burst gather: a fast stream costs one wake-up per
                    # ``linger``, not one per event.
                    time.sleep(self.linger)
                end = len(source)
                if self._own:
                    batch = EventSeq(source[:end])
                    del source[:end]  # put() only appends: what it added since stays
                else:  # a window on the log: its consumer reads what it needs of it
                    batch = EventSeq(source, end, self._cursor)
                    self._cursor = end
                self._deliver(batch)
            elif closing:
                break
            else:
                self._sleep()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def _sleep(self) -> None:
        """Wait for :meth:`wake`. A feeder that appends sees ``sleeping`` set, or this
        second look at the source sees its entry: no wake-up can be missed."""
        self.sleeping = True
        if len(self._source) > self._cursor or self._closed:
            self.sleeping = False
            return
        self._bell.get()  # GIL released while it waits
        self.sleeping = False

    def _deliver(self, batch: EventSeq) -> None:
        try:
            self._consume(batch)
        except BaseException as exc:  # noqa: BLE001 - a consumer never takes the run down
            if self.error is None:
                self.error = exc
                logger.error(
                    "nearnb: %s failed on events %d-%d; the run goes on without it (reported once)",
                    self.name,
                    batch[0].seq,
                    batch[-1].seq,
                    exc_info=exc,
                )
        last = batch[-1].seq
        with self._cond:
            self._processed = max(self._processed, last)
            self._cond.notify_all()
