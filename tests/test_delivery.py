"""Delivery off the agent's thread: sinks have their own queues and cannot hurt the run."""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import pytest

from nearnb.events import Event
from nearnb.runlog import RunLog
from nearnb.runs import start_run
from nearnb.sinks import QueuedSink, per_event
from nearnb.store import Store
from tests.agent_helpers import make_agent
from tests.support.openai_server import Reply, ScriptedOpenAI

PIECES = [f"w{i} " for i in range(200)]


def test_a_sink_sees_every_event_once_in_order_even_when_attached_late() -> None:
    log = RunLog("run_a", "thread_a")
    early: list[int] = []
    log.attach(QueuedSink(per_event(lambda e: early.append(e.seq)), name="early"))
    for i in range(50):
        log.emit("thread.message.delta", {"i": i})
    late: list[int] = []
    late_sink = log.attach(QueuedSink(per_event(lambda e: late.append(e.seq)), name="late"))
    for i in range(50):
        log.emit("thread.message.delta", {"i": i})
    sinks = log.close()
    assert all(s.close(5) for s in sinks)
    assert early == late == list(range(1, 101))
    assert late_sink.processed == 100
    assert log.emit("after", {}) is None  # a closed log takes nothing more


def test_sinks_reading_the_log_miss_no_wake_up_and_see_each_event_once() -> None:
    """Sinks read the log's own entries through cursors; the emitter wakes a sink only
    when it sleeps. One event at a time, each awaited, makes every sink run dry and go
    back to sleep just as the next event comes (thread switches forced as often as the
    interpreter allows): a wake-up lost there leaves an event waiting for ever."""
    log = RunLog("run_w", "thread_w")
    seen: list[list[int]] = [[], [], []]
    sinks = [
        log.attach(
            QueuedSink(per_event(lambda e, got=got: got.append(e.seq)), name=f"s{i}", linger=0)
        )
        for i, got in enumerate(seen)
    ]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(3000):
            seq = log.emit_text("msg_1", "x")
            assert all(sink.wait_for(seq, 5) for sink in sinks), f"event {seq} was never delivered"
    finally:
        sys.setswitchinterval(interval)
    with pytest.raises(RuntimeError, match="follows a log"):
        sinks[0].put(log.events[0])  # the log feeds it
    assert all(sink.close(5) for sink in log.close())
    assert seen == [list(range(1, 3001))] * 3


def test_an_event_emitted_just_as_a_sink_goes_to_sleep_still_wakes_it() -> None:
    """The window the protocol closes: the sink found nothing new and is about to sleep,
    and the emitter appends (seeing no sleeper, so ringing nothing). The sink's second
    look at the log, after it says it sleeps, must find that event."""
    log = RunLog("run_s", "thread_s")
    got: list[int] = []

    class RacingSink(QueuedSink):
        raced = False

        def _sleep(self) -> None:
            if not self.raced and got:  # after the first event: emit in the window
                RacingSink.raced = True
                log.emit_text("msg_1", "in the window")
            super()._sleep()

    sink = log.attach(RacingSink(per_event(lambda e: got.append(e.seq)), name="racing", linger=0))
    log.emit_text("msg_1", "first")
    assert sink.wait_for(2, 5), "the event emitted as the sink went to sleep was never delivered"
    assert RacingSink.raced
    assert all(s.close(5) for s in log.close())
    assert got == [1, 2]


def test_a_raising_sink_is_reported_once_and_keeps_receiving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[int] = []

    def flaky(event: Event) -> None:
        seen.append(event.seq)
        raise ValueError("broken view")

    sink = QueuedSink(per_event(flaky), name="flaky")
    with caplog.at_level(logging.ERROR, logger="nearnb.sinks"):
        for seq in range(1, 4):
            sink.put(Event.model_construct(seq=seq, event="x", data={}, run_id="r", thread_id="t"))
            assert sink.wait_for(seq, 5)
        assert sink.close(5)
    assert isinstance(sink.error, ValueError)
    reports = [r for r in caplog.records if "flaky failed" in r.getMessage()]
    assert len(reports) == 1, "reported once, not once per event"
    # The batch that raised stops at its first event; later batches are delivered.
    assert seen[0] == 1 and seen[-1] == 3


def test_a_stuck_view_does_not_stall_the_run_and_a_raising_one_does_not_fail_it(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(Reply.text(*PIECES))
    agent = make_agent(tmp_path / "a", "env.add_reply(env.completion([], stream=True))\n")
    release = threading.Event()
    stuck_seen: list[int] = []

    def stuck(event: Event) -> None:
        stuck_seen.append(event.seq)
        release.wait(30)

    def raising(event: Event) -> None:
        raise RuntimeError("a view that always fails")

    store = Store()
    handle = start_run(agent, "go", store=store, on_event=stuck)
    handle.subscribe(raising)
    # The run ends (and the store has its whole log) while the stuck view holds event 1.
    deadline = time.monotonic() + 30
    while not handle.done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert handle.done
    assert handle.state.status == "completed"
    assert stuck_seen == [1]
    logged = store.events(handle.run_id)
    assert [e.seq for e in logged] == list(range(1, len(handle.events) + 1))
    assert logged[-1].event == "done"
    assert store.get_run(handle.run_id).status == "completed"
    release.set()
    result = handle.wait()
    assert result.status == "completed" and result.text == "".join(PIECES)
    assert stuck_seen[-1] == len(handle.events)  # drained once released


def test_the_store_holds_the_whole_log_when_a_run_ends_by_failure_or_cancel(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(Reply.text(*PIECES[:5]))
    failing = make_agent(
        tmp_path / "f", "env.add_reply(env.completion([], stream=True))\nraise KeyError('x')\n"
    )
    store = Store()
    result = start_run(failing, "go", store=store).wait()
    assert result.status == "failed"
    assert [e.seq for e in store.events(result.run_id)] == [e.seq for e in result.events]

    gate = threading.Event()
    srv.script(Reply.text("a", "b", "c", gate=gate))
    slow = make_agent(tmp_path / "s", "env.add_reply(env.completion([], stream=True))\n")
    first = threading.Event()
    handle = start_run(
        slow,
        "go",
        store=store,
        on_event=lambda e: first.set() if e.event == "thread.run.in_progress" else None,
    )
    assert first.wait(30)
    handle.cancel("test")
    gate.set()
    result = handle.wait()
    assert result.status == "cancelled"
    assert [e.seq for e in store.events(result.run_id)] == [e.seq for e in result.events]
    assert store.get_run(result.run_id).status == "cancelled"


def test_an_agent_reads_its_own_writes(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    """Rows come from the store sink, on another thread; reads wait for it."""
    srv.script(["one"], ["two"])
    code = (
        "for _ in range(2):\n"
        "    env.add_reply(env.completion([], stream=True))\n"
        "    env.add_reply('whole')\n"
        "    seen = [m['content'] for m in env.list_messages()]\n"
        "    env.add_reply(repr(seen))\n"
    )
    result = start_run(make_agent(tmp_path / "r", code), "hi").wait()
    assert result.status == "completed", result.traceback
    assert [m.text for m in result.messages][2] == repr(["hi", "one", "whole"])
    assert eval(result.messages[-1].text)[-2:] == ["two", "whole"]  # noqa: S307 - our own repr


def test_a_failed_start_leaves_no_thread_running(tmp_path: Path) -> None:
    agent = make_agent(tmp_path / "x", "pass\n")
    before = threading.active_count()
    for _ in range(20):
        with pytest.raises(ValueError, match="model is not valid Unicode"):
            start_run(agent, "hi", model="\ud800")
    assert threading.active_count() <= before
