"""The event bus, both implementations, one promise: ordered events, cancel requests, beats.

``store`` is the store-backed default (:class:`nearnb.bus.StoreBus`); ``redis`` is
:class:`nearnb.bus_redis.RedisBus` on a real ``redis-server``. Events reach the bus the way
runs publish them: the store sink commits a batch, then publishes it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nearnb.bus import BusError, EventBus, StoreBus, bus_for, open_bus
from nearnb.events import Event, Run, new_id, now
from nearnb.liveness import expire_if_orphaned
from nearnb.persist import StoreSink
from nearnb.store import Store
from tests.support.redis_server import redis_server
from tests.support.waiting import wait_until


@pytest.fixture(params=["store", "redis"])
def bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventBus]:
    store = Store(tmp_path / "nearnb.db")
    if request.param == "store":
        yield open_bus(None, store)
        return
    with redis_server(tmp_path / "redis") as url:
        opened = open_bus(url, store)
        opened.store = store  # type: ignore[attr-defined]  # for the test to write through
        yield opened
        opened.close()


def _store(bus: EventBus) -> Store:
    return bus.store  # type: ignore[attr-defined]


def _events(run_id: str, thread_id: str, seqs: range) -> list[Event]:
    return [
        Event.trusted(seq, "thread.message.delta", {"n": seq, "s": "é\n"}, run_id, thread_id, 1.5)
        for seq in seqs
    ]


def _write(bus: EventBus, events: list[Event]) -> None:
    StoreSink(_store(bus), bus=bus)(events)  # commit, then publish: what every run does


def test_events_read_back_in_order_as_the_store_holds_them(bus: EventBus) -> None:
    run_id = new_id("run")
    _write(bus, _events(run_id, "thread_x", range(1, 6)))
    rows = bus.read(run_id)
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert rows == _store(bus).event_rows(run_id)  # the same bytes as the store of record
    assert json.loads(rows[0][2]) == {"n": 1, "s": "é\n"} and rows[0][3] == 1.5
    assert [r[0] for r in bus.read(run_id, after=3)] == [4, 5]
    assert [r[0] for r in bus.read(run_id, after=1, limit=2)] == [2, 3]
    bus.publish(_events(run_id, "thread_x", range(4, 6)))  # a publish repeated: no duplicate
    assert [r[0] for r in bus.read(run_id)] == [1, 2, 3, 4, 5]


def test_a_waiting_reader_gets_new_events_and_nothing_else(bus: EventBus) -> None:
    run_id = new_id("run")
    _write(bus, _events(run_id, "thread_x", range(1, 3)))

    async def scenario() -> tuple[list, list, list]:
        now_rows = await bus.wait_async(run_id, 0, 1.0)
        quiet = await bus.wait_async(run_id, 2, 0.05)  # nothing new: returns empty
        later = asyncio.get_running_loop().run_in_executor(
            None, _write, bus, _events(run_id, "thread_x", range(3, 5))
        )
        new_rows = await bus.wait_async(run_id, 2, 10.0)
        await later
        return now_rows, quiet, new_rows

    now_rows, quiet, new_rows = asyncio.run(scenario())
    assert [r[0] for r in now_rows] == [1, 2] and quiet == []
    assert [r[0] for r in new_rows][0] == 3 and all(r[0] > 2 for r in new_rows)


def test_cancel_requests_are_recorded_once_and_seen_in_bulk(bus: EventBus) -> None:
    asked, other = new_id("run"), new_id("run")
    assert bus.cancel_requested([asked, other]) == {}
    assert bus.request_cancel(asked, "hub:a") is True
    assert bus.request_cancel(asked, "hub:b") is False  # the first request stands
    assert bus.cancel_requested([asked, other]) == {asked: "hub:a"}


def test_heartbeats_name_their_owner_and_time(bus: EventBus) -> None:
    run_id = new_id("run")
    assert bus.last_beat(run_id) is None
    bus.beat([run_id], "machine-b:42")
    owner, at = bus.last_beat(run_id)  # type: ignore[misc]
    assert owner == "machine-b:42" and at > 0


def test_a_stale_heartbeat_expires_the_run_once_and_publishes_its_end(bus: EventBus) -> None:
    store = _store(bus)
    thread = store.create_thread()
    run = Run(
        id=new_id("run"),
        created_at=now(),
        thread_id=thread.id,
        assistant_id="local/fake/0.1",
        status="in_progress",
        metadata={"nearnb.pid": "1", "nearnb.host": "another-machine"},
    )
    run_json = run.model_dump(mode="json")
    created = Event.trusted(1, "thread.run.created", run_json, run.id, thread.id, 1.0)
    _write(bus, [created])
    assert expire_if_orphaned(store, run.id, bus) is False  # no beat, remote pid: left alone
    bus.beat([run.id], "another-machine:1")
    assert expire_if_orphaned(store, run.id, bus, ttl=60) is False  # fresh
    wait_until(lambda: expire_if_orphaned(store, run.id, bus, ttl=0.05), "the beat went stale")
    assert expire_if_orphaned(store, run.id, bus, ttl=0.05) is False  # once
    names = [r[1] for r in bus.read(run.id)]
    assert names == ["thread.run.created", "thread.run.expired", "done"]
    assert store.get_run(run.id).status == "expired"


def test_bus_urls_are_chosen_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "nearnb.db")
    monkeypatch.delenv("NEARNB_BUS", raising=False)
    assert isinstance(bus_for(store), StoreBus) and bus_for(store) is bus_for(store)
    with pytest.raises(BusError) as error:
        open_bus("kafka://user:hunter2@host/x", store)
    assert "redis://" in str(error.value) and "hunter2" not in str(error.value)
    monkeypatch.setenv("NEARNB_BUS", "redis://:hunter2@127.0.0.1:1/0")
    remote = bus_for(store)
    assert type(remote).__name__ == "RedisBus" and "hunter2" not in remote.name


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (
            "redis://:hunter2@127.0.0.1:1/0",
            "cannot reach the event bus at redis://***@127.0.0.1:1/0",
        ),
        ("kafka://broker:9092", "use redis://HOST:PORT/DB"),
    ],
)
def test_a_hub_with_a_bus_it_cannot_use_refuses_to_start(url: str, said: str) -> None:
    import subprocess
    import sys

    from tests.support.scaleout import child_env

    done = subprocess.run(
        [sys.executable, "-m", "nearnb.hub", "--port", "0", "--bus", url],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def test_a_runs_redis_stream_expires_by_the_event_ttl(tmp_path: Path) -> None:
    store = Store(tmp_path / "nearnb.db", event_ttl=90)
    with redis_server(tmp_path / "redis") as url:
        bus = open_bus(url, store)
        run_id = new_id("run")
        bus.publish(_events(run_id, "thread_x", range(1, 3)))
        client = bus._redis  # type: ignore[attr-defined]
        key = f"nearnb:run:{run_id}:events"
        # at least the TTL after the last event, and at most a quarter more (see bus_redis)
        assert client.xlen(key) == 2 and 90 <= client.ttl(key) <= 90 + 90 / 4
        assert client.xinfo_stream(key)["last-generated-id"] == "2-0"  # ids are our seqs
        expires = client.info("commandstats")["cmdstat_expire"]["calls"]
        for seq in range(3, 23):  # a run's usual batch, one delta: one XADD, no EXPIRE
            bus.publish(_events(run_id, "thread_x", range(seq, seq + 1)))
        assert client.xlen(key) == 22
        assert client.info("commandstats")["cmdstat_expire"]["calls"] == expires
        bus.request_cancel(run_id, "hub:a")
        bus.beat([run_id], "machine-b:1")
        assert 0 < client.ttl(f"nearnb:run:{run_id}:cancel") <= 90
        assert 0 < client.ttl(f"nearnb:run:{run_id}:beat") <= 90
        bus.close()
