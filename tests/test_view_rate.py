"""The rate bound, for every event mix: <= 20 refreshes and <= 100 comm
messages in any one second, boundaries shown promptly, the final view exact.

Mixes (nearnb.view.mixes): one long message, 300 short messages in one
second, streamed tool steps, a flood of notices, a run that fails mid-stream.
They are played on a manual clock that stands in for the view's timer thread
(no sleeps); widget traffic goes to recording comms and is counted exactly.
"""

from __future__ import annotations

import threading
import time

import pytest

from nearnb.reducer import reduce
from nearnb.view import RunInfo
from nearnb.view.bundle import final_bundle
from nearnb.view.handle import HandleRenderer
from nearnb.view.mixes import MIXES, play, short_messages
from nearnb.view.sink import RecordingSink
from nearnb.view.testing import ManualClock, busiest_second, recording_comms
from nearnb.view.widget import WidgetRenderer

INFO = RunInfo(agent_name="rate", model="local::smollm2")


@pytest.mark.parametrize("mix", list(MIXES))
def test_widget_view_stays_within_both_budgets(mix: str) -> None:
    timed = MIXES[mix]()
    clock, sink = ManualClock(), RecordingSink()
    with recording_comms(clock) as wire:
        view = WidgetRenderer(INFO, sink=sink, clock=clock, autoflush=False)
        played = play(view, clock, timed)
    assert busiest_second(played.refreshes) <= 20
    assert busiest_second(wire.times) <= 100  # everything: opens, updates, closes
    assert view.kit.sent == wire.count()  # the budget counts what the wire carries
    assert played.latency <= 0.5  # a boundary waits for a slot, not for the end
    ((data, metadata),) = sink.final
    assert (data, metadata) == final_bundle(reduce(e for _, e in timed), INFO)
    opened = {cid for kind, cid, _ in wire.messages if kind == "open"}
    closed = {cid for kind, cid, _ in wire.messages if kind == "close"}
    assert opened == closed  # nothing leaks, though closing was paced


@pytest.mark.parametrize("mix", list(MIXES))
def test_handle_view_stays_within_its_refresh_rate(mix: str) -> None:
    timed = MIXES[mix]()
    clock, sink = ManualClock(), RecordingSink()
    view = HandleRenderer(INFO, sink=sink, clock=clock, autoflush=False)
    played = play(view, clock, timed)
    assert busiest_second(played.refreshes) <= 5  # 4/s, plus the final bundle
    assert len(sink.calls) == len(played.refreshes) + 1  # the first show, then updates
    assert sink.final == [final_bundle(reduce(e for _, e in timed), INFO)]


def test_a_burst_of_short_messages_is_batched_into_few_children() -> None:
    """300 answers in a second: each refresh adds a bounded number of
    transcript children, and all 300 answers are there, in order."""
    clock = ManualClock()
    with recording_comms(clock) as wire:
        view = WidgetRenderer(INFO, sink=RecordingSink(), clock=clock, autoflush=False)
        play(view, clock, short_messages(), finish=False)
        texts = [
            output["data"]["text/markdown"]
            for kind, _, data in wire.messages
            if kind == "open"
            for output in data["state"].get("outputs", [])
        ]
        children = sum(
            1 for kind, _, data in wire.messages if kind == "open" and data["state"].get("outputs")
        )
        view.finish()
    assert texts == [f"Answer {i} is short." for i in range(300)]
    assert children <= 3 * view.throttle.flushes


def test_the_bound_holds_with_real_threads_and_a_real_clock() -> None:
    """Events from a feeder thread as fast as it can go, the view's own timer
    thread, a Stop click from a third thread, finish on this one."""
    timed = short_messages()
    sink = RecordingSink()
    stopped: list[bool] = []
    with recording_comms(time.monotonic) as wire:
        view = WidgetRenderer(INFO, sink=sink, on_stop=lambda: stopped.append(True))
        half, clicked = len(timed) // 2, threading.Event()

        def feed() -> None:
            for i, (_, event) in enumerate(timed):
                if i == half:
                    clicked.wait(10)  # mid-run, so the click is not a no-op
                view(event)

        feeder = threading.Thread(target=feed)
        clicker = threading.Thread(target=lambda: (view.stop(), clicked.set()))
        feeder.start()
        clicker.start()
        feeder.join()
        clicker.join()
        view.finish()
        deadline = time.monotonic() + 10
        while view.cleanup_wait is not None and time.monotonic() < deadline:
            time.sleep(0.02)
    assert view.cleanup_wait is None and stopped == [True]
    assert busiest_second(wire.times) <= 100
    assert sink.final == [final_bundle(reduce(e for _, e in timed), INFO)]
    opened = {cid for kind, cid, _ in wire.messages if kind == "open"}
    assert opened == {cid for kind, cid, _ in wire.messages if kind == "close"}
