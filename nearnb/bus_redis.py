"""The Redis Streams bus (``NEARNB_BUS=redis://…``): runs visible to every hub at once.

Layout, one run ``R`` (prefix ``nearnb``):

* ``nearnb:run:R:events`` — a stream; entry id ``{seq}-0`` for event ``seq``,
  fields ``e`` (event name), ``d`` (data as the store's JSON text), ``t``
  (emit time). Ids map one-to-one to sequence numbers, so a ``Last-Event-ID``
  given to one hub means the same on every other, and an ``XADD`` of a number
  already there is refused by Redis itself (no duplicates, ever). The key
  expires ``NEARNB_EVENT_TTL`` seconds after the last event at the earliest,
  as the store's log does after the run ends, and at most a quarter of that
  (a minute at most) later: a publisher refreshes the lifetime to TTL + that
  slack only when its last refresh is older than the slack, so a run's usual
  batch, one delta, is one ``XADD`` and nothing else.
* ``nearnb:run:R:cancel`` — who asked to cancel (``SET NX``, same lifetime).
* ``nearnb:run:R:beat`` — ``owner<TAB>time`` of the last heartbeat.

Live delivery is ``XREAD BLOCK`` on the run's stream from the reader's last
id (:meth:`RedisBus.wait_async`, on the hub's event loop with
``redis.asyncio``), so a hub learns of an event one network hop after the
producer publishes it, without polling.

Heartbeat times are wall-clock seconds of the producing machine, compared
with the hub's clock: machines must agree on the time within the TTL (NTP).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio

from .events import Event
from .eventseq import event_rows

log = logging.getLogger("nearnb.bus")

Row = tuple[int, str, str, float]
#: Most entries one read returns.
READ_COUNT = 2000
#: Most seconds a key's lifetime goes beyond the TTL (see the module docstring).
MAX_EXPIRY_SLACK = 60.0


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    return f"{scheme}{sep}***@{host}" if at else url


def _raise_unless_duplicate(error: Exception) -> None:
    """Raise ``error``, unless it is Redis refusing an entry id already there (a repeat)."""
    if "equal or smaller" not in str(error):
        raise error


def _rows(entries: Sequence[tuple[str, dict[str, str]]]) -> list[Row]:
    rows = []
    for entry_id, fields in entries:
        rows.append((int(entry_id.partition("-")[0]), fields["e"], fields["d"], float(fields["t"])))
    return rows


class RedisBus:
    """Per-run Redis streams, cancel keys and heartbeat keys (see the module docstring)."""

    blocking = True

    def __init__(self, url: str, *, event_ttl: float, prefix: str = "nearnb") -> None:
        self.url = url
        self.name = _redact(url)
        self.prefix = prefix
        self.ttl = max(1, int(event_ttl))
        self._slack = min(MAX_EXPIRY_SLACK, self.ttl / 4)
        self._refreshed: dict[str, float] = {}  # key -> monotonic time of its last EXPIRE
        self._redis = redis.Redis.from_url(url, decode_responses=True)
        self._async: dict[asyncio.AbstractEventLoop, Any] = {}
        self._lock = threading.Lock()

    def check(self) -> None:
        """Fail now, naming the bus, if Redis cannot be reached (a hub's start)."""
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            raise ValueError(f"cannot reach the event bus at {self.name}: {exc}") from None

    def key(self, run_id: str, part: str = "events") -> str:
        return f"{self.prefix}:run:{run_id}:{part}"

    # ------------------------------------------------------------------ events

    def publish(self, events: Sequence[Event]) -> None:
        """``XADD`` each event as entry ``{seq}-0``, in one round trip; keep the lifetime.

        A number already there is a duplicate publish: harmless, and skipped.
        """
        if not events:
            return
        # (key, entry id, fields) per event, from the store's rows (compact deltas unbuilt)
        entries = [
            (self.key(run_id), f"{seq}-0", {"e": name, "d": data, "t": repr(at)})
            for run_id, seq, name, data, _, at in event_rows(events)
        ]
        now = time.monotonic()
        stale = {
            key for key, _, _ in entries if now - self._refreshed.get(key, -math.inf) >= self._slack
        }
        if len(entries) == 1 and not stale:
            key, entry_id, fields = entries[0]
            try:
                self._redis.xadd(key, fields, id=entry_id)
            except redis.ResponseError as exc:
                _raise_unless_duplicate(exc)
            return
        pipe = self._redis.pipeline(transaction=False)
        for key, entry_id, fields in entries:
            pipe.xadd(key, fields, id=entry_id)
        for key in stale:
            pipe.expire(key, int(self.ttl + self._slack))
        for result in pipe.execute(raise_on_error=False):
            if isinstance(result, Exception):
                _raise_unless_duplicate(result)
        if len(self._refreshed) > 10_000:  # keys of runs long over: forget them
            self._refreshed = {k: t for k, t in self._refreshed.items() if now - t < self._slack}
        self._refreshed.update(dict.fromkeys(stale, now))

    def read(self, run_id: str, after: int = 0, limit: int | None = None) -> list[Row]:
        entries = self._redis.xrange(self.key(run_id), min=f"({after}-0", count=limit)
        return _rows(entries)

    def _client(self) -> Any:
        """The ``redis.asyncio`` client of the running loop (one per loop: they cannot move)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async.get(loop)
            if client is None:
                for old in [k for k in self._async if k.is_closed()]:
                    del self._async[old]
                client = self._async[loop] = redis.asyncio.Redis.from_url(
                    self.url, decode_responses=True
                )
            return client

    async def wait_async(self, run_id: str, after: int, timeout: float) -> list[Row]:
        """``XREAD BLOCK`` from entry ``{after}-0``: new events as soon as they are published."""
        block = max(1, int(timeout * 1000))
        found = await self._client().xread(
            {self.key(run_id): f"{after}-0"}, count=READ_COUNT, block=block
        )
        return _rows(found[0][1]) if found else []

    async def aclose(self) -> None:
        """Close the running loop's async client (the hub's shutdown)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async.pop(loop, None)
        if client is not None:
            await client.aclose()

    # --------------------------------------------------------------- control

    def request_cancel(self, run_id: str, by: str) -> bool:
        return bool(self._redis.set(self.key(run_id, "cancel"), by, nx=True, ex=self.ttl))

    def cancel_requested(self, run_ids: Sequence[str]) -> dict[str, str]:
        if not run_ids:
            return {}
        values = self._redis.mget([self.key(r, "cancel") for r in run_ids])
        return {r: v for r, v in zip(run_ids, values, strict=True) if v is not None}

    def beat(self, run_ids: Sequence[str], owner: str) -> None:
        import time

        value = f"{owner}\t{time.time()!r}"
        pipe = self._redis.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.set(self.key(run_id, "beat"), value, ex=self.ttl)
        pipe.execute()

    def last_beat(self, run_id: str) -> tuple[str, float] | None:
        value = self._redis.get(self.key(run_id, "beat"))
        if not value:
            return None
        owner, _, at = value.rpartition("\t")
        try:
            return owner, float(at)
        except ValueError:
            return None

    def close(self) -> None:
        self._redis.close()
