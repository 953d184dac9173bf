"""Replay: a stored run of 10,000 deltas streamed by the hub to one client.

The run is finished and in the store; the hub (a separate process, as ``nearnb hub`` is) reads
its event log and sends it as fast as the client takes it. Three clients, from the wire up:

* raw bytes (httpx) — what the hub itself costs;
* httpx-sse — a third-party SSE parser on top;
* ``nearnb.attach(display="none")`` — the real client: httpx-sse decoding, validation, the
  reducer, the ``RunResult``; it asks for ``?timing=1`` (each event's emit time in its data),
  the other two read the default stream.

"cold" is the first request after the hub started (the log is read from SQLite); "warm" is a
repeat while the hub still holds the run in memory. Target: attach < 1 s. (NEAR's hub read 10
rows per 50 ms: 10,000 deltas took at least 50 s.)

Run: ``python bench/bench_replay.py [--deltas 10000] [--rounds 3]`` (~15 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def store_run(deltas: int) -> str:
    """A finished run of ``deltas`` deltas in the store; returns its stream path."""
    from nearnb.events import Event, Run, message_delta, new_id, now
    from nearnb.store import Store

    store = Store()
    thread_id = store.create_thread().id
    run = Run(id=new_id("run"), created_at=now(), thread_id=thread_id, assistant_id="bench")
    store.save_run(run.model_copy(update={"status": "completed"}))
    data = run.model_dump(mode="json")
    names = ["thread.run.in_progress"] + ["thread.message.delta"] * deltas
    names += ["thread.run.completed", "done"]
    start = time.time()
    events = []
    for seq, name in enumerate(names, 1):
        if name == "thread.message.delta":
            payload: object = message_delta("msg_bench", f"tok{seq} ")
        elif name == "done":
            payload = "[DONE]"
        else:
            payload = data
        events.append(
            Event(
                seq=seq,
                event=name,
                data=payload,
                run_id=run.id,
                thread_id=thread_id,
                at=start + seq * 0.01,
            )
        )
    store.append_events(events)
    return f"/v1/threads/{thread_id}/stream/{run.id}"


def raw_bytes(url: str) -> tuple[int, float]:
    import httpx

    size = 0
    started = time.perf_counter()
    first = None
    with httpx.Client(timeout=30) as client, client.stream("GET", url) as response:
        for chunk in response.iter_bytes():
            first = first or time.perf_counter() - started
            size += len(chunk)
    return size, first or 0.0


def httpx_sse(url: str) -> int:
    import httpx
    from httpx_sse import connect_sse

    with httpx.Client(timeout=30) as client, connect_sse(client, "GET", url) as source:
        return sum(1 for _ in source.iter_sse())


def attach(url: str) -> int:
    from nearnb.hub.client import attach as nearnb_attach

    return nearnb_attach(url, display="none").deltas


def timed(fn: Callable[[str], object], url: str) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn(url)
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["NEARNB_HOME"] = home
        from tests.support.hub import HubProcess  # the same child-process hub the tests use

        path = store_run(args.deltas)
        results: dict[str, list[float]] = {}
        size = first = 0
        for _ in range(args.rounds):
            with HubProcess() as hub:  # a fresh hub: the first request of each is cold
                url = hub.url + path
                for label, fn in (("attach", attach), ("httpx-sse", httpx_sse), ("raw", raw_bytes)):
                    seconds, out = timed(fn, url)
                    kind = "cold" if label == "attach" else "warm"
                    results.setdefault(f"{label} {kind}", []).append(seconds)
                    if label == "raw":
                        size, first = out
                seconds, deltas = timed(attach, url)
                results.setdefault("attach warm", []).append(seconds)
                assert deltas == args.deltas, deltas
        med = {k: statistics.median(v) for k, v in results.items()}
        print(
            f"replay {args.deltas:,} deltas ({size / 1e6:.1f} MB SSE), median of {args.rounds}: "
            f"nearnb.attach {med['attach cold'] * 1000:.0f} ms cold / "
            f"{med['attach warm'] * 1000:.0f} ms warm; httpx-sse "
            f"{med['httpx-sse warm'] * 1000:.0f} ms; raw bytes {med['raw warm'] * 1000:.0f} ms "
            f"(first byte {first * 1000:.0f} ms); target < 1000 ms"
        )


if __name__ == "__main__":
    main()
