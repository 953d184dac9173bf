"""Runs whose producing process died mid-run are ended as ``expired``, and their streams end.

The producer is a real child process (``python -c``) running an agent against the scripted
OpenAI server, killed with SIGKILL mid-stream, exactly like a notebook kernel being killed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from nearnb.events import Run, new_id, now
from nearnb.hub.server import HubServer
from nearnb.liveness import expire_if_orphaned
from nearnb.store import Store
from tests.agent_helpers import make_agent
from tests.support.hub import running_hub
from tests.support.openai_server import Reply, ScriptedOpenAI

ROOT = Path(__file__).resolve().parents[1]
STREAM_REPLY = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
PRODUCER = """
import sys
from nearnb.runs import start_run
handle = start_run(sys.argv[1], "go")
print(handle.thread_id, handle.run_id, flush=True)
handle.wait()
"""


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with running_hub() as server:
        yield server


class Producer:
    """A child process running a slow streaming agent into the shared store."""

    def __init__(self, srv: ScriptedOpenAI, folder: Path) -> None:
        srv.script(Reply.text(*["tick "] * 500, delay=0.02))
        agent = make_agent(folder, STREAM_REPLY)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PRODUCER, str(agent)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.thread_id, self.run_id = self.proc.stdout.readline().split()

    def wait_for_deltas(self, store: Store, n: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logged = store.events(self.run_id)
            if sum(e.event == "thread.message.delta" for e in logged) >= n:
                return
            time.sleep(0.02)
        raise AssertionError(f"the producer did not stream {n} deltas")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)  # reaped: a zombie still counts as a live pid

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def stream_url(self, hub: HubServer) -> str:
        return f"{hub.url}/v1/threads/{self.thread_id}/stream/{self.run_id}"


@pytest.fixture
def producer(srv: ScriptedOpenAI, tmp_path: Path) -> Iterator[Producer]:
    started = Producer(srv, tmp_path / "slow")
    try:
        yield started
    finally:
        started.close()


def test_a_killed_producers_run_is_expired_once(producer: Producer) -> None:
    store = Store()
    producer.wait_for_deltas(store, 5)
    run = store.get_run(producer.run_id)
    assert run.metadata["nearnb.pid"] == str(producer.proc.pid)
    assert run.metadata["nearnb.host"] == socket.gethostname()
    in_progress = next(e for e in store.events(producer.run_id) if e.event.endswith("in_progress"))
    assert in_progress.data["metadata"]["nearnb.pid"] == str(producer.proc.pid)

    producer.kill()
    before = store.events(producer.run_id)
    assert before[-1].event == "thread.message.delta"
    streamed = "".join(
        e.data["delta"]["content"][0]["text"]["value"]
        for e in before
        if e.event == "thread.message.delta"
    )

    assert expire_if_orphaned(store, producer.run_id) is True
    after = store.events(producer.run_id)
    tail = after[len(before) :]
    assert [e.event for e in tail] == [
        "thread.message.incomplete",
        "thread.run.expired",
        "done",
    ]
    assert [e.seq for e in after] == list(range(1, len(after) + 1))
    assert tail[1].data["status"] == "expired" and tail[1].data["expires_at"]
    assert tail[1].data["last_error"] == {
        "code": "server_error",
        "message": f"the process running this run (pid {producer.proc.pid}) "
        "ended before it finished",
    }
    assert tail[2].data == "[DONE]"

    expired = store.get_run(producer.run_id)
    assert expired.status == "expired" and expired.last_error.code == "server_error"
    (message,) = store.list_messages(producer.thread_id, run_id=producer.run_id)
    assert message.status == "incomplete" and message.incomplete_details.reason == "run_expired"
    assert message.text == streamed and streamed.startswith("tick tick tick")
    assert tail[0].data["id"] == message.id

    # Already ended: a second call (another hub, a retry) changes nothing.
    assert expire_if_orphaned(store, producer.run_id) is False
    assert len(store.events(producer.run_id)) == len(after)


def _in_progress_run(store: Store, metadata: dict[str, str]) -> Run:
    thread = store.create_thread()
    run = Run(
        id=new_id("run"),
        created_at=now(),
        thread_id=thread.id,
        assistant_id="local/fake/0.1",
        status="in_progress",
        metadata=metadata,
    )
    return store.save_run(run)


def test_runs_with_a_live_unknown_or_remote_producer_are_left_alone() -> None:
    store = Store()
    host = socket.gethostname()
    alive = _in_progress_run(store, {"nearnb.pid": str(os.getpid()), "nearnb.host": host})
    unknown = _in_progress_run(store, {})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    remote = _in_progress_run(store, {"nearnb.pid": str(dead.pid), "nearnb.host": host + "-x"})
    for run in (alive, unknown, remote):
        assert expire_if_orphaned(store, run.id) is False
        assert store.get_run(run.id).status == "in_progress"
        assert store.events(run.id) == []


def _read_stream(url: str, frames: list[tuple[str, str, str]]) -> None:
    timeout = httpx.Timeout(10.0, read=30.0)
    with (
        httpx.Client(timeout=timeout) as client,
        connect_sse(client, "GET", url) as source,
    ):
        source.response.raise_for_status()
        for sse in source.iter_sse():
            frames.append((sse.id, sse.event, sse.data))


def test_a_live_subscriber_gets_expired_and_its_stream_ends(
    producer: Producer, hub: HubServer
) -> None:
    store = Store()
    producer.wait_for_deltas(store, 3)
    frames: list[tuple[str, str, str]] = []
    reader = threading.Thread(target=_read_stream, args=(producer.stream_url(hub), frames))
    reader.start()
    deadline = time.monotonic() + 10
    while not any(event == "thread.message.delta" for _, event, _ in frames):
        assert time.monotonic() < deadline, "the subscriber got no history"
        time.sleep(0.02)
    producer.kill()
    reader.join(15)  # silence check every ~2 s, then the closing events
    assert not reader.is_alive(), "the stream did not end after the producer died"
    names = [event for _, event, _ in frames]
    assert names[0] == "thread.run.created"
    assert names[-3:] == ["thread.message.incomplete", "thread.run.expired", "done"]
    assert [int(i) for i, _, _ in frames] == list(range(1, len(frames) + 1))
    assert json.loads(frames[-2][2])["status"] == "expired"


def test_attaching_to_an_already_orphaned_run_ends_promptly(
    producer: Producer, hub: HubServer
) -> None:
    producer.wait_for_deltas(Store(), 3)
    producer.kill()
    frames: list[tuple[str, str, str]] = []
    started = time.monotonic()
    _read_stream(producer.stream_url(hub), frames)
    assert time.monotonic() - started < 5
    assert [event for _, event, _ in frames][-2:] == ["thread.run.expired", "done"]
    assert Store().get_run(producer.run_id).status == "expired"
