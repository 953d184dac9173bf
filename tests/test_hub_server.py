"""Running hubs: ``nearnb.hub.start()`` in the background, the CLI, and runs from "kernels".

A run started with ``start_run`` in this process is what a notebook kernel does; the hub that
serves it here is a separate process reading the same ``$NEARNB_HOME``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

import nearnb.hub
from nearnb.hub.client import attach
from nearnb.runs import start_run
from tests.agent_helpers import make_agent
from tests.conftest import ROOT
from tests.support.hub import FakeRun, HubProcess, free_port
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.support.waiting import wait_until

STREAM_REPLY = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"


def nearnb_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nearnb.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_start_returns_a_url_once_and_stop_stops_it() -> None:
    url = nearnb.hub.start(port=0)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert nearnb.hub.start(port=0) == url  # already running: the same hub
        run = FakeRun(5).complete()
        assert attach(url + run.stream_path(), display="none").text == run.text
    finally:
        nearnb.hub.stop(url)
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/v1/threads/x", timeout=2)


def test_start_takes_another_port_when_8081_is_busy() -> None:
    import socket

    with socket.socket() as busy:
        try:
            busy.bind(("127.0.0.1", 8081))
        except OSError:
            pytest.skip("8081 is in use here already")
        busy.listen()
        url = nearnb.hub.start()
        try:
            assert not url.endswith(":8081")
        finally:
            nearnb.hub.stop(url)


def test_a_kernel_run_streams_live_from_a_hub_in_another_process(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(Reply.text(*[f"t{i} " for i in range(40)], delay=0.02))
    with HubProcess() as hub:  # started first: its start-up time cannot outlast the run
        handle = start_run(make_agent(tmp_path / "echo", STREAM_REPLY), "go")
        wait_until(lambda: handle.state.deltas >= 5, "the run has streamed 5 deltas")
        assert not handle.done  # attach mid-run
        result = attach(hub.url, thread_id=handle.thread_id, run_id=handle.run_id, display="none")
    local = handle.wait()
    assert result.status == "completed" and result.text == local.text
    assert [(e.seq, e.event, e.data) for e in result.events] == [
        (e.seq, e.event, e.data) for e in local.events
    ]


def test_cli_refuses_a_public_bind_without_a_token() -> None:
    done = nearnb_cli("hub", "--host", "0.0.0.0", "--port", "0")
    assert done.returncode == 2
    assert "refusing to serve on 0.0.0.0 without a token" in done.stderr
    assert "--token" in done.stderr


def test_cli_hub_and_cli_attach(tmp_path: Path) -> None:
    run = FakeRun(12).complete()
    port = free_port()
    hub = subprocess.Popen(
        [sys.executable, "-m", "nearnb.cli", "hub", "--port", str(port), "--agents", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = hub.stdout.readline()
        assert f"127.0.0.1:{port}/v1" in banner
        done = nearnb_cli("attach", f"http://127.0.0.1:{port}{run.stream_path()}")
        assert done.returncode == 0, done.stderr
        assert run.text.strip() in done.stdout
        missing = nearnb_cli("attach", f"http://127.0.0.1:{port}/v1/threads/t/stream/r")
        assert missing.returncode == 2 and "run not found" in missing.stderr
    finally:
        hub.terminate()
        hub.wait(15)


def test_hub_stops_within_seconds_while_streams_are_open() -> None:
    url = nearnb.hub.start(port=0)
    gate = threading.Event()
    run = FakeRun(3, start_gate=gate).start()
    seen: list[str] = []

    def follow() -> None:
        with httpx.stream("GET", url + run.stream_path(), timeout=30) as response:
            for line in response.iter_lines():
                seen.append(line)

    reader = threading.Thread(target=follow)
    reader.start()
    # the stream is open: the run's first event arrived (the rest waits on the gate)
    wait_until(lambda: "id: 1" in seen, "the stream has delivered its first event")
    started = time.monotonic()
    nearnb.hub.stop(url)
    assert time.monotonic() - started < 3
    reader.join(5)
    assert not reader.is_alive() and seen
    gate.set()


def test_python_dash_m_hub_serves() -> None:
    with HubProcess() as hub:
        assert httpx.post(hub.url + "/v1/threads", json={}).json()["object"] == "thread"
