"""A view handed whole batches (a run's sink does that) shows what it would event by event.

:func:`nearnb.sinks.per_event` hands a renderer's ``feed_batch`` the sink's
batch; the renderer folds it under one lock (runs of compact deltas at once)
and offers one refresh. These tests hold that path to the per-event one on
the same events, including a sub-agent's events interleaved with the
parent's, and check the sink itself: every event delivered once, in order,
whatever the batch sizes, and ``close`` delivers what is still queued.
"""

from __future__ import annotations

import threading

from nearnb.events import CompactDelta, Event
from nearnb.sinks import QueuedSink, per_event
from nearnb.view.bundle import RunInfo
from nearnb.view.handle import HandleRenderer
from nearnb.view.sink import RecordingSink
from nearnb.view.testing import EventFactory, ManualClock


def compact(event: Event) -> Event:
    """``event`` with its text delta in the compact form a live run uses."""
    if event.event != "thread.message.delta":
        return event
    data = event.data
    packed = CompactDelta(data["id"], data["delta"]["content"][0]["text"]["value"])
    return Event.trusted(event.seq, event.event, packed, event.run_id, event.thread_id, event.at)


def run_events(run_id: str = "run_test", chunks: int = 40) -> list[Event]:
    f = EventFactory(run_id=run_id)
    events = f.start()
    events += f.streamed_message([f"w{i} " for i in range(chunks)])
    events += f.streamed_message(["second ", "answer"])
    return events + f.end()


def renderer() -> tuple[HandleRenderer, RecordingSink]:
    sink = RecordingSink()
    view = HandleRenderer(RunInfo(agent_name="a"), sink=sink, clock=ManualClock(), autoflush=False)
    return view, sink


def finished(view: HandleRenderer, sink: RecordingSink) -> tuple:
    view.finish()
    state = view.state
    texts = [m.text for m in state.messages]
    return texts, state.deltas, state.chars, state.status, sink.final


def test_batches_show_what_single_events_show() -> None:
    events = run_events()
    one, one_sink = renderer()
    for event in events:
        one(event)
    for size in (1, 3, 17, len(events)):
        batched, sink = renderer()
        for start in range(0, len(events), size):
            batched.feed_batch([compact(e) for e in events[start : start + size]])
        assert finished(batched, sink) == finished(one, one_sink)


def test_a_child_runs_events_in_a_batch_go_to_the_child() -> None:
    parent, child = run_events("run_parent", 5), run_events("run_child", 7)
    mixed = [*parent[:4], *child[:6], *parent[4:], *child[6:]]
    one, _ = renderer()
    for event in mixed:
        one(event)
    batched, _ = renderer()
    batched.feed_batch([compact(e) for e in mixed])
    assert batched.state.deltas == one.state.deltas == 7
    assert batched.tree.runs["run_child"].deltas == one.tree.runs["run_child"].deltas == 9
    assert [m.text for m in batched.tree.runs["run_child"].messages] == [
        m.text for m in one.tree.runs["run_child"].messages
    ]


def test_per_event_hands_a_renderer_its_batch_method() -> None:
    view, _ = renderer()
    assert per_event(view) == view.feed_batch
    seen: list[int] = []
    consume = per_event(lambda e: seen.append(e.seq))
    consume(run_events()[:3])
    assert seen == [1, 2, 3]


def test_a_sink_delivers_every_event_once_in_order_and_drains_on_close() -> None:
    got: list[int] = []
    batches: list[int] = []
    gate = threading.Event()

    def consume(batch: list[Event]) -> None:
        gate.wait(5)  # the first batch waits: the rest queue up behind it
        batches.append(len(batch))
        got.extend(e.seq for e in batch)

    sink = QueuedSink(consume, name="test")
    events = run_events(chunks=500)
    for event in events:
        sink.put(compact(event))
    gate.set()
    assert sink.close(timeout=10)
    assert got == [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len(batches) < len(got)  # coalesced while the consumer was busy
    sink.put(run_events()[0])  # after close: dropped, not delivered
    assert len(got) == len(events)
