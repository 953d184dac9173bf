"""Chaos: a hub process SIGKILLed at a random point of a run it executes (issue 8, item 2).

Each round: hub A (a fresh ``python -m nearnb.hub`` process) runs a streaming agent against the
scripted OpenAI server, which streams 150 deltas over about a second; a client reads
the run's SSE stream with httpx-sse, recording every ``(id, event, data)``; at a seeded random
frame hub A is SIGKILLed; the client resumes with ``Last-Event-ID`` from hub B, a second hub
process on the same ``$NEARNB_HOME`` store. Hub B finds the run's producer (hub A) dead and
ends the run ``expired``.

What must hold across the crash ("nothing lost, nothing twice", then the real end), checked
against the event log read straight from the SQLite file (see
:func:`tests.support.chaos.resume_problems`): the union of frames has strictly increasing ids
and no id with two contents; every event seen is in the store as seen; every delta the store
saved is seen exactly once; the stream ends with ``thread.run.expired`` then ``done``; and
``GET .../runs/{id}`` says ``expired``. The ``nearnb.attach`` variant follows the run through a
proxy that is switched from hub A to hub B, and its result must say ``expired``.

All rounds run, then the test fails listing every round that broke a rule, so the failure
shows the whole pattern rather than the first instance.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import nearnb
from nearnb.events import Event
from tests.agent_helpers import make_agent
from tests.support.chaos import (
    Frame,
    HubProc,
    Stored,
    StreamRecorder,
    init_store,
    resume_problems,
    stored_events,
    stored_run_status,
)
from tests.support.hub import CuttingProxy
from tests.support.openai_server import Reply, ScriptedOpenAI

STREAM_REPLY = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
DELTAS = 150
DELAY = 0.005  # seconds before each chunk: ~0.8 s of streaming
SEED = 8  # issue 8
ROUNDS = 20
ATTACH_ROUNDS = 3
#: About how many events a run emits before its first delta (run created, queued, in_progress,
#: message created).
HEAD = 4
#: Kill after 1 .. LAST_KILL frames: the run has at least a quarter of its deltas (~190 ms of
#: streaming) left then, so the kill always lands mid-run.
LAST_KILL = HEAD + DELTAS * 3 // 4


@dataclass
class Round:
    number: int
    kill_after: int
    how: str  # how the first connection was opened
    run_id: str = ""
    killed_after_id: int = 0  # the id of the frame on which hub A was killed
    recorder: StreamRecorder = field(default_factory=StreamRecorder)
    stored: list[Stored] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase

    def describe(self) -> str:
        saved = [s for s in self.stored if s.event == "thread.message.delta"]
        head = (
            f"round {self.number} (killed after frame {self.kill_after}, {self.how}; client saw "
            f"ids 1-{self.killed_after_id} when it killed hub A, store saved "
            f"{len(saved)} deltas and ends with "
            f"{[(s.seq, s.event) for s in self.stored[-3:]]}; resume: "
            f"{self.recorder.statuses} {self.recorder.endings})"
        )
        return head + "".join(f"\n    - {p}" for p in self.problems)


@pytest.fixture
def agents(srv: ScriptedOpenAI, tmp_path: Path) -> Iterator[Path]:
    """``streamer``: streams whatever the scripted server sends, which is DELTAS slow pieces."""
    srv.default = Reply.text(*[f"d{i} " for i in range(DELTAS)], delay=DELAY)
    folder = tmp_path / "agents"
    make_agent(folder / "streamer", STREAM_REPLY)
    init_store()  # hubs start in parallel
    yield folder


class HubSupply:
    """Fresh hub processes, started and warmed up ``depth`` at a time in the background while
    rounds run: starting one takes ~1.5 s on a busy host and would otherwise dominate a round.
    Every process it makes is killed at the end, whatever happened."""

    def __init__(self, agents: Path, depth: int = 2) -> None:
        self.agents = agents
        self.depth = depth
        self.made: list[HubProc] = []
        self._planned = 0
        self._pool = ThreadPoolExecutor(max_workers=depth)
        self._coming: deque[Future[HubProc]] = deque()

    def spawn(self) -> HubProc:
        hub = HubProc(agents=self.agents).spawn()
        self.made.append(hub)
        return hub

    def plan(self, count: int) -> None:
        """``count`` hubs will be taken: start preparing the first ``depth``."""
        self._planned += count
        self._top_up()

    def take(self) -> HubProc:
        """The next prepared hub (waiting for it if need be)."""
        assert self._coming, "take() beyond plan()"
        hub = self._coming.popleft().result(timeout=90)
        self._top_up()
        return hub

    def _top_up(self) -> None:
        while self._planned and len(self._coming) < self.depth:
            self._planned -= 1
            self._coming.append(self._pool.submit(_warm, self.spawn()))

    def close(self) -> None:
        for hub in self.made:
            hub.close()
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def supply(agents: Path) -> Iterator[HubSupply]:
    hubs = HubSupply(agents)
    try:
        yield hubs
    finally:
        hubs.close()


def _warm(hub: HubProc) -> HubProc:
    """Wait for a spawned hub and make it load the provider stack (openai, ~0.5 s) with one
    non-streamed chat completion, so a round's run starts streaming at once."""
    hub.wait_ready()
    response = httpx.post(
        f"{hub.url}/v1/chat/completions",
        json={"model": "scripted::test-model", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    response.raise_for_status()
    return hub


def _new_thread(hub: HubProc) -> str:
    response = httpx.post(f"{hub.url}/v1/threads", json={}, timeout=10)
    response.raise_for_status()
    return response.json()["id"]


def _start_run(hub_url: str, thread_id: str) -> str:
    """``POST .../runs`` without streaming; the id of the run it started."""
    response = httpx.post(
        f"{hub_url}/v1/threads/{thread_id}/runs", json={"assistant_id": "streamer"}, timeout=10
    )
    assert response.status_code == 200, f"POST /runs: {response.status_code} {response.text}"
    return response.json()["id"]


def _crash_round(round_: Round, hub_a: HubProc, hub_b: HubProc) -> None:
    """Run on hub A, kill A at the chosen frame, resume from hub B, check against the store."""
    recorder = round_.recorder
    thread_id = _new_thread(hub_b)
    runs_url = f"{hub_a.url}/v1/threads/{thread_id}/runs"
    started = time.monotonic()

    def kill_at(frame: Frame) -> None:
        if len(recorder.frames) == round_.kill_after:
            round_.timings["to kill"] = time.monotonic() - started
            round_.killed_after_id = frame.id
            hub_a.kill()

    if round_.how == "POST stream":
        recorder.read(
            "POST",
            runs_url,
            json_body={"assistant_id": "streamer", "stream": True},
            on_frame=kill_at,
        )
        assert recorder.frames, f"no frame before the connection ended: {recorder.endings}"
        round_.run_id = recorder.frames[0].data["id"]
    else:
        round_.run_id = _start_run(hub_a.url, thread_id)
        recorder.read(
            "GET", f"{hub_a.url}/v1/threads/{thread_id}/stream/{round_.run_id}", on_frame=kill_at
        )
    assert hub_a.proc is not None and hub_a.proc.returncode is not None, (
        f"hub A was not killed: its stream ended after {len(recorder.frames)} frames "
        f"({recorder.endings}), before frame {round_.kill_after}"
    )
    resumed = time.monotonic()
    recorder.resume(f"{hub_b.url}/v1/threads/{thread_id}/stream/{round_.run_id}")
    round_.timings["resume"] = time.monotonic() - resumed

    round_.stored = stored_events(round_.run_id)
    assert stored_run_status(round_.run_id) != "completed", (
        f"the run completed before the kill after frame {round_.kill_after}: the client lagged "
        "the hub; stream more slowly (DELAY) for this test to mean anything"
    )
    round_.problems = resume_problems(recorder.frames, round_.stored, "expired")
    run = httpx.get(f"{hub_b.url}/v1/threads/{thread_id}/runs/{round_.run_id}", timeout=10).json()
    assert run["metadata"]["nearnb.pid"] == str(hub_a.pid), "the run was not hub A's"
    if run["status"] != "expired":
        round_.problems.append(f"GET run says {run['status']!r}, not 'expired'")


def test_resume_after_a_hub_crash_gets_every_saved_delta_once_and_the_real_end(
    supply: HubSupply,
) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    hub_b = supply.spawn()
    supply.plan(ROUNDS)
    hub_b.wait_ready()
    rounds: list[Round] = []
    for number in range(1, ROUNDS + 1):
        waited = time.monotonic()
        hub_a = supply.take()
        how = "POST stream" if number % 2 else "POST, then GET stream"
        round_ = Round(number, rng.randint(1, LAST_KILL), how)
        round_.timings["hub A ready"] = time.monotonic() - waited
        rounds.append(round_)
        try:
            _crash_round(round_, hub_a, hub_b)
        finally:
            hub_a.close()
    elapsed = time.monotonic() - started
    broken = [r for r in rounds if r.problems]
    report = "\n".join(r.describe() for r in broken)
    phases = {k: sum(r.timings.get(k, 0.0) for r in rounds) for k in rounds[0].timings}
    spent = ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
    print(f"\n{ROUNDS} crash rounds in {elapsed:.1f} s ({spent}), {len(broken)} broken\n{report}")
    assert not broken, f"{len(broken)} of {ROUNDS} crash rounds broke crash consistency:\n{report}"


class _KillAt:
    """A renderer for ``nearnb.attach`` that, at its ``n``-th event, points the proxy at hub B
    and SIGKILLs hub A: attach's next reconnection lands on hub B."""

    def __init__(self, n: int, hub_a: HubProc, hub_b: HubProc, proxy: CuttingProxy) -> None:
        self.n, self.hub_a, self.hub_b, self.proxy = n, hub_a, hub_b, proxy
        self.seen = 0

    def __call__(self, event: Event) -> None:
        self.seen += 1
        if self.seen == self.n:
            self.proxy.target_port = self.hub_b.port
            self.hub_a.kill()

    def finish(self, result: Any) -> None:
        pass


def test_attach_across_a_hub_crash_returns_the_real_end(supply: HubSupply) -> None:
    rng = random.Random(SEED + 1)
    hub_b = supply.spawn()
    supply.plan(ATTACH_ROUNDS)
    hub_b.wait_ready()
    failures: list[str] = []
    for number in range(1, ATTACH_ROUNDS + 1):
        hub_a = supply.take()
        kill_after = rng.randint(1, LAST_KILL)
        with CuttingProxy(hub_a.port) as proxy:
            thread_id = _new_thread(hub_b)
            run_id = _start_run(proxy.url, thread_id)
            killer = _KillAt(kill_after, hub_a, hub_b, proxy)
            result = nearnb.attach(
                f"{proxy.url}/v1/threads/{thread_id}/stream/{run_id}", display=killer
            )
        hub_a.close()
        assert killer.seen >= kill_after, f"the run ended before event {kill_after}"
        frames = [Frame(e.seq, e.event, e.data, 0) for e in result.events]
        problems = resume_problems(frames, stored_events(run_id), "expired")
        if result.status != "expired":
            problems.append(f"attach returned status {result.status!r}, not 'expired'")
        store_status = stored_run_status(run_id)
        if store_status != "expired":
            problems.append(f"the store says {store_status!r}")
        if problems:
            failures.append(
                f"attach round {number} (killed after event {kill_after}):"
                + "".join(f"\n    - {p}" for p in problems)
            )
    report = "\n".join(failures)
    print(f"\n{ATTACH_ROUNDS} attach rounds, {len(failures)} broken\n{report}")
    assert not failures, f"{len(failures)} of {ATTACH_ROUNDS} attach rounds:\n{report}"
