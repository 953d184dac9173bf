"""Any hub serves any run: hub processes sharing one store and one bus are interchangeable.

Three real hubs (``python -m nearnb.hub`` on different ports, standing in for machines) share
the backend of the ``backend`` fixture (SQLite + its store-backed bus, or PostgreSQL +
Redis Streams). A run started through hub A, or by a kernel-like process, streams the same
frames from every hub; a ``Last-Event-ID`` from one hub resumes on another with nothing lost
or repeated; killing the hub a client reads from and going on from another loses nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from nearnb.events import Event
from nearnb.hub.client import attach
from nearnb.store import open_store
from tests.agent_helpers import make_agent
from tests.support.hub import HubProcess
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.support.scaleout import STREAM_REPLY, Producer, Reader, ended_alike
from tests.support.waiting import wait_until

TICKS = 150


@pytest.fixture
def agents(tmp_path: Path) -> Path:
    make_agent(tmp_path / "agents" / "ticker", STREAM_REPLY)
    return tmp_path / "agents"


@pytest.fixture
def hubs(backend: str, srv: ScriptedOpenAI, agents: Path) -> Iterator[list[HubProcess]]:
    started: list[HubProcess] = []
    try:
        for _ in range(3):
            started.append(HubProcess(None, "--agents", str(agents)).start())
        yield started
    finally:
        for hub in started:
            hub.stop(kill=True)


def _text(frames: list[tuple[str, str, str]]) -> str:
    return "".join(
        json.loads(d)["delta"]["content"][0]["text"]["value"]
        for _, n, d in frames
        if n == "thread.message.delta"
    )


def test_a_run_started_through_hub_a_streams_the_same_from_every_hub(
    hubs: list[HubProcess], srv: ScriptedOpenAI
) -> None:
    srv.script(Reply.text(*["tick "] * TICKS, delay=0.01))
    a = hubs[0]
    with httpx.Client(base_url=a.url, timeout=30) as client:
        tid = client.post("/v1/threads", json={}).json()["id"]
        client.post(f"/v1/threads/{tid}/messages", json={"role": "user", "content": "go"})
        run = client.post(f"/v1/threads/{tid}/runs", json={"assistant_id": "ticker"}).json()
    path = f"/v1/threads/{tid}/stream/{run['id']}"
    readers = [Reader(hub.url + path) for hub in hubs]
    frames = ended_alike(*(r.join(60) for r in readers))
    names = [name for _, name, _ in frames]
    assert names[-2:] == ["thread.run.completed", "done"]
    assert _text(frames) == "tick " * TICKS
    late = Reader(hubs[2].url + path).join()  # after the end: the same log, from any hub
    assert late.frames == frames
    for hub in hubs[1:]:  # the run object is the same everywhere
        got = httpx.get(f"{hub.url}/v1/threads/{tid}/runs/{run['id']}").json()
        assert got["status"] == "completed"


def test_a_kernels_run_streams_the_same_from_every_hub_and_resumes_across_hubs(
    hubs: list[HubProcess], srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    producer = Producer(srv, tmp_path / "slow", ticks=TICKS, delay=0.01)
    try:
        whole = [Reader(hub.url + producer.path()) for hub in hubs]
        # A client reads part of the stream from hub A, then resumes on hub B.
        first: list[tuple[str, str, str]] = []
        with (
            httpx.Client(timeout=30) as client,
            connect_sse(client, "GET", hubs[0].url + producer.path()) as source,
        ):
            for sse in source.iter_sse():
                first.append((sse.id, sse.event, sse.data))
                if len(first) == 20:
                    break
        rest = Reader(hubs[1].url + producer.path(), headers={"Last-Event-ID": first[-1][0]})
        frames = ended_alike(*(r.join(60) for r in whole))
        assert first + rest.join(60).frames == frames  # nothing lost, nothing twice
        assert frames[-2][1] == "thread.run.completed"
        assert _text(frames) == "tick " * TICKS
        assert producer.finish()[0] == 0
    finally:
        producer.close()


def test_killing_the_hub_a_client_reads_from_loses_nothing(
    hubs: list[HubProcess], srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    producer = Producer(srv, tmp_path / "slow", ticks=TICKS, delay=0.01)
    try:
        seen: list[Event] = []

        def view(event: Event) -> None:
            seen.append(event)

        view.finish = lambda result=None: None  # type: ignore[attr-defined]
        done: list[Any] = []
        urls = [hub.url + producer.path() for hub in hubs[:2]]
        reader = threading.Thread(target=lambda: done.append(attach(urls, display=view)))
        reader.start()
        wait_until(lambda: len(seen) >= 10, "the client reads from hub A")
        hubs[0].stop(kill=True)  # the hub it reads from dies mid-run
        reader.join(60)
        (result,) = done
        assert result.status == "completed"
        assert result.text == "tick " * TICKS
        assert [e.seq for e in seen] == list(range(1, len(seen) + 1))  # each once, in order
        assert len(seen) == len(open_store().events(producer.run_id))
    finally:
        producer.close()


def test_a_run_started_through_hub_a_is_cancelled_through_hub_b(
    hubs: list[HubProcess], srv: ScriptedOpenAI
) -> None:
    srv.script(Reply.text(*["tick "] * 500, delay=0.02))
    a, b, c = hubs
    with httpx.Client(base_url=a.url, timeout=30) as client:
        tid = client.post("/v1/threads", json={}).json()["id"]
        run = client.post(f"/v1/threads/{tid}/runs", json={"assistant_id": "ticker"}).json()
    path = f"/v1/threads/{tid}/stream/{run['id']}"
    readers = [Reader(hub.url + path) for hub in hubs]
    wait_until(lambda: all("thread.message.delta" in r.names for r in readers), "all stream")
    answer = httpx.post(f"{b.url}/v1/threads/{tid}/runs/{run['id']}/cancel", timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == "cancelling"
    frames = ended_alike(*(r.join(60) for r in readers))
    assert [name for _, name, _ in frames][-2:] == ["thread.run.cancelled", "done"]
    assert _text(frames).count("tick") < 500
    got = httpx.get(f"{c.url}/v1/threads/{tid}/runs/{run['id']}").json()
    assert got["status"] == "cancelled"
