"""Fan-out: real runs streamed by the hub to 100 SSE subscribers each, on loopback.

Every round starts a real run (``nearnb.runs.start_run``) of an agent that streams a reply
from the scripted OpenAI-compatible server (in this process, on uvicorn), paced at ``--rate``
chunks per second. The server holds the reply's content back until every subscriber has
received the run's first frame, so all of them are live before the first delta. Measured, for
every (subscriber, event) pair emitted after that point: the delay from the producer's emit
time (the event's ``at``, on the wire as ``nearnb_at`` since subscribers ask for
``?timing=1``) to the moment the subscriber has read the frame. Checked, for every subscriber:
it received exactly the run's events ``1..N`` (N from the run's own result), none missing and
none twice. Any lost or duplicated event, or a run that did not complete, makes the bench exit
with status 1. Target: p99 < 50 ms, 0 lost. (NEAR's hub polled its table every 50-100 ms
and handed each event to only one of the subscribers.)

Two ways a run reaches the hub:

* ``push`` — the hub runs it: ``POST /v1/threads/{tid}/runs`` to a hub in this process, which
  calls ``start_run`` with its broker as a subscriber (and the run writes the store);
* ``tail`` — a run in another process (a notebook kernel): ``start_run`` here writes the store
  only; the hub is a child process (``python -m nearnb.hub``) that tails the run's event log.

Subscribers are asyncio httpx streams spread over worker processes; they split frames with
plain string operations so that the figure is the hub's, not a Python SSE parser's.

Run: ``python bench/bench_fanout.py [--subscribers 100] [--deltas 500] [--rate 100]
[--rounds 3] [--mode push|tail|both]`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROVIDER = "bench"
AGENT = "env.add_reply(env.completion([{'role': 'user', 'content': 'go'}], stream=True))\n"
TIMING = '"nearnb_at":'

# (seq, emitted at, received at) of every frame one subscriber read
Frames = list[tuple[int, float | None, float]]


# ------------------------------------------------------------------ subscribers


async def _subscribe(url: str, ready: Any, frames: Frames) -> None:
    import httpx

    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=120)) as client,
        client.stream("GET", url, params={"timing": "1"}) as response,
    ):
        assert response.status_code == 200, response.status_code
        buffer = ""
        async for text in response.aiter_text():
            received = time.time()
            buffer += text
            *complete, buffer = buffer.split("\n\n")
            for frame in complete:
                seq = at = None
                for line in frame.split("\n"):
                    if line.startswith("id: "):
                        seq = int(line[4:])
                    elif line.startswith("data: ") and (i := line.rfind(TIMING)) > 0:
                        at = float(line[i + len(TIMING) : -1])  # spliced last: ...,"nearnb_at":t}
                if seq is None:
                    continue
                if not frames:
                    ready.put(1)  # live: the hub sends this subscriber the run's frames
                frames.append((seq, at, received))
                if "event: done" in frame:
                    return


def _worker(url: str, count: int, ready: Any, results: Any) -> None:
    async def main() -> list[Frames]:
        outs: list[Frames] = [[] for _ in range(count)]
        await asyncio.gather(*(_subscribe(url, ready, frames) for frames in outs))
        return outs

    for frames in asyncio.run(main()):
        results.put(frames)


# ------------------------------------------------------------------------ rounds


@dataclass
class Round:
    total: int  # events the run emitted, done included
    status: str
    delays: list[float]  # seconds, every (subscriber, event) emitted after the gate opened
    lost: int
    duplicated: int


Starter = Callable[[], tuple[str, str, Callable[[], str]]]  # -> thread id, run id, finish()
GATE = threading.Event()  # the scripted reply's content waits for it


def stored_log(run_id: str, timeout: float) -> list[int]:
    """The run's event log as the store has it, once it ends with ``done``: the truth every
    subscriber is checked against (it is written by the run, not by the hub)."""
    from nearnb.store import Store

    deadline = time.monotonic() + timeout
    while True:
        events = Store().events(run_id)
        if events and events[-1].event == "done":
            return [e.seq for e in events]
        if time.monotonic() > deadline:
            raise TimeoutError(f"the store has no complete log of {run_id}")
        time.sleep(0.01)


def one_round(base: str, start: Starter, subscribers: int, workers: int, timeout: float) -> Round:
    thread_id, run_id, finish = start()
    url = f"{base}/v1/threads/{thread_id}/stream/{run_id}"
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    shares = [subscribers // workers + (i < subscribers % workers) for i in range(workers)]
    procs = [ctx.Process(target=_worker, args=(url, n, ready, results)) for n in shares if n]
    for proc in procs:
        proc.start()
    for _ in range(subscribers):
        ready.get(timeout=timeout)
    opened = time.time()
    GATE.set()  # every subscriber is live: let the deltas flow
    collected: list[Frames] = [results.get(timeout=timeout) for _ in range(subscribers)]
    status = finish()  # after the subscribers: nothing polls the hub while it streams
    for proc in procs:
        proc.join(30)
    log = stored_log(run_id, timeout)
    total = len(log)
    expected = list(range(1, total + 1))
    assert log == expected, "the stored log itself has a gap or a repeat"
    lost = duplicated = 0
    delays: list[float] = []
    for frames in collected:
        seqs = [seq for seq, _, _ in frames]
        lost += len(set(expected) - set(seqs))
        duplicated += len(seqs) - len(set(seqs))
        delays += [got - at for _, at, got in frames if at is not None and at >= opened]
    return Round(total, status, delays, lost, duplicated)


def bench(
    mode: str,
    agents: Path,
    srv: Any,
    subscribers: int,
    deltas: int,
    rate: float,
    rounds: int,
    workers: int,
    timeout: float,
) -> bool:
    """Run ``rounds`` rounds in ``mode``; print one line each and a summary; True if clean."""
    from tests.support.openai_server import Reply

    pieces = [f"tok{i} " for i in range(deltas)]
    agent = agents / "fanout-agent"
    hub_server = hub_process = None
    if mode == "push":
        import httpx

        from nearnb.hub.server import HubServer

        hub_server = HubServer("127.0.0.1", 0, agents_dir=agents)
        base = hub_server.start()
        client = httpx.Client(base_url=base, timeout=30)

        def start() -> tuple[str, str, Callable[[], str]]:
            thread = client.post("/v1/threads", json={}).raise_for_status().json()["id"]
            user = [{"role": "user", "content": "go"}]
            body = {"assistant_id": agent.name, "additional_messages": user}
            run = client.post(f"/v1/threads/{thread}/runs", json=body).raise_for_status()
            run_id = run.json()["id"]

            def finish() -> str:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    run = client.get(f"/v1/threads/{thread}/runs/{run_id}").json()
                    if run["status"] not in ("queued", "in_progress", "cancelling"):
                        return run["status"]
                    time.sleep(0.05)
                return "timed out"

            return thread, run_id, finish

    else:
        from nearnb.runs import start_run
        from tests.support.hub import HubProcess  # the same child-process hub the tests use

        hub_process = HubProcess().start()
        base = hub_process.url

        def start() -> tuple[str, str, Callable[[], str]]:
            handle = start_run(agent, "go")
            return handle.thread_id, handle.run_id, lambda: handle.wait(timeout).status

    results: list[Round] = []
    try:
        for number in range(1, rounds + 1):
            GATE.clear()
            srv.script(Reply.text(*pieces, delay=1 / rate, gate=GATE))
            result = one_round(base, start, subscribers, workers, timeout)
            results.append(result)
            p50, p99 = _percentiles(result.delays)
            print(
                f"  {mode} round {number}: run {result.status}, {subscribers} subscribers x "
                f"{result.total} events: p50 {p50:.1f} ms, p99 {p99:.1f} ms; "
                f"lost {result.lost}, duplicated {result.duplicated}",
                flush=True,
            )
    finally:
        if hub_server is not None:
            hub_server.stop()
        if hub_process is not None:
            hub_process.stop()
    delays = [d for r in results for d in r.delays]
    p50, p99 = _percentiles(delays)
    lost = sum(r.lost for r in results)
    twice = sum(r.duplicated for r in results)
    how = "hub-started run" if mode == "push" else "run tailed from the store by a hub process"
    print(
        f"fan-out ({mode}: {how}): {rounds} runs x {subscribers} subscribers, {deltas} deltas "
        f"at {rate:g}/s: emit->receipt p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(delays) * 1000:.1f} ms; lost {lost}, duplicated {twice} "
        "(target p99 < 50 ms, 0 lost)",
        flush=True,
    )
    return lost == 0 and twice == 0 and all(r.status == "completed" for r in results)


def _percentiles(delays: list[float]) -> tuple[float, float]:
    if not delays:
        return float("nan"), float("nan")
    ordered = sorted(delays)
    return statistics.median(ordered) * 1000, ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--deltas", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0, help="deltas per second")
    parser.add_argument("--rounds", type=int, default=3, help="runs per mode")
    parser.add_argument("--mode", choices=("push", "tail", "both"), default="both")
    parser.add_argument("--workers", type=int, default=2, help="subscriber processes")
    parser.add_argument("--timeout", type=float, default=120.0, help="per wait, seconds")
    args = parser.parse_args()

    from tests.support.openai_server import ScriptedOpenAI

    with tempfile.TemporaryDirectory() as tmp, ScriptedOpenAI() as srv:
        os.environ["NEARNB_HOME"] = str(Path(tmp) / "home")
        os.environ[f"NEARNB_PROVIDER_{PROVIDER.upper()}_BASE_URL"] = srv.base_url
        os.environ[f"NEARNB_PROVIDER_{PROVIDER.upper()}_API_KEY"] = "none"
        os.environ["NEARNB_FALLBACK"] = "error"
        agents = Path(tmp) / "agents"
        agent = agents / "fanout-agent"
        agent.mkdir(parents=True)
        (agent / "agent.py").write_text(AGENT)
        metadata = {
            "name": agent.name,
            "version": "1",
            "details": {"agent": {"defaults": {"model": "bench", "model_provider": PROVIDER}}},
        }
        (agent / "metadata.json").write_text(json.dumps(metadata))
        clean = True
        for mode in ("push", "tail") if args.mode == "both" else (args.mode,):
            clean &= bench(
                mode,
                agents,
                srv,
                args.subscribers,
                args.deltas,
                args.rate,
                args.rounds,
                args.workers,
                args.timeout,
            )
    if not clean:
        print("FAILED: an event was lost or duplicated, or a run did not complete", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
