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

With an event bus (:mod:`nearnb.bus`), each committed batch is published to
it next, in one round trip, before the listeners: hubs on other machines
read it there (for the default store-backed bus this costs nothing). A bus
that fails is logged; readers fall back to the store, which has the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .events import Event
from .projection import project
from .store import Store

if TYPE_CHECKING:
    from .bus import EventBus

logger = logging.getLogger("nearnb.persist")

DurableListener = Callable[[Event], None]


class StoreSink:
    """Consumer writing event batches and their rows; then notifying durable listeners."""

    def __init__(
        self,
        store: Store,
        listeners: list[DurableListener] | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self.store = store
        self.listeners = list(listeners or ())
        self.bus = bus
        self._bus_failing = False

    def __call__(self, batch: list[Event]) -> None:
        rows = project(batch)
        self.store.commit(batch, list(rows.runs.values()), list(rows.messages.values()))
        if self.bus is not None:
            try:
                self.bus.publish(batch)
                self._bus_failing = False
            except Exception:  # the store has the batch: hubs fill the gap from it
                if not self._bus_failing:
                    logger.exception("nearnb: publishing to the event bus failed")
                self._bus_failing = True
        for listener in self.listeners:
            try:
                for event in batch:
                    listener(event)
            except Exception:  # one broken listener must not keep others from durable events
                logger.exception("nearnb: durable-event listener %r failed", listener)
