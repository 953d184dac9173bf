"""The hub's run stream over real HTTP: fan-out, late joiners, resume, restart, framing, headers.

Runs are written into the store from a thread (tests.support.hub.FakeRun), which is exactly how
a run in a notebook kernel looks to the hub; subscribers are independent httpx-sse clients.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import connect_sse

from nearnb.hub.server import HubServer
from nearnb.store import Store
from tests.support.hub import CuttingProxy, FakeRun, HubProcess, running_hub
from tests.support.waiting import wait_until

TIMEOUT = httpx.Timeout(10.0, read=30.0)


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with running_hub() as server:
        yield server


def read_stream(
    url: str,
    headers: dict[str, str] | None = None,
    into: list[tuple[str, str, str]] | None = None,
) -> list[tuple[str, str, str]]:
    """Every (id, event, data) frame of a stream until the server ends it.

    ``into``: a list the frames are appended to as they arrive, for another thread to watch.
    """
    frames = [] if into is None else into
    with (
        httpx.Client(timeout=TIMEOUT) as client,
        connect_sse(client, "GET", url, headers=headers or {}) as source,
    ):
        source.response.raise_for_status()
        for sse in source.iter_sse():
            frames.append((sse.id, sse.event, sse.data))
    return frames


def delta_texts(frames: list[tuple[str, str, str]]) -> list[str]:
    return [
        json.loads(data)["delta"]["content"][0]["text"]["value"]
        for _, event, data in frames
        if event == "thread.message.delta"
    ]


def test_three_concurrent_subscribers_get_the_identical_sequence(hub: HubServer) -> None:
    gate = threading.Event()
    run = FakeRun(200, interval=0.002, start_gate=gate).start()
    url = hub.url + run.stream_path()
    results: list[list[tuple[str, str, str]]] = [[] for _ in range(3)]

    def subscribe(i: int) -> None:
        read_stream(url, into=results[i])

    threads = [threading.Thread(target=subscribe, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    # all three are subscribed (each has a frame of the run's start) before any delta is sent
    wait_until(lambda: all(results), "every subscriber has received its first frame")
    gate.set()
    for thread in threads:
        thread.join(30)
    assert results[0] == results[1] == results[2]
    ids = [int(frame[0]) for frame in results[0]]
    assert ids == list(range(1, run.total + 1))
    assert "".join(delta_texts(results[0])) == run.text
    assert results[0][-2][1] == "thread.run.completed"
    assert results[0][-1][1:] == ("done", "[DONE]")


def test_subscriber_joining_mid_run_gets_history_then_live(hub: HubServer) -> None:
    run = FakeRun(150, interval=0.01).start()
    wait_until(lambda: run.emitted >= 60, "the run has emitted 60 events")
    joined_at = run.emitted
    frames = read_stream(hub.url + run.stream_path())
    assert joined_at < run.total  # really joined mid-run
    assert [int(f[0]) for f in frames] == list(range(1, run.total + 1))
    assert "".join(delta_texts(frames)) == run.text


def test_last_event_id_resumes_after_that_event_nothing_lost_nothing_twice(
    hub: HubServer,
) -> None:
    run = FakeRun(300, interval=0.005).start()
    url = hub.url + run.stream_path()
    first: list[tuple[str, str, str]] = []
    with (
        CuttingProxy(hub.port) as proxy,
        pytest.raises(httpx.TransportError),  # the cut happens mid-iteration
        httpx.Client(timeout=TIMEOUT) as client,
        connect_sse(client, "GET", proxy.url + run.stream_path()) as source,
    ):
        for sse in source.iter_sse():
            first.append((sse.id, sse.event, sse.data))
            if len(first) == 40:
                proxy.cut()
    assert 40 <= len(first) < run.total
    rest = read_stream(url, {"Last-Event-ID": first[-1][0]})
    frames = first + rest
    assert [int(f[0]) for f in frames] == list(range(1, run.total + 1))
    assert "".join(delta_texts(frames)) == run.text


def test_resume_past_done_answers_204_so_browsers_stop_reconnecting(hub: HubServer) -> None:
    run = FakeRun(3).complete()
    response = httpx.get(hub.url + run.stream_path(), headers={"Last-Event-ID": str(run.total)})
    assert response.status_code == 204
    partial = read_stream(hub.url + run.stream_path(), {"Last-Event-ID": str(run.total - 2)})
    assert [f[1] for f in partial] == ["thread.run.completed", "done"]


def test_finished_run_replays_from_the_store(hub: HubServer) -> None:
    run = FakeRun(500).complete()
    frames = read_stream(hub.url + run.stream_path())
    assert [int(f[0]) for f in frames] == list(range(1, run.total + 1))
    assert "".join(delta_texts(frames)) == run.text


def test_near_legacy_framing_parses(hub: HubServer) -> None:
    run = FakeRun(10).complete()
    frames = read_stream(hub.url + run.stream_path() + "?framing=near")
    assert {event for _, event, _ in frames} == {"message"}  # no event: lines, as NEAR sent
    envelopes = [json.loads(data) for _, _, data in frames]
    assert all(set(e) == {"event", "data"} for e in envelopes)
    names = [e["event"] for e in envelopes]
    assert names[0] == "thread.run.created" and names[-2:] == ["thread.run.completed", "done"]
    text = "".join(
        e["data"]["delta"]["content"][0]["text"]["value"]  # what NEAR's web UI reads
        for e in envelopes
        if e["event"] == "thread.message.delta"
    )
    assert text == run.text


def test_default_stream_data_is_the_stored_object_and_timing_adds_nearnb_at(
    hub: HubServer,
) -> None:
    run = FakeRun(5).complete()
    stored = run.store.events(run.run_id)
    url = hub.url + run.stream_path()
    plain = read_stream(url)
    assert [data for _, _, data in plain][-1] == "[DONE]"
    assert [json.loads(data) for _, _, data in plain[:-1]] == [e.data for e in stored[:-1]]
    assert "nearnb_at" not in "".join(data for _, _, data in plain)
    timed = read_stream(url + "?timing=1")
    assert [(i, event) for i, event, _ in timed] == [(i, event) for i, event, _ in plain]
    assert [json.loads(data) for _, _, data in timed] == [
        {**e.data, "nearnb_at": e.at} for e in stored[:-1]
    ] + [{"nearnb_at": stored[-1].at}]  # done carries its time instead of [DONE]
    near = read_stream(url + "?framing=near&timing=1")
    assert [json.loads(data) for _, _, data in near] == [
        {"event": e.event, "data": {**e.data, "nearnb_at": e.at}} for e in stored[:-1]
    ] + [{"event": "done", "data": {"nearnb_at": stored[-1].at}}]
    response = httpx.get(url + "?timing=yes")
    assert response.status_code == 422 and response.json()["error"]["param"] == "timing"


def test_stream_headers_retry_and_keepalive() -> None:
    with running_hub(keepalive=0.1) as server:
        gate = threading.Event()
        run = FakeRun(2, start_gate=gate).start()
        with (
            httpx.Client(timeout=TIMEOUT) as client,
            client.stream("GET", server.url + run.stream_path()) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            raw = ""
            for text in response.iter_text():
                raw += text
                if raw.count(": keepalive\n") >= 2 and not gate.is_set():
                    gate.set()
        assert raw.startswith("retry: 1000\nid: 1\n")
        assert ": keepalive\n\n" not in raw  # no blank line: see sse.keepalive_comment
        assert raw.endswith("data: [DONE]\n\n")


def test_unknown_thread_or_run_is_404_and_bad_last_event_id_is_422(hub: HubServer) -> None:
    run = FakeRun(1).complete()
    other = Store().create_thread()
    for path in (
        f"/v1/threads/{run.thread_id}/stream/run_nope",
        f"/v1/threads/thread_nope/stream/{run.run_id}",
        f"/v1/threads/{other.id}/stream/{run.run_id}",  # the run belongs to another thread
    ):
        response = httpx.get(hub.url + path)
        assert response.status_code == 404, path
        assert response.json()["error"]["message"].startswith("run not found")
    response = httpx.get(hub.url + run.stream_path(), headers={"Last-Event-ID": "x"})
    assert response.status_code == 422 and response.json()["error"]["param"] == "Last-Event-ID"
    response = httpx.get(hub.url + run.stream_path() + "?framing=xml")
    assert response.status_code == 422 and response.json()["error"]["param"] == "framing"


def test_run_written_by_another_process_streams_live_and_survives_a_hub_restart() -> None:
    """The hub is a separate process; the run is written here (like a kernel); the hub is
    killed mid-stream and a new one on the same port resumes from the store."""
    run = FakeRun(300, interval=0.01).start()
    frames: list[tuple[str, str, str]] = []
    with HubProcess() as process:
        with (
            pytest.raises(httpx.TransportError),
            httpx.Client(timeout=TIMEOUT) as client,
            connect_sse(client, "GET", process.url + run.stream_path()) as source,
        ):
            for sse in source.iter_sse():
                frames.append((sse.id, sse.event, sse.data))
                if len(frames) == 100:
                    process.stop(kill=True)
        assert 100 <= len(frames) < run.total
        process.start()
        frames += read_stream(process.url + run.stream_path(), {"Last-Event-ID": frames[-1][0]})
    assert [int(f[0]) for f in frames] == list(range(1, run.total + 1))
    assert "".join(delta_texts(frames)) == run.text


def test_graceful_hub_stop_ends_streams_without_done() -> None:
    """A stopped hub closes its streams at once (uvicorn does not wait for them); a client
    sees a stream without ``done`` and resumes elsewhere."""
    server = HubServer("127.0.0.1", 0)
    server.start()
    gate = threading.Event()
    run = FakeRun(5, start_gate=gate).start()
    frames: list[tuple[str, str, str]] = []
    errors: list[BaseException] = []

    def subscribe() -> None:
        try:
            read_stream(server.url + run.stream_path(), into=frames)
        except BaseException as exc:  # the assertion below shows it
            errors.append(exc)

    reader = threading.Thread(target=subscribe)
    reader.start()
    # the stream is open and live: the run's first events arrived, the rest waits on the gate
    wait_until(lambda: frames, "the subscriber has received the run's first frame")
    started = time.monotonic()
    server.stop()
    reader.join(10)
    assert time.monotonic() - started < 3
    assert not reader.is_alive() and not errors  # the stream ended, cleanly
    names = [event for _, event, _ in frames]
    assert names and "thread.message.delta" not in names and "done" not in names
    gate.set()


def test_expired_event_log_is_410_and_attach_says_so(hub: HubServer) -> None:
    from nearnb.hub.client import RunNotFound, attach

    run = FakeRun(3).complete()
    assert run.store.expire_events(older_than=0, at=time.time() + 1) == run.total
    response = httpx.get(hub.url + run.stream_path())
    assert response.status_code == 410 and "expired" in response.json()["error"]["message"]
    with pytest.raises(RunNotFound, match="expired"):
        attach(hub.url + run.stream_path(), display="none")
