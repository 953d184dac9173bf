"""The event bus: how a run's events, cancel requests and heartbeats cross processes.

The store of record (:mod:`nearnb.store`, or PostgreSQL) keeps a run's log
for good; the bus is how other processes learn of it *now*:

* **events** — the store sink (:mod:`nearnb.persist`) commits each batch,
  then :meth:`EventBus.publish`\\ es it; a hub reads history and then waits
  for new events (:meth:`EventBus.read`, :meth:`EventBus.wait_async`);
* **cancel requests** — any hub (or attached viewer) calls
  :meth:`EventBus.request_cancel`; the process executing the run watches for
  it (:mod:`nearnb.bus_watch`) and cancels the run there, as a local Stop;
* **liveness** — the executing process :meth:`EventBus.beat`\\ s each of its
  runs every second or so; a hub that finds a run whose last beat is older
  than the TTL ends it ``expired`` (:mod:`nearnb.liveness`), by the store's
  compare-and-set, so exactly one hub does it.

Two implementations, chosen by ``$NEARNB_BUS``:

* unset — :class:`StoreBus`: everything goes through the store itself
  (events are already there; readers poll it every few ms), nothing to set up;
* ``redis://…`` — :class:`nearnb.bus_redis.RedisBus`: one Redis stream per run
  with entry ids ``{seq}-0``, ``XREAD BLOCK`` for live delivery, keys with a
  lifetime for cancel requests and heartbeats.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from .events import Event
from .store import Store

#: ``(seq, event name, data as JSON text, emit time)``: an event as the hub puts it on the wire.
Row = tuple[int, str, str, float]

BUS_ENV = "NEARNB_BUS"
HOST_ENV = "NEARNB_HOST"
BEAT_INTERVAL_ENV = "NEARNB_HEARTBEAT_INTERVAL"
BEAT_TTL_ENV = "NEARNB_HEARTBEAT_TTL"
DEFAULT_BEAT_INTERVAL = 1.0
DEFAULT_BEAT_TTL = 5.0


class BusError(ValueError):
    """A bus URL or setting that cannot be used; the message names it."""


def host_name() -> str:
    """The name this process gives its machine in run metadata and heartbeats.

    ``$NEARNB_HOST`` overrides the hostname: containers that share one
    hostname, or tests standing in for several machines on one.
    """
    return os.environ.get(HOST_ENV) or socket.gethostname()


def owner_id() -> str:
    """Who executes a run: ``host:pid``, what heartbeats and cancel logs name."""
    return f"{host_name()}:{os.getpid()}"


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BusError(f"${name} must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise BusError(f"${name} must be positive, not {raw!r}")
    return value


def beat_interval() -> float:
    """Seconds between a run process's heartbeats (``$NEARNB_HEARTBEAT_INTERVAL``, 1 s)."""
    return _seconds(BEAT_INTERVAL_ENV, DEFAULT_BEAT_INTERVAL)


def beat_ttl() -> float:
    """Seconds without a heartbeat after which a hub expires a run (``$NEARNB_HEARTBEAT_TTL``)."""
    return _seconds(BEAT_TTL_ENV, DEFAULT_BEAT_TTL)


@runtime_checkable
class EventBus(Protocol):
    """Per-run event logs with live delivery, cancel requests and heartbeats."""

    #: Where it is (``sqlite:PATH`` for the store bus, the Redis URL without password).
    name: str
    #: True when :meth:`wait_async` blocks on the server until an event arrives (no polling).
    blocking: bool

    def publish(self, events: Sequence[Event]) -> None:
        """Make events already committed to the store visible to readers, in order."""

    def read(self, run_id: str, after: int = 0, limit: int | None = None) -> list[Row]:
        """A run's events with ``seq > after``, in order (what the bus still holds)."""

    async def wait_async(self, run_id: str, after: int, timeout: float) -> list[Row]:
        """Events with ``seq > after``; waits up to ``timeout`` s for the first (may be [])."""

    def request_cancel(self, run_id: str, by: str) -> bool:
        """Ask the process executing ``run_id`` to cancel it; False if already asked."""

    def cancel_requested(self, run_ids: Sequence[str]) -> dict[str, str]:
        """Of ``run_ids``, those with a cancel request, and who asked."""

    def beat(self, run_ids: Sequence[str], owner: str) -> None:
        """Say the runs are alive, executed by ``owner``, now."""

    def last_beat(self, run_id: str) -> tuple[str, float] | None:
        """``(owner, time)`` of a run's last heartbeat; None if it never had one."""

    def close(self) -> None:
        """Release connections (the store itself is not closed)."""


class StoreBus:
    """The default bus: the store of record is the bus, read by polling (nothing to set up).

    Events need no publishing (the store sink committed them); a reader polls
    the log every :attr:`poll` seconds. Cancel requests and heartbeats are the
    store's run-control rows.
    """

    blocking = False

    def __init__(self, store: Store, *, poll: float = 0.01) -> None:
        self.store = store
        self.poll = poll
        self.name = f"store:{getattr(store, 'path', None) or type(store).__name__}"

    def publish(self, events: Sequence[Event]) -> None:
        return None  # already in the store, which is what readers poll

    def read(self, run_id: str, after: int = 0, limit: int | None = None) -> list[Row]:
        return self.store.event_rows(run_id, after=after, limit=limit)

    async def wait_async(self, run_id: str, after: int, timeout: float) -> list[Row]:
        import anyio.to_thread

        deadline = time.monotonic() + timeout
        while True:
            rows = await anyio.to_thread.run_sync(self.read, run_id, after, 2000)
            if rows or time.monotonic() >= deadline:
                return rows
            await asyncio.sleep(self.poll)

    def request_cancel(self, run_id: str, by: str) -> bool:
        return bool(self.store.request_cancel(run_id, by))

    def cancel_requested(self, run_ids: Sequence[str]) -> dict[str, str]:
        found = {}
        for run_id in run_ids:
            by = self.store.cancel_requested(run_id)
            if by is not None:
                found[run_id] = by
        return found

    def beat(self, run_ids: Sequence[str], owner: str) -> None:
        at = time.time()
        for run_id in run_ids:
            self.store.beat(run_id, owner, at=at)

    def last_beat(self, run_id: str) -> tuple[str, float] | None:
        return self.store.last_beat(run_id)

    def close(self) -> None:
        return None


_store_buses: weakref.WeakKeyDictionary[Any, StoreBus] = weakref.WeakKeyDictionary()
_url_buses: dict[str, EventBus] = {}
_lock = threading.Lock()


def open_bus(url: str | None, store: Store) -> EventBus:
    """The bus a URL names (``redis://…``/``rediss://…``), else the store's own bus.

    One bus per URL (and per store) in a process: every run and the hub share
    its connections.
    """
    text = (url or "").strip()
    with _lock:
        if not text or text.lower() in ("store", "sqlite", "default"):
            bus = _store_buses.get(store)
            if bus is None:
                bus = _store_buses[store] = StoreBus(store)
            return bus
        scheme = text.partition("://")[0].lower()
        if scheme not in ("redis", "rediss", "unix"):
            raise BusError(
                f"bus URL {_redact(text)!r}: use redis://HOST:PORT/DB (or rediss://, unix://), "
                f"or leave ${BUS_ENV} unset for the store-backed bus"
            )
        bus = _url_buses.get(text)
        if bus is None:
            from .bus_redis import RedisBus

            bus = _url_buses[text] = RedisBus(text, event_ttl=store.event_ttl)
        return bus


def bus_for(store: Store) -> EventBus:
    """The bus ``$NEARNB_BUS`` names, for runs written to ``store``."""
    return open_bus(os.environ.get(BUS_ENV), store)


def _redact(url: str) -> str:
    """A URL without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user = creds.partition(":")[0]
    return f"{scheme}{sep}{user + ':***' if user else '***'}@{host}"
