"""Liveness across machines: a run whose process died ends ``expired`` on every hub, once.

The producer is a real child process that says it runs on another machine
(``$NEARNB_HOST``), so no hub can use the same-host pid check: only its heartbeats on the
bus (every 0.2 s here, a TTL of 1.5 s) tell the hubs it is alive. Two hub processes stream
the run; the producer is killed with SIGKILL; both streams end with the same
``thread.run.expired``, written once, by whichever hub won the store's compare-and-set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nearnb.bus import bus_for
from nearnb.store import open_store
from tests.support.hub import HubProcess
from tests.support.openai_server import ScriptedOpenAI
from tests.support.scaleout import Producer, Reader, ended_alike
from tests.support.waiting import wait_until


@pytest.fixture
def remote_producer(
    backend: str, srv: ScriptedOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Producer]:
    monkeypatch.setenv("NEARNB_HEARTBEAT_TTL", "1.5")  # the hubs' patience
    started = Producer(
        srv,
        tmp_path / "slow",
        env={"NEARNB_HOST": "another-machine", "NEARNB_HEARTBEAT_INTERVAL": "0.2"},
    )
    try:
        yield started
    finally:
        started.close()


def test_a_killed_remote_producers_run_expires_once_on_every_hub(
    remote_producer: Producer,
) -> None:
    producer = remote_producer
    producer.wait_for_deltas(3)
    store = open_store()
    run = store.get_run(producer.run_id)
    assert run.metadata["nearnb.host"] == "another-machine"
    beat = bus_for(store).last_beat(producer.run_id)
    assert beat is not None and beat[0] == f"another-machine:{producer.proc.pid}"
    with HubProcess() as hub_a, HubProcess() as hub_b:
        readers = [Reader(hub.url + producer.path()) for hub in (hub_a, hub_b, hub_a)]
        wait_until(lambda: all("thread.message.delta" in r.names for r in readers), "all stream")
        # Alive and beating on "another machine": no hub expires it, whatever its pid here.
        runs = httpx.get(f"{hub_b.url}/v1/threads/{producer.thread_id}/runs/{producer.run_id}")
        assert runs.json()["status"] == "in_progress"
        producer.kill()
        frames = ended_alike(*(r.join(60) for r in readers))
    names = [name for _, name, _ in frames]
    assert names[-3:] == ["thread.message.incomplete", "thread.run.expired", "done"]
    logged = [e.event for e in store.events(producer.run_id)]
    assert logged.count("thread.run.expired") == 1 and logged[-1] == "done"
    assert len(logged) == len(names)
    expired = json.loads(frames[-2][2])
    assert expired["status"] == "expired"
    assert "another-machine" in expired["last_error"]["message"]
    assert "no heartbeat" in expired["last_error"]["message"]
    assert store.get_run(producer.run_id).status == "expired"
