"""The run process's side of the bus: honour cancel requests, send heartbeats.

A run may be stopped from anywhere (a hub's cancel route, a notebook
attached to it through another hub, ``nearnb attach --cancel``); they all
record a request on the bus (:meth:`~nearnb.bus.EventBus.request_cancel`).
Only the process executing the run can stop its agent and close its provider
stream, so each such process runs one light :class:`RunWatcher` thread that,
for every run it executes:

* asks the bus every :attr:`RunWatcher.poll` seconds (50 ms) whether a cancel
  was requested — one query per bus for all its runs — and if so cancels the
  run locally, exactly as a Stop click would (the partial message
  ``incomplete``, the run ``cancelled``);
* beats every ``$NEARNB_HEARTBEAT_INTERVAL`` seconds (1 s), so a hub on any
  machine can tell a live run from one whose process died
  (:mod:`nearnb.liveness`).

The thread exists only while the process has runs, and a failing bus (Redis
restarting) is logged and retried, never raised into a run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from .bus import EventBus, beat_interval, owner_id

logger = logging.getLogger("nearnb.bus")

OnCancel = Callable[[str], None]
#: Seconds between cancel checks: a cancel takes effect within about this long.
POLL = 0.05


class RunWatcher:
    """One thread watching every run of this process (see the module docstring)."""

    def __init__(self, *, poll: float = POLL, interval: float | None = None) -> None:
        self.poll = poll
        self.interval = interval
        self._runs: dict[str, tuple[EventBus, OnCancel]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._fresh: set[str] = set()  # runs not beaten yet: beat them at once
        self._failing = False

    def watch(self, run_id: str, bus: EventBus, on_cancel: OnCancel) -> None:
        """Watch ``run_id`` on ``bus``: ``on_cancel(by)`` once a cancel is requested."""
        with self._lock:
            self._runs[run_id] = (bus, on_cancel)
            self._fresh.add(run_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="nearnb-bus", daemon=True)
                self._thread.start()
        self._wake.set()

    def unwatch(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)
            self._fresh.discard(run_id)

    @property
    def watching(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    def _groups(self, run_ids: set[str] | None = None) -> dict[EventBus, list[str]]:
        groups: dict[EventBus, list[str]] = {}
        for run_id, (bus, _) in self._runs.items():
            if run_ids is None or run_id in run_ids:
                groups.setdefault(bus, []).append(run_id)
        return groups

    def _loop(self) -> None:
        interval = self.interval or beat_interval()
        owner = owner_id()
        next_beat = 0.0
        while True:
            with self._lock:
                if not self._runs:
                    self._thread = None
                    return
                now = time.monotonic()
                due = now >= next_beat
                beats = self._groups(None if due else set(self._fresh))
                self._fresh.clear()
                checks = self._groups()
            if due:
                next_beat = now + interval
            for bus, ids in beats.items():
                self._guard(lambda b=bus, i=ids: b.beat(i, owner))
            for bus, ids in checks.items():
                requested = self._guard(lambda b=bus, i=ids: b.cancel_requested(i)) or {}
                for run_id, by in requested.items():
                    with self._lock:
                        entry = self._runs.pop(run_id, None)
                    if entry is not None:
                        logger.info("nearnb: run %s: cancel requested by %s", run_id, by)
                        self._guard(lambda cb=entry[1], who=by: cb(who))
            self._wake.wait(self.poll)
            self._wake.clear()

    def _guard(self, call: Callable[[], object]) -> object:
        """Run one bus call; log the first failure of a series, never raise."""
        try:
            result = call()
        except Exception:
            if not self._failing:
                logger.exception("nearnb: the event bus failed; retrying")
            self._failing = True
            return None
        if self._failing:
            logger.info("nearnb: the event bus answers again")
        self._failing = False
        return result

    def _after_fork(self) -> None:
        """In a forked child: no thread runs there, and the parent's runs are not its own."""
        self._lock = threading.Lock()
        self._runs.clear()
        self._fresh.clear()
        self._thread = None


_watcher = RunWatcher()
os.register_at_fork(after_in_child=_watcher._after_fork)


def watcher() -> RunWatcher:
    """This process's watcher."""
    return _watcher
