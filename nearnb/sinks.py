"""Delivery of a run's events to one consumer, on that consumer's own thread.

A run produces events on the agent's thread; the store, each notebook view
and the hub all consume them. If they consumed them on the agent's thread, a
slow disk or a busy widget would slow the agent, and a consumer that raises
would fail the run. So each consumer gets a :class:`QueuedSink`: ``put`` is
a deque append and a notify (constant time, never blocks on the consumer),
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
from collections import deque
from collections.abc import Callable

from .events import Event

logger = logging.getLogger("nearnb.sinks")

#: Seconds a woken sink waits for more events before consuming (see ``_loop``):
#: caps wake-ups at ~500/s for a fast stream and adds at most 2 ms of latency.
LINGER = 0.002

#: A consumer of event batches, in ``seq`` order.
Consumer = Callable[[list[Event]], None]


def per_event(callback: Callable[[Event], None]) -> Consumer:
    """A batch consumer calling ``callback`` once per event, in order."""

    def consume(batch: list[Event]) -> None:
        for event in batch:
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
        self._queue: deque[Event] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._idle = False
        self._done = False
        self._processed = 0  # highest seq handed to the consumer (and returned from it)
        self._thread = threading.Thread(target=self._loop, name=f"nearnb-sink-{name}", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- producer

    def put(self, event: Event) -> None:
        """Queue one event; wakes the thread only if it sleeps.

        ``deque.append`` is atomic, so the common case takes no lock: the
        consumer marks itself idle (under the condition) *before* it looks at
        the queue a last time, so an append it did not see finds it idle and
        wakes it.
        """
        if self._closed:
            return
        self._queue.append(event)
        if self._idle:
            with self._cond:
                self._cond.notify()

    def close(self, timeout: float | None = None) -> bool:
        """No more events; deliver what is queued, then stop. True if it finished in time."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
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
        while True:
            with self._cond:
                self._idle = True
                self._cond.wait_for(lambda: self._queue or self._closed)
                self._idle = False
                if not self._queue:  # closed and drained
                    self._done = True
                    self._cond.notify_all()
                    return
                closing = self._closed
            if self.linger and not closing:
                # Let a burst gather: while awake, puts do not notify, so a fast
                # stream costs one wake-up per ``linger``, not one per event.
                time.sleep(self.linger)
            batch = []
            while self._queue:  # popleft, not clear(): put() appends without the lock
                batch.append(self._queue.popleft())
            try:
                self._consume(batch)
            except BaseException as exc:  # noqa: BLE001 - a consumer never takes the run down
                if self.error is None:
                    self.error = exc
                    logger.error(
                        "nearnb: %s failed on events %d-%d; the run goes on without it "
                        "(reported once)",
                        self.name,
                        batch[0].seq,
                        batch[-1].seq,
                        exc_info=exc,
                    )
            with self._cond:
                self._processed = max(self._processed, batch[-1].seq)
                self._cond.notify_all()
