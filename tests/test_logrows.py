"""Runs of text deltas share a row in the store; every reader still sees one event per number.

:mod:`nearnb.logrows` writes consecutive compact deltas of one message as one row. These
tests hold any log, split into batches in any way, to what a row per event gave: the same
numbers, names, JSON (byte for byte), emit times and Events, from any ``after`` with any
``limit``, on SQLite and PostgreSQL; and they check that a database of an older nearnb
(no ``last_seq`` column, a row per event) opens, reads and grows.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nearnb.events import CompactDelta, Event, new_id
from nearnb.logrows import DELTAS, MAX_DELTAS_PER_ROW, expand_rows, log_rows
from nearnb.runlog import RunLog
from nearnb.store import BaseStore, Store

#: A log entry to generate: a delta of message 0/1 at content index 0/1, or a whole event.
ENTRY = st.one_of(
    st.tuples(st.just("delta"), st.integers(0, 1), st.integers(0, 1), st.text(max_size=8)),
    st.tuples(st.just("step"), st.just(0), st.just(0), st.text(max_size=8)),
)


def build_log(spec: list[tuple[str, int, int, str]], run_id: str) -> list[Event]:
    """The events of ``spec``, numbered from 1, as a run's log holds them (deltas compact)."""
    log = RunLog(run_id, "thread_x")
    for kind, message, index, text in spec:
        if kind == "delta":
            log.emit_delta(CompactDelta(f"msg_{message}", text, index))
        else:
            log.emit("thread.run.step.delta", {"id": "step_1", "delta": {"text": text}})
    log.emit("done", "[DONE]")
    return list(log.events)


def cuts(draw: st.DrawFn, n: int) -> list[int]:
    return sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=6)))


@st.composite
def logs(draw: st.DrawFn) -> tuple[list[tuple[str, int, int, str]], list[int], int, int | None]:
    spec = draw(st.lists(ENTRY, max_size=40))
    n = len(spec) + 1
    after = draw(st.integers(0, n + 1))
    limit = draw(st.one_of(st.none(), st.integers(1, n + 1)))
    return spec, cuts(draw, n), after, limit


def as_read(events: list[Event]) -> list[tuple[int, str, str, float]]:
    return [(e.seq, e.event, e.data_json(), e.at) for e in events]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=logs())
def test_any_log_in_any_batches_reads_back_event_by_event(
    store: BaseStore, case: tuple[list[tuple[str, int, int, str]], list[int], int, int | None]
) -> None:
    spec, split, after, limit = case
    run_id = new_id("run")
    events = build_log(spec, run_id)
    for start, stop in zip([0, *split], [*split, len(events)], strict=True):
        store.append_events(events[start:stop])
    wanted = [e for e in events if e.seq > after][:limit]
    assert store.event_rows(run_id, after=after, limit=limit) == as_read(wanted)
    got = store.events(run_id, after=after, limit=limit)
    assert [e.model_dump() for e in got] == [e.model_dump() for e in wanted]


def test_a_fast_stream_is_a_few_rows_and_a_slow_one_a_row_per_event(tmp_path: Path) -> None:
    run_id = new_id("run")
    events = build_log([("delta", 0, 0, f"w{i} ") for i in range(600)], run_id)
    fast, slow = Store(tmp_path / "fast.db"), Store(tmp_path / "slow.db")
    fast.append_events(events)  # one batch: a model faster than the store
    for event in events:  # a batch per event: a model slower than the store
        slow.append_events([event])
    count = "SELECT count(*), sum(event = ?) FROM events"
    assert fast._query(count, (DELTAS,)) == [(-(-600 // MAX_DELTAS_PER_ROW) + 1, 3)]
    assert slow._query(count, (DELTAS,)) == [(601, 0)]
    assert fast.event_rows(run_id) == slow.event_rows(run_id) == as_read(events)
    assert fast.expire_events(older_than=0, at=1e12) == 0  # no run row: not ended, kept


def test_a_row_of_deltas_that_does_not_add_up_is_an_error_naming_it(tmp_path: Path) -> None:
    run_id = new_id("run")
    events = build_log([("delta", 0, 0, "a"), ("delta", 0, 0, "b")], run_id)
    ((_, seq, last, name, data, tid, at), done) = log_rows(events)
    assert (seq, last, name) == (1, 2, DELTAS)
    with pytest.raises(ValueError, match=r"corrupt row of text deltas 1\.\.3"):
        list(expand_rows([(seq, last + 1, name, data, tid, at)]))


def test_a_database_of_an_older_nearnb_opens_reads_and_grows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)  # the events table as nearnb wrote it before last_seq
    old.execute(
        "CREATE TABLE events (run_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, "
        "data TEXT NOT NULL, thread_id TEXT NOT NULL, at REAL NOT NULL, "
        "PRIMARY KEY (run_id, seq)) WITHOUT ROWID"
    )
    run_id = new_id("run")
    events = build_log([("delta", 0, 0, f"w{i}") for i in range(5)], run_id)
    old.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
        [(run_id, e.seq, e.event, e.data_json(), e.thread_id, e.at) for e in events[:3]],
    )
    old.commit()
    old.close()
    store = Store(path)
    store.append_events(events[3:])
    assert store.event_rows(run_id) == as_read(events)
    assert store.event_rows(run_id, after=2, limit=2) == as_read(events[2:4])
    assert Store(path).events(run_id)[-1].event == "done"  # a second open: nothing to add
