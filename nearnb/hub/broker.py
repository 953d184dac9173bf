"""Live fan-out of run events to every subscriber, fed by pushes and by tailing the store.

A run's events reach the hub by two roads:

* **push** — runs the hub started itself call :meth:`Broker.publish_threadsafe`
  from their store sink once an event is stored (``start_run(on_durable=...)``),
  so a subscriber never sees an event that a crash of this hub could lose;
  latency is one commit plus one event-loop hop;
* **tail** — runs written by another process (a notebook kernel, ``nearnb
  run``, another hub, on any machine) are read from the event bus
  (:mod:`nearnb.bus`) while someone is subscribed: with the default
  store-backed bus by polling the run's event log every
  :attr:`Broker.tail_interval` seconds (10 ms); with Redis by ``XREAD
  BLOCK``, so an event arrives one hop after it is published, and the store
  is read only to fill a gap (and, once a second, as a safety net). If such a
  run falls silent and its producer turns out to be dead (a dead pid here, or
  a stale heartbeat: :mod:`nearnb.liveness`), the run is ended as
  ``expired`` in the store, by a compare-and-set that one hub wins, and its
  closing events reach every hub's subscribers by the same road.

Both feed one :class:`Channel` per run, an append-only list of events kept
contiguous by ``seq``: an event is appended only when it is the next number;
early arrivals wait in ``pending`` until the gap is filled (a push can be
ahead of this hub's poll of the store), and
anything at or below the last number is a duplicate and dropped. Every
subscriber holds only a cursor into that list, so all of them see the same
sequence, a late joiner starts with the whole history, and a resume from
``Last-Event-ID`` is a cursor that starts further on: nothing lost, nothing
twice. Each frame is encoded once per framing (and with or without the
``?timing=1`` emit time) and shared by all subscribers of that kind; a
subscriber that falls behind gets the frames it missed as one chunk.

A channel exists only while someone subscribes (or a pushed run is still
live and subscribed to); finished runs are replayed from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable

import anyio.to_thread

from ..bus import EventBus, open_bus
from ..events import Event
from ..liveness import expire_if_orphaned
from ..store import Store
from .sse import Framing, Row, encode_row, event_row, retry_field

log = logging.getLogger(__name__)

#: Most frames sent in one write; bounds the size of a replay chunk.
MAX_BATCH = 512


class Channel:
    """One run's events, contiguous from its first ``seq``, and the waiters on it."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.rows: list[Row] = []  # rows[i][0] == i + 1: (seq, name, data JSON, at)
        self.pending: dict[int, Row] = {}
        self.complete = False  # ``done`` appended: the log will not grow
        self.subscribers = 0
        self.pushed = False  # a live in-process source publishes to it
        self.loaded = False
        self.load_lock = asyncio.Lock()
        self.tailer: asyncio.Task[None] | None = None
        # Encoded frames, per (framing, timing); filled lazily, shared by subscribers.
        self._frames: dict[tuple[str, bool], list[bytes | None]] = {}
        self._changed = asyncio.Event()

    @property
    def last(self) -> int:
        """The highest ``seq`` held with no gap before it."""
        return len(self.rows)

    def accept(self, rows: Iterable[Row]) -> int:
        """Merge events arriving in any order; returns how many were appended."""
        for row in rows:
            if not self.complete and row[0] > self.last:
                self.pending[row[0]] = row
        added = 0
        while (row := self.pending.pop(self.last + 1, None)) is not None:
            self.rows.append(row)
            added += 1
            if row[1] == "done":
                self.complete = True
                self.pending.clear()
        if added:
            self._notify()
        return added

    def frames(self, after: int, framing: Framing, timing: bool = False) -> tuple[bytes, int]:
        """Encoded frames of events with ``seq > after`` (MAX_BATCH at most), and the new cursor.

        ``timing``: frames carrying each event's emit time (``?timing=1``).
        """
        start = max(after, 0)
        stop = min(len(self.rows), start + MAX_BATCH)
        if start >= stop:
            return b"", after
        cache = self._frames.setdefault((framing, timing), [])
        if len(cache) < stop:
            cache.extend([None] * (len(self.rows) - len(cache)))
        chunk = []
        for i in range(start, stop):
            frame = cache[i]
            if frame is None:
                frame = cache[i] = encode_row(self.rows[i], framing, timing)
            chunk.append(frame)
        return b"".join(chunk), stop

    def has_gap(self) -> bool:
        return bool(self.pending)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, after: int) -> None:
        """Return once there is an event beyond ``after``, or the channel is woken."""
        if self.last > after:
            return
        await self._changed.wait()

    def wake(self) -> None:
        self._notify()


class Broker:
    """All channels of one hub, on the hub's event loop."""

    def __init__(
        self,
        store: Store,
        *,
        bus: EventBus | None = None,
        tail_interval: float = 0.01,
        linger: float = 5.0,
        orphan_check: float = 2.0,
    ) -> None:
        self.store = store
        self.bus = bus if bus is not None else open_bus(None, store)
        self.tail_interval = tail_interval
        self.linger = linger
        #: Seconds of silence in a tailed run before asking whether its producer died.
        self.orphan_check = orphan_check
        #: With a blocking bus: the longest wait on it, and how often the store is read anyway.
        self.net_interval = 1.0
        self.channels: dict[str, Channel] = {}
        self.closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # --------------------------------------------------------------- producing

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the loop that serves requests, for :meth:`publish_threadsafe`."""
        self._loop = loop

    def publish_threadsafe(self, event: Event) -> None:
        """Hand one event of a hub-run to subscribers, from any thread.

        Suitable as ``start_run(on_durable=...)``. Events of runs nobody is
        subscribed to are dropped: a later subscriber reads them from the store.
        """
        loop = self._loop
        if loop is None or loop.is_closed() or event.run_id not in self.channels:
            return
        row = event_row(event)  # encoded here, on the producer's thread
        with contextlib.suppress(RuntimeError):  # loop closed between the check and the call
            loop.call_soon_threadsafe(self._publish, event.run_id, row)

    def publish(self, event: Event) -> None:
        """Same as :meth:`publish_threadsafe`, on the loop's thread."""
        self._publish(event.run_id, event_row(event))

    def _publish(self, run_id: str, row: Row) -> None:
        channel = self.channels.get(run_id)
        if channel is None:
            return
        channel.pushed = True
        channel.accept((row,))
        if channel.complete and channel.subscribers == 0:
            self._evict_later(channel)

    # -------------------------------------------------------------- consuming

    async def open(self, run_id: str) -> Subscription:
        """Join a run's channel, with its history loaded from the store."""
        return Subscription(self, await self._join(run_id))

    async def _join(self, run_id: str) -> Channel:
        channel = self.channels.get(run_id)
        if channel is None:
            channel = self.channels[run_id] = Channel(run_id)
        channel.subscribers += 1
        try:
            async with channel.load_lock:
                if not channel.loaded:
                    # A run whose producer is already dead ends now, in its history.
                    await anyio.to_thread.run_sync(self._expire_orphan, run_id)
                    rows = await anyio.to_thread.run_sync(
                        self._tail_rows, run_id, channel.last, None
                    )
                    channel.loaded = True
                    channel.accept(rows)
        except BaseException:
            self._leave(channel)
            raise
        if not channel.complete and (channel.tailer is None or channel.tailer.done()):
            channel.tailer = asyncio.create_task(self._tail(channel), name=f"tail-{run_id}")
        return channel

    def _leave(self, channel: Channel) -> None:
        channel.subscribers -= 1
        if channel.subscribers <= 0 and (channel.complete or not channel.pushed):
            self._evict_later(channel)

    def _evict_later(self, channel: Channel) -> None:
        def evict() -> None:
            if (
                channel.subscribers <= 0
                and self.channels.get(channel.run_id) is channel
                and (channel.complete or not channel.pushed)
            ):
                del self.channels[channel.run_id]
                if channel.tailer is not None:
                    channel.tailer.cancel()

        loop = asyncio.get_running_loop()
        loop.call_later(self.linger, evict)

    # ---------------------------------------------------------------- tailing

    def _tail_rows(self, run_id: str, after: int, limit: int | None) -> list[Row]:
        return self.store.event_rows(run_id, after=after, limit=limit)

    def _expire_orphan(self, run_id: str) -> bool:
        """End the run as ``expired`` if its producer died (see :mod:`nearnb.liveness`)."""
        try:
            return expire_if_orphaned(self.store, run_id, self.bus)
        except Exception:  # a failed check must not end the stream; the next one may work
            log.exception("checking whether the producer of %s is alive failed", run_id)
            return False

    async def _tail(self, channel: Channel) -> None:
        """Poll the store for a run written elsewhere, until its ``done`` or no subscribers.

        A pushed channel polls only to fill a gap (its store copy lags the
        pushes) and, slowly, as a safety net for a missed push.

        A run written elsewhere that stays silent for :attr:`orphan_check`
        seconds is checked for a dead producer, which ends it as ``expired``;
        the closing events then arrive by the next poll.
        """
        if self.bus.blocking:
            await self._follow(channel)
            return
        idle = 0.0
        silent_since = time.monotonic()
        try:
            while not channel.complete and not self.closing and channel.subscribers > 0:
                if not channel.pushed or channel.has_gap() or idle >= 0.5:
                    idle = 0.0
                    rows = await anyio.to_thread.run_sync(
                        self._tail_rows, channel.run_id, channel.last, 2000
                    )
                    channel.accept(rows)
                    if rows:
                        silent_since = time.monotonic()
                    elif (
                        not channel.pushed and time.monotonic() - silent_since >= self.orphan_check
                    ):
                        silent_since = time.monotonic()
                        if await anyio.to_thread.run_sync(self._expire_orphan, channel.run_id):
                            continue
                    if len(rows) == 2000:
                        continue
                await asyncio.sleep(self.tail_interval)
                idle += self.tail_interval
        except asyncio.CancelledError:
            raise
        except Exception:  # a store error must not kill the hub; subscribers keep waiting
            log.exception("tailing the event log of %s failed", channel.run_id)

    async def _follow(self, channel: Channel) -> None:
        """:meth:`_tail` for a blocking bus: wait on it; the store fills gaps and is the net.

        A pushed channel is read from the bus too (another hub's viewers need
        nothing from this one, but this hub's own pushes may lag a gap).
        """
        silent_since = last_store = time.monotonic()
        try:
            while not channel.complete and not self.closing and channel.subscribers > 0:
                rows = await self.bus.wait_async(channel.run_id, channel.last, self.net_interval)
                channel.accept(rows)
                now = time.monotonic()
                if rows:
                    silent_since = now
                if channel.has_gap() or now - last_store >= self.net_interval:
                    last_store = now
                    stored = await anyio.to_thread.run_sync(
                        self._tail_rows, channel.run_id, channel.last, 2000
                    )
                    if channel.accept(stored):
                        silent_since = now
                if not rows and now - silent_since >= self.orphan_check:
                    silent_since = now
                    await anyio.to_thread.run_sync(self._expire_orphan, channel.run_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bus error must not kill the hub; retry after a pause
            log.exception("following run %s on the event bus failed", channel.run_id)
            await asyncio.sleep(1.0)
            if not channel.complete and not self.closing and channel.subscribers > 0:
                channel.tailer = asyncio.create_task(self._follow(channel))

    # --------------------------------------------------------------- shutdown

    def close(self) -> None:
        """End every stream now (without ``done``), so clients reconnect to the next hub."""
        self.closing = True
        for channel in list(self.channels.values()):
            channel.wake()
            if channel.tailer is not None:
                channel.tailer.cancel()


class Subscription:
    """One subscriber's place in a channel: :meth:`stream` from a cursor, then :meth:`close`."""

    def __init__(self, broker: Broker, channel: Channel) -> None:
        self.broker = broker
        self.channel = channel
        self._closed = False

    def finished_at(self, after: int) -> bool:
        """True when the run has ended and ``after`` is at or past its ``done``: nothing to send.

        The route answers 204 then, which also tells a browser's EventSource
        (which reconnects whenever a stream ends) to stop.
        """
        return self.channel.complete and after >= self.channel.last

    async def stream(
        self, after: int = 0, framing: Framing = "official", timing: bool = False
    ) -> AsyncIterator[bytes]:
        """SSE bytes after ``after``: history first, then live, until ``done``.

        ``timing``: each event's data object carries its emit time (``nearnb_at``).

        Ends early (without ``done``) only when the hub shuts down, which a
        client sees as a dropped connection and resumes elsewhere or later.
        """
        channel, broker = self.channel, self.broker
        cursor = after
        first = True
        try:
            while True:
                chunk, cursor = channel.frames(cursor, framing, timing)
                if chunk:
                    if first:
                        chunk, first = retry_field() + chunk, False
                    yield chunk
                    continue
                if (channel.complete and cursor >= channel.last) or broker.closing:
                    return
                await channel.wait(cursor)
        finally:
            self.close()

    def close(self) -> None:
        """Leave the channel; idempotent, as the stream's end and the disconnect both call it."""
        if not self._closed:
            self._closed = True
            self.broker._leave(self.channel)
