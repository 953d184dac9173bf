"""Fan-out: one live run streamed by the hub to 100 SSE subscribers on loopback.

Measures, for every (subscriber, event) pair, the delay from the producer's emit time (the
event's ``at``, on the wire as ``nearnb_at`` since subscribers ask for ``?timing=1``) to the
moment the subscriber has read the frame, and
counts events lost or received twice. Targets: p99 < 50 ms, 0 lost. (NEAR's hub polled its
table every 50-100 ms and handed each event to only one of the subscribers.)

Two producers:

* ``push`` — a run the hub itself executes (``start_run(on_event=broker.publish_threadsafe)``):
  the producer thread lives in the hub process and also writes the store through EventWriter,
  exactly as runs.py does;
* ``tail`` — a run in another process (a notebook kernel): the producer only writes the store
  (EventWriter batches deltas up to 20 ms, as runs do); the hub, another process, tails the log.

Subscribers are asyncio httpx streams spread over worker processes; they split frames with
plain string operations so that the figure is the hub's, not a Python SSE parser's.

Run: ``python bench/bench_fanout.py [--subscribers 100] [--deltas 1000] [--rate 100]
[--mode push|tail|both]`` (~30 s on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ------------------------------------------------------------------ subscribers


TIMING = '"nearnb_at":'


async def _subscribe(url: str, ready: mp.Queue, delays: list[float], seqs: list[int]) -> None:
    import httpx

    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=120)) as client,
        client.stream("GET", url, params={"timing": "1"}) as response,
    ):
        assert response.status_code == 200, response.status_code
        ready.put(1)
        buffer = ""
        async for text in response.aiter_text():
            now = time.time()
            buffer += text
            *frames, buffer = buffer.split("\n\n")
            for frame in frames:
                seq = at = None
                for line in frame.split("\n"):
                    if line.startswith("id: "):
                        seq = int(line[4:])
                    elif line.startswith("data: ") and (i := line.rfind(TIMING)) > 0:
                        at = float(line[i + len(TIMING) : -1])  # spliced last: ...,"nearnb_at":t}
                if seq is None:
                    continue
                seqs.append(seq)
                if at is not None:
                    delays.append(now - at)
                if "event: done" in frame:
                    return


def _worker(url: str, count: int, ready: mp.Queue, results: mp.Queue) -> None:
    async def main() -> list[tuple[list[float], list[int]]]:
        outs = [([], []) for _ in range(count)]
        await asyncio.gather(*(_subscribe(url, ready, d, s) for d, s in outs))
        return outs

    for delays, seqs in asyncio.run(main()):
        results.put((delays, seqs))


# --------------------------------------------------------------------- producer


class Producer:
    """A run of ``deltas`` deltas at ``rate`` per second, written like runs.py writes one."""

    def __init__(self, store, publish=None) -> None:  # noqa: ANN001
        from nearnb.events import Run, new_id, now

        self.store = store
        self.publish = publish
        self.thread_id = store.create_thread().id
        self.run = Run(
            id=new_id("run"), created_at=now(), thread_id=self.thread_id, assistant_id="bench"
        )
        store.save_run(self.run)

    @property
    def path(self) -> str:
        return f"/v1/threads/{self.thread_id}/stream/{self.run.id}"

    def produce(self, deltas: int, rate: float, writer_interval: float = 0.02) -> int:
        from nearnb.events import Event, message_delta
        from nearnb.store import EventWriter

        writer = EventWriter(self.store, interval=writer_interval)
        seq = 0

        def emit(name: str, data: object) -> None:
            nonlocal seq
            seq += 1
            event = Event.model_construct(
                seq=seq,
                event=name,
                data=data,
                run_id=self.run.id,
                thread_id=self.thread_id,
                at=time.time(),
            )
            writer(event)
            if self.publish is not None:
                self.publish(event)

        run = self.run.model_dump(mode="json")
        emit("thread.run.in_progress", run)
        start = time.perf_counter()
        for i in range(deltas):
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            emit("thread.message.delta", message_delta("msg_bench", f"tok{i} "))
        emit("thread.run.completed", {**run, "status": "completed"})
        emit("done", "[DONE]")
        writer.close()
        return seq


# ------------------------------------------------------------------------ bench


def bench(
    mode: str, subscribers: int, deltas: int, rate: float, workers: int, writer_interval: float
) -> str:
    from nearnb.store import Store

    store = Store()
    hub = proc = None
    if mode == "push":
        from nearnb.hub.server import HubServer

        hub = HubServer("127.0.0.1", 0)
        base = hub.start()
        producer = Producer(store, hub.hub.broker.publish_threadsafe)
    else:
        from tests.support.hub import HubProcess  # the same child-process hub the tests use

        proc = HubProcess().start()
        base = proc.url
        producer = Producer(store)
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    shares = [subscribers // workers + (i < subscribers % workers) for i in range(workers)]
    procs = [
        ctx.Process(target=_worker, args=(base + producer.path, n, ready, results))
        for n in shares
        if n
    ]
    for p in procs:
        p.start()
    for _ in range(subscribers):
        ready.get(timeout=60)
    time.sleep(0.5)  # every subscription is registered on the hub
    total = producer.produce(deltas, rate, writer_interval)
    collected = [results.get(timeout=120) for _ in range(subscribers)]
    for p in procs:
        p.join(30)
    if hub is not None:
        hub.stop()
    if proc is not None:
        proc.stop()
    delays = sorted(d for ds, _ in collected for d in ds)
    lost = sum(total - len(set(s)) for _, s in collected)
    twice = sum(len(s) - len(set(s)) for _, s in collected)
    p50 = statistics.median(delays) * 1000
    p99 = delays[int(len(delays) * 0.99) - 1] * 1000
    writer = f", store writer batching {writer_interval * 1000:g} ms" if mode == "tail" else ""
    return (
        f"fan-out ({mode}): {subscribers} subscribers x {total} events ({deltas} deltas at "
        f"{rate:g}/s{writer}): emit->receipt p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {delays[-1] * 1000:.1f} ms; lost {lost}, duplicated {twice}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--deltas", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="deltas per second")
    parser.add_argument("--mode", choices=("push", "tail", "both"), default="both")
    parser.add_argument("--workers", type=int, default=2, help="subscriber processes")
    parser.add_argument(
        "--writer-interval",
        type=float,
        default=0.02,
        help="EventWriter batching of the tailed run, s (runs use the default, 0.02)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["NEARNB_HOME"] = home
        for mode in ("push", "tail") if args.mode == "both" else (args.mode,):
            line = bench(
                mode, args.subscribers, args.deltas, args.rate, args.workers, args.writer_interval
            )
            print(line, flush=True)


if __name__ == "__main__":
    main()
