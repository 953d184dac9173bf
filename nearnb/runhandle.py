"""A run executing in the background, as its caller holds it: observe, cancel, wait.

Apart from the orchestration (:mod:`nearnb.runs`) so that file stays about
one thing; :class:`RunHandle` only reads the run's context.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .events import Event, Run
from .eventseq import EventSeq, raw_entries
from .reducer import RunState
from .result import RunResult

if TYPE_CHECKING:
    from .agents import Agent
    from .messages import MessageSequencer

logger = logging.getLogger("nearnb.runs")

EventCallback = Callable[[Event], None]


class RunContext(Protocol):
    """What a handle reads of its run (``nearnb.runs.RunContext``, one layer up)."""

    thread_id: str
    run_id: str
    agent: Agent
    run: Run
    events: list[Event]
    finished: threading.Event
    children: list[Any]
    sequencer: MessageSequencer

    @property
    def state(self) -> RunState: ...

    def subscribe(self, callback: EventCallback, *, replay: bool = True) -> None: ...

    def cancel(self) -> None: ...

    def finish(self, status: str, error: BaseException | None = None) -> None: ...

    def drain_subscribers(self, timeout: float) -> None: ...


class RunHandle:
    """A run executing in the background: observe it, cancel it, wait for it."""

    def __init__(self, ctx: RunContext, thread: threading.Thread) -> None:
        self._ctx = ctx
        self._thread = thread

    thread_id = property(lambda self: self._ctx.thread_id)
    run_id = property(lambda self: self._ctx.run_id)
    agent = property(lambda self: self._ctx.agent)
    state = property(lambda self: self._ctx.state)
    events = property(lambda self: list(self._ctx.events))
    run = property(lambda self: self._ctx.run)

    @property
    def done(self) -> bool:
        return self._ctx.finished.is_set()

    # The child runs it started (env.run_agent), in order; a copy, for views to follow.
    children = property(lambda self: list(self._ctx.children))

    def child(self, run_id: str) -> RunHandle | None:
        """The child run a ``run_agent`` step names, so a view can follow it."""
        return next((c for c in self._ctx.children if c.run_id == run_id), None)

    def subscribe(self, callback: EventCallback, *, replay: bool = True) -> None:
        self._ctx.subscribe(callback, replay=replay)

    def cancel(self, reason: str = "user") -> None:
        """Ask the run to stop; safe from any thread, idempotent."""
        logger.info("nearnb: cancelling %s (%s)", self.run_id, reason)
        self._ctx.cancel()

    def wait(self, timeout: float | None = None, *, grace: float = 10.0) -> RunResult:
        """Block until the run ends and return its result.

        Ctrl-C / a kernel interrupt while waiting cancels the run. If the agent
        is stuck in a call that cannot see the cancel flag, the run is marked
        cancelled after ``grace`` seconds and its late events are dropped.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            # Short waits in a loop: the main thread then runs Python code often
            # enough for any interrupt (signal or simulated) to land promptly.
            while not self._ctx.finished.wait(0.1):
                if deadline is not None and time.monotonic() >= deadline:
                    break
        except KeyboardInterrupt:
            self.cancel("interrupted")
            if not self._ctx.finished.wait(grace):
                self._ctx.sequencer.settle_all(drain=False)
                self._ctx.finish("cancelled")
        if self._ctx.finished.is_set():
            # Subscribers (views) take the last events before the caller finishes them.
            self._ctx.drain_subscribers(grace)
        return self.result()

    def result(self) -> RunResult:
        events = self._ctx.events
        # The log as it is now, without making an Event of every text delta.
        events = events.snapshot() if isinstance(events, EventSeq) else list(events)
        result = RunResult.from_state(_outline(events), events, agent=self._ctx.agent.name)
        result.children = [child.result() for child in self._ctx.children]
        return result

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id} {self.state.status} deltas={self.state.deltas}>"


def _outline(events: Sequence[Event]) -> RunState:
    """The fold a result needs: every event but the deltas' text, which it never shows.

    A result's messages come whole from their ``completed`` events; folding
    each delta's text as well cost a tenth of a fast run's whole pipeline.
    """
    state = RunState()
    if isinstance(events, EventSeq):  # a log's: its Events, and how many deltas besides
        entries: Iterable[Event] = events.whole()
        deltas = len(events) - len(entries)  # type: ignore[arg-type]
    else:
        entries, deltas = raw_entries(events), 0
    for event in entries:
        if type(event) is tuple or event.event == "thread.message.delta":  # compact or not
            deltas += 1
        else:
            state.apply(event)
    state.deltas = deltas
    return state
