"""The store sink: a run's events become its log and its rows, then they are public.

This consumer (on its own :class:`~nearnb.sinks.QueuedSink` thread) writes
each batch of events and the rows they imply (:func:`nearnb.projection.project`)
in one SQLite transaction, so the log and the rows never disagree, and only
then hands the events to its *durable* listeners (the hub's push to SSE
subscribers). That order is what makes resume across a crash exact: a client
can only have seen an event that the store has, so a hub that takes over
after a crash numbers the closing events after everything any client saw
("nothing lost, nothing twice"; see :mod:`nearnb.liveness`).

Batches are whatever queued up while the previous write ran (group commit):
one event per transaction when a model is slow, hundreds when it is fast.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .events import Event
from .projection import project
from .store import Store

logger = logging.getLogger("nearnb.persist")

DurableListener = Callable[[Event], None]


class StoreSink:
    """Consumer writing event batches and their rows; then notifying durable listeners."""

    def __init__(self, store: Store, listeners: list[DurableListener] | None = None) -> None:
        self.store = store
        self.listeners = list(listeners or ())

    def __call__(self, batch: list[Event]) -> None:
        rows = project(batch)
        self.store.commit(batch, list(rows.runs.values()), list(rows.messages.values()))
        for listener in self.listeners:
            try:
                for event in batch:
                    listener(event)
            except Exception:  # one broken listener must not keep others from durable events
                logger.exception("nearnb: durable-event listener %r failed", listener)
