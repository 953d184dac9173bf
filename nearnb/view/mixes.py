"""Event mixes on a manual clock, and a player that drives a view through them.

The rate bound (at most 20 refreshes and 100 comm messages in any second)
must hold for *every* mix, not just one long message, so the tests and
``bench/bench_view.py`` share these mixes: one long message, 300 short
messages in one second, streamed tool steps, a flood of notices, and a run
that fails mid-stream. Each mix is a list of ``(time, event)`` with the
event's ``at`` equal to its time.

:func:`play` feeds a view on a :class:`~nearnb.view.testing.ManualClock` and
stands in for the view's timer thread exactly: whenever a deferred refresh
(or, after the end, a deferred close) falls due before the next event, the
clock stops there and the view ticks. No sleeps, fully deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..events import Event
from .testing import EventFactory, ManualClock

Timed = list[tuple[float, Event]]
#: A timer wakes a hair after its deadline (never exactly on it, in float).
TIMER_SLACK = 1e-9

TRACEBACK = 'Traceback (most recent call last):\n  File "agent.py"\nValueError: <boom>'
PARAGRAPH = "Virtue is knowledge, said Socrates, and nobody errs willingly. " * 6


class TimedFactory(EventFactory):
    """An :class:`EventFactory` whose events are stamped at ``self.now``,
    collecting ``(time, event)`` pairs; plus run-step helpers."""

    def __init__(self, **kwargs: Any) -> None:
        self.now = 0.0
        self.timed: Timed = []
        super().__init__(clock=lambda: self.now, **kwargs)

    def event(self, name: str, data: Any) -> Any:
        event = super().event(name, data)
        self.timed.append((self.now, event))
        return event

    def streamed_message(self, chunks: list[str], **kwargs: Any) -> Any:
        """Eager (the base class's is a generator): events are timed when made."""
        return list(super().streamed_message(chunks, **kwargs))

    def at(self, t: float) -> TimedFactory:
        self.now = t
        return self

    def step(self, name: str, step_id: str, status: str, calls: list[dict[str, Any]]) -> Any:
        data = {
            "id": step_id,
            "object": "thread.run.step",
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "assistant_id": "agent",
            "type": "tool_calls",
            "status": status,
            "step_details": {"type": "tool_calls", "tool_calls": calls},
        }
        return self.event(name, data)

    def step_delta(self, step_id: str, index: int, **function: str) -> Any:
        fragment: dict[str, Any] = {"index": index, "type": "function", "function": function}
        if index == 0 and "name" in function:
            fragment["id"] = f"call_{step_id}"
        return self.event(
            "thread.run.step.delta",
            {
                "id": step_id,
                "object": "thread.run.step.delta",
                "delta": {"step_details": {"type": "tool_calls", "tool_calls": [fragment]}},
            },
        )


def _call(step_id: str, name: str, arguments: str, output: str | None) -> dict[str, Any]:
    return {
        "id": f"call_{step_id}",
        "type": "function",
        "function": {"name": name, "arguments": arguments, "output": output},
    }


def long_message(deltas: int = 3000, rate: float = 1000.0) -> Timed:
    """One answer of ``deltas`` 4-char chunks (Markdown paragraphs) at ``rate``/s."""
    text = ""
    while len(text) < deltas * 4:
        text += PARAGRAPH + "\n\n"
    return timed_stream([text[i : i + 4] for i in range(0, deltas * 4, 4)], rate)


def timed_stream(chunks: list[str], rate: float) -> Timed:
    """One streamed answer of ``chunks``, a delta every ``1/rate`` seconds."""
    f = TimedFactory()
    f.start()
    msg_id, _ = f.message_created()
    for i, chunk in enumerate(chunks):
        f.at(i / rate).delta(msg_id, chunk)
    f.at(len(chunks) / rate).message_done(msg_id, "".join(chunks))
    f.end()
    return f.timed


def short_messages(messages: int = 300, seconds: float = 1.0) -> Timed:
    """``messages`` answers of three deltas each, all within ``seconds``."""
    f = TimedFactory()
    f.start()
    gap = seconds / messages
    for i in range(messages):
        f.at(i * gap)
        msg_id, _ = f.message_created()
        for word in (f"Answer {i}", " is", " short."):
            f.delta(msg_id, word)
        f.message_done(msg_id, f"Answer {i} is short.")
    f.at(seconds).end()
    return f.timed


def tool_steps(steps: int = 60, seconds: float = 1.0, fragments: int = 8) -> Timed:
    """Streamed tool calls (created, in_progress, name/argument deltas,
    completed with the output), each followed by a short answer."""
    f = TimedFactory()
    f.start()
    gap = seconds / steps
    for i in range(steps):
        f.at(i * gap)
        step_id = f"step_{i}"
        f.step("thread.run.step.created", step_id, "in_progress", [])
        f.step_delta(step_id, 0, name="add")
        f.step("thread.run.step.in_progress", step_id, "in_progress", [])
        arguments = json.dumps({"a": i, "b": 2 * i, "note": "x" * fragments})
        size = -(-len(arguments) // fragments)
        for start in range(0, len(arguments), size):
            f.step_delta(step_id, 0, arguments=arguments[start : start + size])
        output = str(3 * i)
        f.step(
            "thread.run.step.completed",
            step_id,
            "completed",
            [_call(step_id, "add", arguments, output)],
        )
        msg_id, _ = f.message_created()
        f.delta(msg_id, f"The sum is {output}.")
        f.message_done(msg_id, f"The sum is {output}.")
    f.at(seconds).end()
    return f.timed


def notices(count: int = 200, seconds: float = 1.0) -> Timed:
    """A flood of notices (each changes the header), with a short streamed
    answer after every 20th."""
    f = TimedFactory()
    f.start()
    gap = seconds / count
    for i in range(count):
        f.at(i * gap)
        notice_id, _ = f.message_created("system:notice")
        f.message_done(notice_id, f"notice {i}", message_type="system:notice")
        if i % 20 == 19:
            f.streamed_message([f"After notice {i}", ", an answer."])
    f.at(seconds).end()
    return f.timed


def failed_run(deltas: int = 500, rate: float = 1000.0) -> Timed:
    """Streaming, a tool step left running, then the run fails with a traceback."""
    f = TimedFactory()
    f.start()
    msg_id, _ = f.message_created()
    for i in range(deltas):
        f.at(i / rate).delta(msg_id, f"w{i} " + ("\n\n" if i % 100 == 99 else ""))
    t = deltas / rate
    f.at(t).step("thread.run.step.created", "step_x", "in_progress", [])
    f.step_delta("step_x", 0, name="search", arguments='{"q": "virtue"}')
    f.message_done(
        msg_id,
        "".join(f"w{i} " + ("\n\n" if i % 100 == 99 else "") for i in range(deltas)),
        status="incomplete",
    )
    f.event("error", {"message": "ValueError: <boom>", "code": "server_error"})
    f.end(
        "failed",
        last_error={"code": "server_error", "message": "ValueError: <boom>"},
        metadata={"nearnb.traceback": TRACEBACK},
    )
    return f.timed


def child_step(
    parent: TimedFactory, child: TimedFactory, status: str, output: str | None = None
) -> Any:
    """The parent's ``run_agent`` step that points at ``child`` (as nearnb.children emits)."""
    arguments = json.dumps({"agent_id": child.agent, "thread_id": child.thread_id})
    call = {
        "id": f"call_{child.run_id}",
        "type": "function",
        "function": {"name": "run_agent", "arguments": arguments, "output": output},
    }
    data = {
        "id": f"step_{child.run_id}",
        "object": "thread.run.step",
        "run_id": parent.run_id,
        "thread_id": parent.thread_id,
        "assistant_id": "agent",
        "type": "tool_calls",
        "status": status,
        "step_details": {"type": "tool_calls", "tool_calls": [call]},
        "metadata": {
            "nearnb.child_thread_id": child.thread_id,
            "nearnb.child_run_id": child.run_id,
            "nearnb.child_agent": f"local/{child.agent}/0.1.0",
        },
    }
    return parent.event(f"thread.run.step.{status}", data)


def sub_agents(deltas: int = 1500, rate: float = 1000.0) -> dict[str, Timed]:
    """A parent whose two children stream *at the same time* (``deltas`` each at
    ``rate``/s, interleaved), the first with a grandchild streaming too; the
    parent writes progress between them. Keyed by run id: merge with :func:`merged`."""
    parent = TimedFactory(run_id="run_parent", thread_id="thread_parent")
    kids = [
        TimedFactory(run_id=f"run_{name}", thread_id=f"thread_{name}")
        for name in ("talker", "tooler", "grandchild")
    ]
    for kid, name in zip(kids, ("talker", "tooler", "grandchild"), strict=True):
        kid.agent = name  # type: ignore[attr-defined]
    talker, tooler, grand = kids
    parent.start()
    parent.streamed_message(["Asking ", "two helpers."])
    for kid in (talker, tooler):
        child_step(parent, kid, "created")
        child_step(parent, kid, "in_progress")
        kid.start()
    child_step(talker, grand, "created")
    grand.start()
    ids = {kid.run_id: kid.message_created()[0] for kid in kids}
    text = (PARAGRAPH + "\n\n") * (deltas * 4 // len(PARAGRAPH) + 1)
    chunks = [text[i : i + 4] for i in range(0, deltas * 4, 4)]
    for i, chunk in enumerate(chunks):
        for kid in kids:
            kid.at(i / rate).delta(ids[kid.run_id], chunk)
    end = len(chunks) / rate
    answer = "".join(chunks)
    # Each run ends before the step that stands for it, as run_child waits for it.
    grand.at(end).message_done(ids[grand.run_id], answer)
    grand.end()
    child_step(talker.at(end + 0.005), grand, "completed", answer)
    for kid in (talker, tooler):
        kid.at(end + 0.005).message_done(ids[kid.run_id], answer)
        kid.end()
        child_step(parent.at(end + 0.01), kid, "completed", answer)
    parent.streamed_message(["Both ", "answered."])
    parent.end()
    return {f.run_id: f.timed for f in (parent, *kids)}


def merged(runs: dict[str, Timed]) -> Timed:
    """Several runs' timed events as one feed, in time order (stable per run)."""
    return sorted((pair for timed in runs.values() for pair in timed), key=lambda p: p[0])


MIXES: dict[str, Callable[[], Timed]] = {
    "long message": long_message,
    "300 short messages": short_messages,
    "tool steps": tool_steps,
    "notices": notices,
    "failed run": failed_run,
}


@dataclass
class Played:
    """What happened while a mix was played into a view."""

    refreshes: list[float] = field(default_factory=list)  # clock time of each refresh
    latency: float = 0.0  # the longest an event waited for a refresh that showed it


def play(view: Any, clock: ManualClock, timed: Timed, *, finish: bool = True) -> Played:
    """Feed ``timed`` into ``view`` at its times, ticking as its timer would.

    ``view`` is a :class:`~nearnb.view.base.Renderer` built on ``clock``
    with ``autoflush=False``. With ``finish`` the view is finished after the
    last event and its deferred cleanup run to the end.
    """
    played = Played()
    waiting: float | None = None  # time of the oldest event not yet rendered

    def refreshed() -> None:
        nonlocal waiting
        played.refreshes.append(clock.now)
        if waiting is not None:
            played.latency = max(played.latency, clock.now - waiting)
            waiting = None

    def run_timer_until(t: float) -> None:
        while view.throttle.pending:
            wait = view.throttle.remaining()
            if clock.now + wait > t:
                return
            clock.now += wait + TIMER_SLACK * (wait > 0)
            before = view.throttle.flushes
            view.tick()
            if view.throttle.flushes != before:
                refreshed()

    for t, event in timed:
        run_timer_until(t)
        clock.now = max(clock.now, t)
        before = view.throttle.flushes
        view(event)
        if view.throttle.flushes != before:
            refreshed()
        elif view.throttle.pending and waiting is None:
            waiting = clock.now
    run_timer_until(float("inf"))
    if finish:
        view.finish()
        refreshed()  # the final render (a widget's is the static bundle)
        while view.cleanup_wait is not None:  # closing models, paced like refreshes
            clock.now += view.cleanup_wait + TIMER_SLACK
            view.tick()
    return played
