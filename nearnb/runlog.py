"""The lowest layer of a run: its numbered event log, its sinks and its cancel flag.

Everything observable about a run is an event appended here by
:meth:`RunLog.emit`: numbered ``seq`` 1, 2, 3 ... under a lock, kept in
:attr:`RunLog.events`, where every sink reads it through its own cursor
(see :mod:`nearnb.sinks`). A text delta emitted as a
:class:`~nearnb.events.CompactDelta` (:meth:`RunLog.emit_delta`, or
:meth:`RunLog.emit_text` unbuilt) is no Event and no object of its own: three
slots in the log's columns (:mod:`nearnb.logcolumns`); readers still see
Events (:mod:`nearnb.eventseq`).
Nothing else is written anywhere by a producer: the store's rows, the views
and the hub's streams are all derived from these events by the sinks, off the
agent's thread.

``emit`` holds the lock only to number the event and append it (and to wake
a sink that had run dry), so the agent never waits on a disk, a widget or a
network client.

The cancel flag lives here too, because the stream handler and the
environment (which check it at every chunk and every ``env`` call) sit above
this layer and below the orchestration that sets it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .events import CompactDelta, Event
from .eventseq import EventSeq
from .logcolumns import LogColumns
from .sinks import QueuedSink

Clock = Callable[[], float]
logger = logging.getLogger("nearnb.runs")
_trusted = Event.trusted


class RunCancelled(BaseException):
    """Raised inside agent code when its run is cancelled.

    A ``BaseException`` like ``KeyboardInterrupt``, so an agent's broad
    ``except Exception`` cannot swallow a Stop.
    """


class RunLog:
    """One run's ordered events and the sinks they are delivered to. Thread-safe."""

    def __init__(self, run_id: str, thread_id: str, *, clock: Clock = time.time) -> None:
        self.run_id = run_id
        self.thread_id = thread_id
        self._entries = LogColumns(run_id, thread_id)
        # emit_text's appends, bound once (the hot path of a streamed reply)
        self._put_text = self._entries.items.append
        self._put_message = self._entries.mids.append
        self._put_at = self._entries.ats.append
        self.cancelled = threading.Event()
        #: ``cancelled.is_set()`` as a plain attribute: read at every chunk.
        self.cancel_requested = False
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        self._sinks: list[QueuedSink] = []
        self._on_cancel: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ events

    @property
    def last_seq(self) -> int:
        return self._entries.n

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def events(self) -> EventSeq:
        """Every event so far, as Events (a live view: it grows with the log)."""
        return EventSeq(self._entries)

    def emit(self, name: str, data: Any) -> Event | None:
        """Number one event and queue it for every sink; None if dropped (after :meth:`close`)."""
        with self._lock:
            if self._closed:
                return None
            seq = self._entries.n + 1
            event = _trusted(seq, name, data, self.run_id, self.thread_id, self._clock())
            self._entries.append_event(event)
            for sink in self._sinks:
                if sink.sleeping:
                    sink.wake()
            return event

    def emit_delta(self, delta: CompactDelta) -> int:
        """:meth:`emit` of a ``thread.message.delta``, kept and queued as a compact entry
        (no Event: see :mod:`nearnb.eventseq`); its ``seq``, 0 if dropped."""
        return self.emit_text(*delta)

    def emit_text(self, message_id: str, text: str, index: int = 0) -> int:
        """:meth:`emit_delta` of ``CompactDelta(message_id, text, index)``, unbuilt."""
        with self._lock:
            if self._closed:
                return 0
            entries = self._entries
            if index:
                entries.append_text(message_id, text, index, self._clock())
            else:  # append_text, inlined
                self._put_text(text)
                self._put_message(message_id)
                self._put_at(self._clock())
                entries.n += 1
            for sink in self._sinks:
                if sink.sleeping:
                    sink.wake()
            return entries.n

    def attach(self, sink: QueuedSink, *, replay: bool = True) -> QueuedSink:
        """Deliver events to ``sink`` from now on; past ones first if ``replay``.

        Under the emit lock, so the sink sees every event exactly once, in order: it
        reads this log's entries from the first (``replay``) or from the next one.
        """
        with self._lock:
            sink.follow(self._entries, 0 if replay else len(self._entries))
            if self._closed:
                sink.close(timeout=0)
            else:
                self._sinks.append(sink)
        return sink

    def close(self) -> list[QueuedSink]:
        """Accept no more events; returns the sinks, for the caller to drain."""
        with self._lock:
            self._closed = True
            sinks = list(self._sinks)
        for sink in sinks:
            sink.close(timeout=0)  # marks it closed; its thread drains the queue
        return sinks

    # -------------------------------------------------------------- cancelling

    def cancel(self) -> None:
        """Raise the flag, then run the cancel hooks (on the cancelling thread)."""
        self.cancel_requested = True
        self.cancelled.set()
        with self._lock:
            hooks = list(self._on_cancel)
        for hook in hooks:
            try:
                hook()
            except Exception:  # a hook only speeds the stop up; the flag already stands
                logger.exception("nearnb: a cancel hook of %s failed", self.run_id)

    def on_cancel(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook`` when the run is cancelled (at once if it already is); returns
        a function that removes it.

        The flag is checked at every chunk, but a read blocked on a provider that
        sends nothing never reaches the next check: a stream handler hooks its
        source's ``interrupt`` here, so a Stop lands within moments, not at the
        provider's next byte (or its read timeout).
        """
        with self._lock:
            self._on_cancel.append(hook)
        if self.cancel_requested:
            hook()

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._on_cancel.remove(hook)

        return remove

    def check_cancelled(self) -> None:
        if self.cancel_requested:
            raise RunCancelled("run cancelled")
