"""The renderer contract shared by every notebook view.

A renderer is an event callback: ``renderer(event)`` folds one event into its
own :class:`~nearnb.reducer.RunState` and, when the :class:`Throttle` allows,
re-renders; ``renderer.finish(result)`` renders the last state and replaces
the live output with the static bundle a saved notebook keeps. It never
knows where the events come from - a local run's worker thread, a hub's SSE
stream, a list being replayed - which is why the hub client can use it too.

Rate: every refresh - boundaries included - waits for the throttle's next
slot, and reports how many wire messages it sent, so any event mix stays
within 20 refreshes and 100 comm messages a second (:mod:`.throttle`).
``finish`` renders the true last state at once; work that may wait (closing
a widget's models) is spread over later slots by the same timer thread.

Threads: events arrive on whatever thread feeds the view (the run's worker,
or a queue thread of its own), the trailing flush comes from a small timer
thread, a Stop click may arrive on a kernel
subshell thread and ``finish`` on the cell's thread. One re-entrant lock
serialises all of them; widgets and the reducer state are only touched
under it. ``on_stop`` is called *outside* the lock so a canceller that
emits events synchronously cannot deadlock against the view.

Sub-agents: a renderer may be fed the events of its run's children too (a
caller follows each child a step names and feeds the same renderer); they
are routed by run id into :attr:`tree` (:class:`~nearnb.view.tree.RunTree`),
so the whole tree shares this one lock and this one throttle - the cell's
rate bound holds however many children stream. :meth:`follow_child` names a
child and gives it its own Stop (:meth:`stop_run`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..events import Event
from ..eventseq import EventSeq, event_of, raw_entries
from ..reducer import RunState
from .bundle import RunInfo, final_bundle
from .throttle import DEFAULT_INTERVAL, Clock, Throttle
from .tree import ChildInfo, RunTree

logger = logging.getLogger("nearnb.view")

#: Events after which the reader expects to see the change soon (counted in
#: the throttle's statistics; they take the next free slot like any change).
_BOUNDARY_PREFIXES = (
    "thread.run.",
    "thread.message.created",
    "thread.message.completed",
    "thread.message.incomplete",
)
_NOT_BOUNDARY = frozenset({"thread.run.step.delta", "thread.run.step.in_progress"})


def _run_of(entry: object) -> str:
    """The run id of a log entry (a compact delta's tuple, or an Event)."""
    return entry[5] if type(entry) is tuple else entry.run_id  # type: ignore[index,attr-defined]


def is_boundary(name: str) -> bool:
    """True for message/step/run boundaries and errors."""
    if name in _NOT_BOUNDARY:
        return False
    return name.startswith(_BOUNDARY_PREFIXES) or name in ("error", "done")


class Renderer:
    """Base class: reducer state, throttling, trailing flush and finishing.

    Subclasses implement :meth:`_render` (show the current state; return the
    wire messages it sent) and :meth:`_finalize` (replace the live output with
    a static bundle); :meth:`_cleanup` may spread work after the end.
    """

    def __init__(
        self,
        info: RunInfo,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Clock | None = None,
        autoflush: bool = True,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.info = info
        self.tree = RunTree()
        self.throttle = Throttle(interval, clock) if clock else Throttle(interval)
        self.on_stop = on_stop
        self.stop_requested = False
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._autoflush = autoflush
        self._ticker: threading.Thread | None = None
        self._finished = False
        self._cleanup_wait: float | None = None
        self._quiet = False  # set once the run is over: no more trailing flushes
        self._stoppers: dict[str, Callable[[], None]] = {}  # child run id -> its cancel
        self.stopping: set[str] = set()  # child runs whose Stop was clicked

    @property
    def state(self) -> RunState:
        """The root run's state (its children's are in :attr:`tree`)."""
        return self.tree.root

    @state.setter
    def state(self, value: RunState) -> None:
        self.tree.root = value

    # ------------------------------------------------------------------ feeding

    def __call__(self, event: Event) -> None:
        """Fold in one event; render now, later (coalesced) or not at all."""
        with self._lock:
            if self._finished or self.tree.apply(event) is None:
                return
            self._offer(is_boundary(event.event))

    def _offer(self, boundary: bool) -> None:
        """A change was folded in (under the lock): render now, or wake the timer."""
        was_pending = self.throttle.pending
        if self.throttle.offer(boundary=boundary):
            self._flush(boundary=boundary)
        elif self._autoflush and (not was_pending or self._ticker is None):
            # Wake the timer only when a change starts waiting: it then sleeps
            # until the change is due, not once per delta.
            self._arm_ticker()
        if self.state.done or self.state.terminal:
            self._quiet = True
            self._wake.notify_all()

    def feed(self, events: Iterable[Event]) -> None:
        """Fold in many events (a replay)."""
        for event in events:
            self(event)

    def feed_batch(self, events: list[Event]) -> None:
        """Fold in a batch (a run's sink hands one over), then offer one refresh.

        What ``self(event)`` for each would show, at the batch's end: the
        throttle would have let at most one of them render anyway. Events go
        to their run's state, a stretch of one run at a time.
        """
        if type(self).__call__ is not Renderer.__call__:  # a subclass routes events itself
            self.feed(events)
            return
        with self._lock:
            if self._finished:
                return
            stretch = events.stretch() if isinstance(events, EventSeq) else None
            if stretch is not None:  # one message's text: one run's, no boundary
                if self.tree.state_for(stretch).apply_stretch(stretch):  # type: ignore[arg-type]
                    self._offer(False)
                return
            changed = boundary = False
            entries = raw_entries(events)
            if not isinstance(entries, list):
                entries = list(entries)
            start = 0
            while start < len(entries):  # one stretch of one run's events at a time
                first = event_of(entries[start])
                end = start + 1
                while end < len(entries) and _run_of(entries[end]) == first.run_id:
                    end += 1
                part = entries[start:end]
                changed |= self.tree.state_for(first).apply_many(part) > 0
                boundary |= any(type(e) is not tuple and is_boundary(e.event) for e in part)
                start = end
            if changed:
                self._offer(boundary)

    def tick(self) -> bool:
        """Render a pending change if it is due; True if it rendered.

        The timer thread calls this; tests with a fake clock call it directly.
        After the end it carries on with the deferred cleanup instead.
        """
        with self._lock:
            if self._finished:
                if self._cleanup_wait is not None:
                    self._cleanup_wait = self._cleanup()
                return False
            if not self.throttle.due():
                return False
            self._flush(boundary=False)
            return True

    # ---------------------------------------------------------------- stopping

    def stop(self) -> None:
        """The Stop button: ask the run to cancel (once). Safe from any thread."""
        with self._lock:
            if self.stop_requested or self.state.terminal or self._finished:
                return
            self.stop_requested = True
            self.throttle.spend(self._on_stop_requested())
        if self.on_stop is not None:
            self.on_stop()

    def follow_child(
        self, run_id: str, *, stop: Callable[[], None] | None = None, **info: Any
    ) -> None:
        """Say how to stop a child run (its own Stop) and what it is (``agent_name``,
        ``show_streaming_message``); its events come through ``self(event)``."""
        with self._lock:
            if stop is not None:
                self._stoppers[run_id] = stop
            if info:
                self.tree.info[run_id] = ChildInfo(**info)

    def can_stop(self, run_id: str) -> bool:
        return run_id in self._stoppers

    def stop_run(self, run_id: str | None) -> None:
        """Stop one run of the tree: the root (:meth:`stop`) or one child only."""
        if run_id is None or run_id == self.state.run_id:
            self.stop()
            return
        with self._lock:
            child = self.tree.get(run_id)
            stopper = self._stoppers.get(run_id)
            if run_id in self.stopping or self._finished or stopper is None:
                return
            if child is not None and child.terminal:
                return
            self.stopping.add(run_id)
            self.throttle.spend(self._on_child_stop_requested(run_id))
        stopper()

    # --------------------------------------------------------------- finishing

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def cleanup_wait(self) -> float | None:
        """After the end: seconds until more deferred cleanup may run, None when done."""
        return self._cleanup_wait

    def finish(self, result: Any = None) -> None:
        """Render the final state and leave a static bundle. Idempotent.

        ``result`` may be a :class:`~nearnb.runs.RunResult` (its events are
        folded in - already-seen ones are skipped by ``seq`` - and its delta
        count is the one reported), a :class:`RunState` to render instead of
        the renderer's own, or ``None``.
        """
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self._wake.notify_all()
            deltas = None
            if isinstance(result, RunState):
                self.state = result
            elif result is not None:
                self.state.apply_many(getattr(result, "events", None) or ())
                self.tree.fold_result(result)
                deltas = getattr(result, "deltas", None)
            self.throttle.flushed(boundary=True, cost=self._render(final=True))
            data, metadata = final_bundle(self.state, self.info, deltas=deltas, tree=self.tree)
            self._finalize(data, metadata)
            self._cleanup_wait = self._cleanup()
            if self._cleanup_wait is not None and self._autoflush:
                self._arm_ticker()

    # ------------------------------------------------------------- subclasses

    def _render(self, *, final: bool = False) -> int:
        """Show the current state; return the wire messages sent (0 if none)."""
        raise NotImplementedError

    def _finalize(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        raise NotImplementedError

    def _on_stop_requested(self) -> int:
        """Reflect a Stop request in the view (under the lock); messages sent."""
        return 0

    def _again(self) -> bool:
        """True when the last refresh left work that needs another one even if no
        event comes (a sub-agent panel that did not fit in the message window)."""
        return False

    def _on_child_stop_requested(self, run_id: str) -> int:
        """Reflect a child's Stop request (under the lock); messages sent."""
        return 0

    def _cleanup(self) -> float | None:
        """After the end: do what the budget allows now; seconds until more
        can be done, or None when nothing is left."""
        return None

    # ------------------------------------------------------------------ timing

    def _flush(self, *, boundary: bool) -> None:
        cost = 0
        try:
            cost = self._render()
        except Exception:  # a rendering bug must never break the run
            logger.exception("nearnb: rendering failed")
        finally:
            self.throttle.flushed(boundary=boundary, cost=cost or 0)
        if self._again():  # the view left work for a later refresh (when it fits)
            self.throttle.pending = True
            if self._autoflush:
                self._arm_ticker()

    def _arm_ticker(self) -> None:
        if self._ticker is None:
            self._ticker = threading.Thread(
                target=self._tick_loop, name="nearnb-view-flush", daemon=True
            )
            self._ticker.start()
        else:
            self._wake.notify()

    def _tick_loop(self) -> None:
        """Trailing flush: a change deferred by the throttle is rendered when
        due even if no further event arrives (a stalled stream); after the
        end, the deferred cleanup is paced the same way."""
        with self._lock:
            try:
                while True:
                    delay: float | None
                    if self._finished:
                        delay = self._cleanup_wait = self._cleanup()
                        if delay is None:
                            return
                    elif self.throttle.pending:
                        delay = self.throttle.remaining()
                        if delay <= 0:
                            self._flush(boundary=False)
                            continue
                    elif self._quiet:
                        return
                    else:
                        delay = None
                    self._wake.wait(delay)
            finally:
                self._ticker = None
