"""Run control in the store of record: cancel requests, heartbeats, the ending compare-and-set.

Stop from any viewer and liveness across machines rest on these: any process
may ask to stop a run or end a dead one, and exactly one ending wins.
"""

from __future__ import annotations

import threading

from nearnb.events import Event, Run, message_delta, new_id
from nearnb.store import BaseStore, Store


def started_run(store: BaseStore, events: int = 2) -> Run:
    tid = store.create_thread().id
    run = Run(id=new_id("run"), created_at=1, thread_id=tid, assistant_id="a", status="in_progress")
    store.commit(
        [
            Event(
                seq=i,
                event="thread.message.delta",
                data=message_delta("m", str(i)),
                run_id=run.id,
                thread_id=tid,
            )
            for i in range(1, events + 1)
        ],
        [run],
        [],
    )
    return run


def closing(run: Run, seq: int) -> tuple[Run, list[Event]]:
    ended = run.model_copy(update={"status": "expired"})
    data = ended.model_dump(mode="json")
    return ended, [
        Event(
            seq=seq, event="thread.run.expired", data=data, run_id=run.id, thread_id=run.thread_id
        )
    ]


def test_a_cancel_request_is_recorded_once(store: BaseStore) -> None:
    run = started_run(store)
    assert store.cancel_requested(run.id) is None
    assert store.request_cancel(run.id, "hub-a") is True
    assert store.request_cancel(run.id, "hub-b") is False  # already asked: the first asker stays
    assert store.cancel_requested(run.id) == "hub-a"
    assert store.cancel_requested("run_nope") is None


def test_heartbeats_keep_the_last_owner_and_time(store: BaseStore) -> None:
    run = started_run(store)
    assert store.last_beat(run.id) is None
    store.beat(run.id, "kernel-1", at=100.0)
    store.beat(run.id, "kernel-1", at=101.5)
    assert store.last_beat(run.id) == ("kernel-1", 101.5)
    store.request_cancel(run.id, "hub-a")  # one row holds both: neither overwrites the other
    store.beat(run.id, "kernel-2", at=102.0)
    assert store.last_beat(run.id) == ("kernel-2", 102.0)
    assert store.cancel_requested(run.id) == "hub-a"
    other = started_run(store)
    store.request_cancel(other.id, "hub-b")
    assert store.last_beat(other.id) is None  # asked to stop, but never beat


def test_run_control_expires_with_the_log(store: BaseStore) -> None:
    run = started_run(store)
    store.beat(run.id, "kernel-1")
    store.request_cancel(run.id, "hub-a")
    store.save_run(run.model_copy(update={"status": "cancelled"}))
    assert store.expire_events(older_than=0, at=1e12) == 2
    assert store.last_beat(run.id) is None and store.cancel_requested(run.id) is None


def test_end_run_is_a_compare_and_set(store: BaseStore) -> None:
    run = started_run(store, events=2)
    ended, events = closing(run, 3)
    assert store.end_run(ended, events, [], after=1) is False  # the log has grown past 1
    assert store.end_run(ended, events, [], after=2) is True
    assert store.end_run(ended, events, [], after=2) is False  # already ended
    assert store.end_run(ended, events, [], after=3) is False
    assert [e.seq for e in store.events(run.id)] == [1, 2, 3]
    assert store.get_run(run.id).status == "expired"
    ghost, ghost_events = closing(run.model_copy(update={"id": "run_ghost"}), 1)
    assert store.end_run(ghost, ghost_events, [], after=0) is False  # no such run


def test_of_many_concurrent_enders_exactly_one_wins(store: BaseStore) -> None:
    """Hubs that each notice a dead run race to end it; one does, the rest see False."""
    run = started_run(store, events=5)
    others = [type(store)(store.path) if isinstance(store, Store) else store for _ in range(4)]
    gate = threading.Barrier(len(others))
    won: list[bool] = []

    def end(on: BaseStore) -> None:
        ended, events = closing(run, 6)
        gate.wait()
        won.append(on.end_run(ended, events, [], after=5))

    threads = [threading.Thread(target=end, args=(s,)) for s in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False, False, False, True]
    assert [e.seq for e in store.events(run.id)] == [1, 2, 3, 4, 5, 6]
