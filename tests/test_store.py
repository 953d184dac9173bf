"""The store of record, on each backend: real SQLite files and a real PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from nearnb.events import Event, Message, Run, message_delta, new_id, text_content
from nearnb.persist import StoreSink
from nearnb.store import BaseStore, IntegrityError, Store, StoreError
from tests.support.backends import reopen


def make_message(tid: str, text: str, **kw: object) -> Message:
    return Message(
        id=new_id("msg"), created_at=1, thread_id=tid, role="user", content=text_content(text), **kw
    )


def test_store_is_a_wal_sqlite_file_under_nearnb_home(nearnb_home: Path) -> None:
    store = Store()
    assert store.path == nearnb_home / "nearnb.db" and store.path.exists()
    assert store.describe() == str(nearnb_home / "nearnb.db")
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_threads_and_message_paging(store: BaseStore) -> None:
    thread = store.create_thread({"k": "v"})
    assert store.get_thread(thread.id) == thread
    msgs = [store.save_message(make_message(thread.id, f"m{i}")) for i in range(5)]
    assert [m.text for m in store.list_messages(thread.id)] == [f"m{i}" for i in range(5)]
    assert [m.text for m in store.list_messages(thread.id, order="desc", limit=2)] == ["m4", "m3"]
    assert [m.text for m in store.list_messages(thread.id, after=msgs[1].id, limit=2)] == [
        "m2",
        "m3",
    ]
    assert [m.text for m in store.list_messages(thread.id, before=msgs[2].id)] == ["m0", "m1"]
    assert [m.text for m in store.list_messages(thread.id, order="desc", after=msgs[2].id)] == [
        "m1",
        "m0",
    ]
    with pytest.raises(StoreError, match="message not found"):
        store.list_messages(thread.id, after="msg_nope")
    with pytest.raises(StoreError, match="thread not found"):
        store.require_thread("thread_nope")


def test_updating_a_message_keeps_its_place(store: BaseStore) -> None:
    tid = store.create_thread().id
    first = store.save_message(make_message(tid, "a"))
    store.save_message(make_message(tid, "b"))
    store.save_message(
        Message.model_validate({**first.model_dump(), "content": text_content("a2")})
    )
    assert [m.text for m in store.list_messages(tid)] == ["a2", "b"]


def test_event_log_round_trip_and_expiry(store: BaseStore) -> None:
    tid = store.create_thread().id
    run = Run(id=new_id("run"), created_at=1, thread_id=tid, assistant_id="a")
    store.save_run(run)
    events = [
        Event(
            seq=i,
            event="thread.message.delta",
            data=message_delta("m", str(i)),
            run_id=run.id,
            thread_id=tid,
        )
        for i in range(1, 11)
    ]
    store.append_events(events)
    assert [e.seq for e in store.events(run.id, after=7)] == [8, 9, 10]
    assert store.events(run.id)[0].data == events[0].data
    with pytest.raises(IntegrityError):
        store.append_events(events[:1])  # seq is unique per run
    assert store.expire_events(older_than=0) == 0  # run still going: kept
    store.save_run(run.model_copy(update={"status": "completed"}))
    assert store.expire_events(at=time.time() + 10, older_than=60) == 0  # not old enough
    assert store.expire_events(at=time.time() + 100, older_than=60) == 10
    assert store.events(run.id) == [] and store.get_run(run.id).status == "completed"


def test_two_stores_share_the_data(store: BaseStore) -> None:
    """A hub opens the same file (WAL) or database while a kernel writes it."""
    writer, reader = store, reopen(store)
    tid = writer.create_thread().id
    writer.save_message(make_message(tid, "hello"))
    assert [m.text for m in reader.list_messages(tid)] == ["hello"]


def test_store_sink_writes_a_batch_and_its_rows_atomically_then_tells_listeners(
    store: BaseStore,
) -> None:
    """One transaction per batch: the log and the rows it implies never disagree."""
    tid = store.create_thread().id
    run = Run(id="run_1", created_at=0, thread_id=tid, assistant_id="a", status="in_progress")
    done = make_message(tid, "hi")
    heard: list[tuple[int, int]] = []  # (seq, events in the store when heard)
    sink = StoreSink(store, [lambda e: heard.append((e.seq, len(store.events("run_1"))))])
    e = lambda seq, name, data: Event(seq=seq, event=name, data=data, run_id="run_1", thread_id=tid)  # noqa: E731
    sink(
        [
            e(1, "thread.run.in_progress", run.model_dump(mode="json")),
            e(2, "thread.message.delta", {"id": done.id, "delta": {}}),
            e(3, "thread.message.completed", done.model_dump(mode="json")),
        ]
    )
    assert [x.seq for x in store.events("run_1")] == [1, 2, 3]
    assert store.get_run("run_1").status == "in_progress"
    assert [m.text for m in store.list_messages(tid)] == ["hi"]
    assert heard == [(1, 3), (2, 3), (3, 3)]  # listeners hear only what is stored
    with pytest.raises(IntegrityError):  # a repeated seq writes nothing of its batch
        sink(
            [
                e(
                    4,
                    "thread.run.completed",
                    {**run.model_dump(mode="json"), "status": "completed"},
                ),
                e(3, "done", "[DONE]"),
            ]
        )
    assert store.get_run("run_1").status == "in_progress"
    assert [x.seq for x in store.events("run_1")] == [1, 2, 3]


def test_store_is_thread_safe(store: BaseStore) -> None:
    tid = store.create_thread().id
    threads = [
        threading.Thread(
            target=lambda: [store.save_message(make_message(tid, "x")) for _ in range(50)]
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.list_messages(tid)) == 200


def test_finished_logs_expire_when_a_store_opens(
    store: BaseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    tid = store.create_thread().id
    run = Run(id=new_id("run"), created_at=1, thread_id=tid, assistant_id="a", status="completed")
    store.save_run(run)
    store.append_events([Event(seq=1, event="done", data="[DONE]", run_id=run.id, thread_id=tid)])
    assert len(reopen(store).events(run.id)) == 1  # default: kept for 24 h
    monkeypatch.setenv("NEARNB_EVENT_TTL", "0")
    assert reopen(store).events(run.id) == []  # configured: gone at the next open
    assert reopen(store).get_run(run.id).status == "completed"


def test_runs_in_one_process_share_one_store_per_home(
    nearnb_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nearnb.store import default_store

    first = default_store()
    assert default_store() is first and first.path == nearnb_home / "nearnb.db"
    monkeypatch.setenv("NEARNB_HOME", str(tmp_path / "elsewhere"))
    moved = default_store()
    assert moved is not first and moved.path == tmp_path / "elsewhere" / "nearnb.db"
