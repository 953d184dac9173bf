"""Concurrent first runs in a fresh process all complete (issue 8, item 1).

A fresh process has not imported openai, httpx or httpx-sse yet; its first runs import them on
their worker threads. Before :mod:`nearnb.providers.sdk`, one run importing httpx (through
httpx-sse) while another's openai request finished made that request read a half-initialised
``httpx`` from ``sys.modules``: ``ProviderError: partially initialized module 'httpx' has no
attribute 'Response'`` in about half of the runs. The race exists only once per process, so
every check here starts fresh processes: ``python -c`` children starting runs in threads, and
real hub processes receiving several ``POST .../runs`` at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.agent_helpers import make_agent
from tests.support.chaos import ROOT, HubProc, StreamRecorder, init_store
from tests.support.openai_server import Reply, ScriptedOpenAI

STREAM_REPLY = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
PIECES = ("con", "current ", "ok")
PROCESSES = 4
RUNS_PER_PROCESS = 8
HUBS = 2
RUNS_PER_HUB = 6

# Starts n runs at the same moment (a barrier), waits for all, prints their outcomes as JSON.
CHILD = """
import json, sys, threading
from nearnb.runs import start_run

agent, n = sys.argv[1], int(sys.argv[2])
barrier = threading.Barrier(n)
results = [None] * n

def run(i):
    barrier.wait()
    try:
        result = start_run(agent, f"run {i}").wait(60)
        results[i] = {"status": result.status, "text": result.text, "error": result.error}
    except BaseException as exc:
        results[i] = {"status": "raised", "text": "", "error": repr(exc)}

threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results))
"""


@pytest.fixture
def agents(srv: ScriptedOpenAI, tmp_path: Path) -> Iterator[Path]:
    """An agents folder with ``streamer``; every request to the scripted server streams."""
    srv.default = Reply.text(*PIECES)
    folder = tmp_path / "agents"
    make_agent(folder / "streamer", STREAM_REPLY)
    yield folder


def _outcomes(results: list[dict[str, str | None]]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        first_line = (result["error"] or "").strip().partition("\n")[0]
        key = f"{result['status']}: {first_line}"
        counts[key] = counts.get(key, 0) + 1
    return "; ".join(f"{n} x {key}" for key, n in sorted(counts.items()))


def test_concurrent_first_runs_in_fresh_processes_all_complete(agents: Path) -> None:
    init_store()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(agents / "streamer"), str(RUNS_PER_PROCESS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    results: list[dict[str, str | None]] = []
    try:
        for child in children:
            out, err = child.communicate(timeout=90)
            assert child.returncode == 0, err[-3000:]
            results += json.loads(out.strip().splitlines()[-1])
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(10)
    assert len(results) == PROCESSES * RUNS_PER_PROCESS
    failed = [r for r in results if r["status"] != "completed"]
    assert not failed, f"{len(failed)} of {len(results)} runs failed: {_outcomes(failed)}"
    assert {r["text"] for r in results} == {"".join(PIECES)}


def _post_runs_at_once(hub: HubProc, n: int) -> list[StreamRecorder]:
    """``n`` threads on one fresh hub, each ``POST .../runs`` with ``stream: true`` at the same
    moment, each reading its stream to the end."""
    threads = [
        httpx.post(f"{hub.url}/v1/threads", json={}, timeout=10).json()["id"] for _ in range(n)
    ]
    recorders = [StreamRecorder() for _ in range(n)]
    barrier = threading.Barrier(n)

    def post(i: int) -> None:
        barrier.wait()
        recorders[i].read(
            "POST",
            f"{hub.url}/v1/threads/{threads[i]}/runs",
            json_body={"assistant_id": "streamer", "stream": True},
        )

    workers = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not any(w.is_alive() for w in workers), "a run stream did not end"
    return recorders


def test_concurrent_runs_posted_to_a_fresh_hub_all_complete(agents: Path) -> None:
    outcomes: list[str] = []
    for _ in range(HUBS):
        with HubProc(agents=agents) as hub:
            for recorder in _post_runs_at_once(hub, RUNS_PER_HUB):
                assert recorder.statuses == [200], recorder.endings
                assert recorder.ended, f"stream ended without done: {recorder.endings}"
                run = recorder.frames[-2].data
                outcome = f"{run['status']}"
                if run["status"] != "completed":
                    outcome += f": {(run.get('last_error') or {}).get('message', '')}"
                else:
                    text = "".join(
                        f.data["delta"]["content"][0]["text"]["value"]
                        for f in recorder.frames
                        if f.event == "thread.message.delta"
                    )
                    assert text == "".join(PIECES)
                    got = httpx.get(
                        f"{hub.url}/v1/threads/{run['thread_id']}/runs/{run['id']}", timeout=10
                    )
                    assert got.json()["status"] == "completed"
                outcomes.append(outcome)
    failed = [o for o in outcomes if o != "completed"]
    assert not failed, f"{len(failed)} of {len(outcomes)} hub runs failed: {failed}"
