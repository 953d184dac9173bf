"""Compact text deltas: every reader sees exactly the dict, the JSON and the fold of today.

A run keeps each streamed chunk's ``thread.message.delta`` as a
:class:`~nearnb.events.CompactDelta` until someone reads ``event.data``. These
tests hold the compact form to the eager one: the same dict, byte-identical
JSON, equal events however they are read (dumps, ``==``, copies, pickling,
``repr``), the same rows in a real store, and the same reducer state when a
batch is folded at once.
"""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from nearnb.events import CompactDelta, Event, compact_json, message_delta, text_content
from nearnb.eventseq import EventSeq, event_rows, whole_events
from nearnb.logrows import log_rows
from nearnb.reducer import RunState, reduce
from nearnb.runlog import RunLog
from nearnb.store import Store

IDS = st.text(min_size=1, max_size=30)
TEXTS = st.text(max_size=40)  # any Unicode: quotes, controls, surrogate-free astral


def pair(seq: int, mid: str, text: str, index: int = 0) -> tuple[Event, Event]:
    """The same delta as a compact event and as an eager one."""
    args = ("run_x", "thread_x", float(seq))
    compact = Event.trusted(seq, "thread.message.delta", CompactDelta(mid, text, index), *args)
    eager = Event.trusted(seq, "thread.message.delta", message_delta(mid, text, index), *args)
    return compact, eager


@given(IDS, TEXTS, st.integers(min_value=0, max_value=10_000))
def test_the_compact_form_is_the_same_dict_and_the_same_json(mid: str, text: str, index: int):
    data = message_delta(mid, text, index)
    packed = CompactDelta(mid, text, index)
    assert packed.as_data() == data
    assert packed.to_json() == compact_json(data)  # byte for byte what the store kept before
    assert json.loads(packed.to_json()) == data


@given(IDS, TEXTS)
def test_a_compact_event_reads_as_the_eager_one_every_way(mid: str, text: str) -> None:
    ways = [
        lambda e: e.data,
        lambda e: e.model_dump(),
        lambda e: e.model_dump(mode="json"),
        lambda e: e.model_dump_json(),
        lambda e: e.data_json(),
        lambda e: repr(e),
        lambda e: dict(e),
        lambda e: copy.copy(e).data,
        lambda e: copy.deepcopy(e).data,
        lambda e: pickle.loads(pickle.dumps(e)).data,
        lambda e: e.model_copy(update={"seq": 9}).model_dump(),
        lambda e: e.parsed().model_dump(),
    ]
    for way in ways:
        compact, eager = pair(3, mid, text)
        assert way(compact) == way(eager)
    compact, eager = pair(3, mid, text)
    assert compact.text_delta == CompactDelta(mid, text) and eager.text_delta is None
    assert compact == eager  # compares whole: from here on an ordinary event
    assert compact.text_delta is None and compact.data is compact.data
    compact, eager = pair(3, mid, text)
    assert eager == compact and compact.data == eager.data


def test_the_store_keeps_compact_deltas_as_it_kept_dicts(tmp_path: Path) -> None:
    store = Store(tmp_path / "nearnb.db")
    try:
        compact = [pair(seq, "msg_1", f'w{seq} "é\n')[0] for seq in range(1, 6)]
        store.append_events(compact)
        stored = store.events("run_x")
        assert [e.data for e in stored] == [
            message_delta("msg_1", f'w{s} "é\n') for s in range(1, 6)
        ]
        assert stored == compact
    finally:
        store.close()


def created(seq: int, mid: str, thread: str = "thread_x") -> Event:
    data = {
        "id": mid,
        "object": "thread.message",
        "created_at": 1,
        "thread_id": thread,
        "role": "assistant",
        "status": "in_progress",
        "content": [],
        "metadata": {},
    }
    return Event.trusted(seq, "thread.message.created", data, "run_x", "thread_x", float(seq))


def completed(seq: int, mid: str, text: str, thread: str = "thread_x") -> Event:
    data = {**created(seq, mid, thread).data, "status": "completed"}
    data["content"] = text_content(text)
    return Event.trusted(seq, "thread.message.completed", data, "run_x", "thread_x", float(seq))


# A script: messages, each in this thread or another, with its deltas (compact or not).
SCRIPTS = st.lists(
    st.tuples(st.booleans(), st.lists(st.tuples(TEXTS, st.booleans()), max_size=6), st.booleans()),
    max_size=5,
)


def events_of(script: list[tuple[bool, list[tuple[str, bool]], bool]]) -> list[Event]:
    events: list[Event] = []
    for n, (foreign, deltas, announce) in enumerate(script):
        mid, thread = f"msg_{n}", "thread_other" if foreign else "thread_x"
        if announce:  # NEAR's hub sends deltas with no ``created`` before them
            events.append(created(len(events) + 1, mid, thread))
        for text, compact in deltas:
            delta = pair(len(events) + 1, mid, text)
            events.append(delta[0] if compact else delta[1])
        events.append(completed(len(events) + 1, mid, "".join(t for t, _ in deltas), thread))
    return events


def view(state: RunState) -> tuple:
    return (
        [(m.id, m.text, m.status, m.deltas) for m in state.messages],
        state.streaming.text if state.streaming else None,
        (state.deltas, state.chars, state.events, state.last_seq, state.foreign_messages),
        (state.first_at, state.last_at, state.first_delta_at, state.last_delta_at),
    )


@settings(max_examples=150)
@given(SCRIPTS, st.integers(min_value=1, max_value=7))
def test_folding_batches_equals_folding_event_by_event(script: list, size: int) -> None:
    events = events_of(script)
    one_by_one = reduce(events)
    batched = RunState()
    applied = 0
    for start in range(0, len(events), size):
        applied += batched.apply_many(events[start : start + size])
    assert applied == len(events)
    assert view(batched) == view(one_by_one)
    assert batched.apply_many(events) == 0  # repeats are dropped, as by apply
    assert view(batched) == view(one_by_one)


@settings(max_examples=150, deadline=None)
@given(SCRIPTS, st.integers(min_value=0, max_value=300), st.integers(min_value=1, max_value=400))
def test_batches_a_sink_reads_from_a_log_fold_and_store_as_their_events_do(
    script: list, stretch: int, size: int
) -> None:
    """A sink hands its consumers slices of the log (EventSeq); a slice that is one
    message's deltas is folded and written whole (EventSeq.stretch). The state and the
    rows must be those the same events give one by one, in any batches."""
    log = RunLog("run_x", "thread_x", clock=iter(range(1, 10_000)).__next__)
    for event in [*events_of(script), created(0, "msg_last")]:  # then a long stretch
        packed = event.text_delta
        if packed is None:
            log.emit(event.event, event.data)
        else:
            log.emit_text(*packed)
    for n in range(stretch):  # more than a row holds (MAX_DELTAS_PER_ROW) at the top
        log.emit_text("msg_last", f"w{n} ", 1 if n == stretch - 7 else 0)
    entries, events = log.events.raw(), list(log.events)
    batched = RunState()
    for start in range(0, len(entries), size):
        batch = EventSeq(entries[start : start + size])
        batched.apply_many(batch)
        assert log_rows(batch) == log_rows(events[start : start + size])
    assert view(batched) == view(reduce(events))
    if stretch > 3:  # a batch with a gap in its numbers is not one stretch
        gap = EventSeq([entries[-3], entries[-1]])
        assert gap.stretch() is None
        assert log_rows(gap) == log_rows([events[-3], events[-1]])


def logged(texts: list[str]) -> tuple[RunLog, list[Event]]:
    """A log fed compact deltas (as a run feeds it) and the same events built eagerly."""
    log = RunLog("run_x", "thread_x", clock=lambda: 5.0)
    log.emit("thread.message.created", created(0, "msg_1").data)
    eager = [Event.trusted(1, "thread.message.created", created(0, "msg_1").data, *IDS_AT)]
    for seq, text in enumerate(texts, start=2):
        assert log.emit_delta(CompactDelta("msg_1", text)) == seq
        data = message_delta("msg_1", text)
        eager.append(Event.trusted(seq, "thread.message.delta", data, *IDS_AT))
    return log, eager


IDS_AT = ("run_x", "thread_x", 5.0)


@given(st.lists(TEXTS, max_size=8))
def test_a_log_of_compact_entries_reads_as_the_eager_events(texts: list[str]) -> None:
    log, eager = logged(texts)
    events = log.events
    assert len(events) == len(eager) and events == eager and list(events) == eager
    assert events[-1] == eager[-1] and events[1:3] == eager[1:3]
    assert [type(e) for e in events.raw()[1:]] == [tuple] * len(texts)  # untracked entries
    assert event_rows(events) == [
        (e.run_id, e.seq, e.event, compact_json(e.data), e.thread_id, e.at) for e in eager
    ]
    assert [e.seq for e in whole_events(events)] == [1]
    frozen = events.snapshot()
    log.emit("done", "[DONE]")
    assert len(frozen) == len(eager) and len(log.events) == len(eager) + 1
    state = RunState()
    assert state.apply_many(log.events) == len(eager) + 1
    assert view(state) == view(reduce([*eager, log.events[-1]]))


def test_a_big_batch_is_stored_whole_and_in_order(tmp_path: Path) -> None:
    """More rows than one INSERT takes (two full statements and a remainder)."""
    store = Store(tmp_path / "nearnb.db")
    try:
        log, eager = logged([f"piece {n} " for n in range(122)])
        store.append_events(log.events)
        assert store.events("run_x") == eager
        assert [e.seq for e in store.events("run_x", after=100)] == list(range(101, 124))
    finally:
        store.close()
