"""Delivery of a run's events to one consumer, on that consumer's own thread.

A run produces events on the agent's thread; the store, each notebook view
and the hub all consume them. If they consumed them on the agent's thread, a
slow disk or a busy widget would slow the agent, and a consumer that raises
would fail the run. So each consumer gets a :class:`QueuedSink`: ``put`` is
one C-level queue put (constant time, never blocks on the consumer),
and a thread of the sink's own hands the consumer everything queued since
its last call as one batch. A consumer that falls behind therefore catches
up in larger batches instead of one call per event (views coalesce; the
store writes one transaction per batch: group commit).

A consumer that raises is reported once (logged at ERROR with its
traceback, and kept in :attr:`QueuedSink.error`) and keeps receiving later
events; a stuck one only holds up whoever explicitly waits for it
(:meth:`QueuedSink.wait_for` and :meth:`QueuedSink.close` take timeouts).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from queue import Empty, SimpleQueue

from .events import Event
from .eventseq import Entry, EventSeq, seq_of

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
    """One consumer's queue and thread. Thread-safe; :meth:`put` never blocks on the consumer."""

    def __init__(self, consume: Consumer, *, name: str, linger: float = LINGER) -> None:
        self.name = name
        self.linger = linger
        self.error: BaseException | None = None
        self._consume = consume
        self._queue: SimpleQueue[Entry] = SimpleQueue()
        self._cond = threading.Condition()  # guards _processed / _done for waiters
        self._closed = False
        self._done = False
        self._processed = 0  # highest seq handed to the consumer (and returned from it)
        self._thread = threading.Thread(target=self._loop, name=f"nearnb-sink-{name}", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- producer

    def put(self, event: Entry) -> None:
        """Queue one event: a ``SimpleQueue.put``, which takes no Python-level lock.

        A lock shared with the consumer (as a condition variable would be) can
        be held by the consumer thread just when it loses the GIL; the
        producer then blocks on it and the agent's thread pays a thread
        switch per event. The C queue wakes a sleeping consumer by itself.
        """
        if not self._closed:
            self._queue.put(event)

    def close(self, timeout: float | None = None) -> bool:
        """No more events; deliver what is queued, then stop. True if it finished in time."""
        with self._cond:
            if not self._closed:
                self._closed = True
                self._queue.put(_CLOSE)
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
        queue, closing = self._queue, False
        while not closing:
            first = queue.get()  # sleeps (GIL released) until there is an event
            closing = first is _CLOSE
            if self.linger and not closing and not self._closed:
                # Let a burst gather: a fast stream costs one wake-up per
                # ``linger``, not one per event.
                time.sleep(self.linger)
            batch: list[Entry] = [] if closing else [first]
            while True:
                try:
                    item = queue.get_nowait()
                except Empty:
                    break
                if item is _CLOSE:
                    closing = True
                else:
                    batch.append(item)
            if batch:
                self._deliver(batch)
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def _deliver(self, batch: list[Entry]) -> None:
        try:
            self._consume(EventSeq(batch))
        except BaseException as exc:  # noqa: BLE001 - a consumer never takes the run down
            if self.error is None:
                self.error = exc
                logger.error(
                    "nearnb: %s failed on events %d-%d; the run goes on without it (reported once)",
                    self.name,
                    seq_of(batch[0]),
                    seq_of(batch[-1]),
                    exc_info=exc,
                )
        with self._cond:
            self._processed = max(self._processed, seq_of(batch[-1]))
            self._cond.notify_all()


#: Queued by :meth:`QueuedSink.close` after the last event: the thread ends there.
_CLOSE = object()
