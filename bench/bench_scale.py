"""Scale-out: hub processes on one PostgreSQL and one Redis, against one hub on SQLite.

Each configuration runs the same workload in real processes:

* **producers**: ``--producers`` processes (standing in for kernels; default 4) execute
  ``--runs`` concurrent runs between them (``nearnb.runs.start_run``), each streaming about
  ``--deltas`` chunks at ``--rate`` chunks/s from a scripted OpenAI-compatible server inside
  its process. The content is held back until every subscriber is connected; then each run
  starts at its own phase within one chunk interval, and run lengths differ by up to a fifth,
  as independent runs would. ``--lockstep`` gives the worst case instead: every run the same
  length and every chunk of every run at the same instants. Each producer first does as many
  concurrent untimed warm-up runs (first-use imports and schemas, and the store's and bus's
  connections), then freezes its heap as ``nearnb hub`` does (``gc.freeze``);
* ``--hubs`` hub processes (``python -m nearnb.hub``) on their own ports;
* ``--subscribers`` SSE subscribers, spread round-robin over the hubs and the runs, each
  reading with ``?timing=1``, all in one client process (this one). They read with
  httptools' parser on asyncio transports, not httpx: httpx's async stack costs about 45 us
  of CPU per frame, a whole core at 20,000 frames/s, and the figures would then measure
  this process's own backlog. Its garbage collector is off while it measures, for the same
  reason.

Measured for every (subscriber, event) pair emitted after the content was released: the delay
from the producer's emit time to this process having read the frame (p50/p99); checked for
every subscriber: exactly the run's events ``1..N``, none lost, none twice. Also: the CPU
seconds each hub process spent (from ``/proc``), this process's and the producers', and a
cancel's time from the ``POST .../cancel`` on a hub to the ``thread.run.cancelled`` frame on a
subscriber of another (median of ``--cancels`` runs executing in another process).

Configurations: ``sqlite x1`` (the default set-up), ``postgres+redis x1``, ``postgres+redis
x{hubs}``; the cost per extra hub is the difference in hub CPU seconds (and in p99) between
the last two, divided by the extra hubs. Target: p99 < 100 ms, 0 lost.

Run: ``python bench/bench_scale.py [--hubs 4] [--runs 20] [--subscribers 1000] [--deltas 100]
[--rate 20] [--cancels 5] [--producers 4] [--lockstep]`` (about two minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TIMING = '"nearnb_at":'
AGENT = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
PRODUCER = """
import gc, json, os, sys, threading, time
sys.path.insert(0, sys.argv[1])
from tests.agent_helpers import make_agent
from tests.support.openai_server import Reply, ScriptedOpenAI
from nearnb.runs import start_run
runs, deltas, rate = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
lockstep, first, total = sys.argv[7] == "1", int(sys.argv[8]), int(sys.argv[9])
gates = [threading.Event() for _ in range(runs)]
with ScriptedOpenAI() as srv:
    os.environ["NEARNB_PROVIDER_SCRIPTED_BASE_URL"] = srv.base_url
    os.environ["NEARNB_PROVIDER_SCRIPTED_API_KEY"] = "sk-bench"
    # First-use costs paid untimed: imports, schemas, and as many store and bus connections
    # as this many concurrent runs hold (a PostgreSQL connection is a forked server process).
    srv.script(*[Reply.text("warm", "up") for _ in range(runs)])
    for j, gate in enumerate(gates):  # lengths differ by up to a fifth, unless in lockstep
        n = deltas if lockstep else deltas + (first + j) * deltas // (5 * total)
        srv.script(Reply.text(*[f"w{i} " for i in range(n)], delay=1 / rate, gate=gate))
    agent = make_agent(__import__("pathlib").Path(sys.argv[2]), sys.argv[6])
    warm = [start_run(agent, "warm-up") for _ in range(runs)]
    assert [h.wait().status for h in warm] == ["completed"] * runs
    # As `nearnb hub` does: the imports of a long-lived process are not rescanned by every
    # full collection (one, 70-140 ms, otherwise fell just as the runs started).
    gc.collect()
    gc.freeze()
    handles = [start_run(agent, "go") for _ in range(runs)]
    print(json.dumps([[h.thread_id, h.run_id] for h in handles]), flush=True)
    sys.stdin.readline()
    cpu0, start = time.process_time(), time.monotonic()
    for j, gate in enumerate(gates):  # in lockstep, or each run at its own phase
        if not lockstep:
            time.sleep(max(0.0, start + (first + j) / total / rate - time.monotonic()))
        gate.set()
    statuses = [h.wait().status for h in handles]
    print(json.dumps({"statuses": statuses, "cpu": time.process_time() - cpu0}), flush=True)
"""


# ------------------------------------------------------------------ subscribers


class _Subscriber(asyncio.Protocol):
    """One SSE subscriber on an asyncio transport: it keeps what it reads, with the time read.

    Not httpx: its async stack (httpcore, h11, anyio, timeouts, flow control)
    costs about 45 us of CPU per frame, so 1,000 subscribers reading 20,000
    frames a second in this one process would take a whole core of the two the
    hubs run on, and the figures would measure this process's backlog. While
    the runs stream, this process only stamps and keeps each read (about 2 us);
    :meth:`frames` parses them afterwards with httptools (llhttp, uvicorn's
    parser), so a frame's receipt time is the time of the read that completed it,
    exactly as if it had been parsed then. Parsing as it read cost about 15 us a
    frame, a sixth of a core taken from the hubs at 20,000 frames/s. Two cheap
    byte checks stand in for the parse meanwhile: an ``id:`` line means the first
    frame arrived, and the chunked-encoding terminator means the response ended
    (``done`` is then checked in the parse; a response that ends without it
    counts as lost).
    """

    def __init__(self, request: bytes, on_first: Any) -> None:
        self._request = request
        self._on_first = on_first
        self.reads: list[tuple[float, bytes]] = []
        self._seen_id = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # asyncio.Protocol
    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        reads = self.reads
        reads.append((time.time(), data))
        if not self._seen_id and b"id: " in data:
            self._seen_id = True
            self._on_first()
        if data.endswith(b"\r\n0\r\n\r\n") or data == b"0\r\n\r\n":
            self._finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc) if exc else self.done.set_result(None)
        self._transport.close()

    def frames(self) -> list[tuple[int, float | None, float, str]]:
        """``(seq, emit time, receipt time, event name)`` of every frame read, in order."""
        return _Parse(self.reads).frames


class _Parse:
    """httptools over one subscriber's reads, after the fact (see :class:`_Subscriber`)."""

    def __init__(self, reads: list[tuple[float, bytes]]) -> None:
        import httptools

        self.frames: list[tuple[int, float | None, float, str]] = []
        self._buffer = ""
        parser = httptools.HttpResponseParser(self)
        for self._received, data in reads:
            parser.feed_data(data)
        self._status = parser.get_status_code()
        if self._status != 200:
            raise AssertionError(f"HTTP {self._status}")

    def on_body(self, body: bytes) -> None:
        self._buffer += body.decode()
        *complete, self._buffer = self._buffer.split("\n\n")
        for frame in complete:
            seq = at = None
            name = ""
            for line in frame.split("\n"):
                if line.startswith("id: "):
                    seq = int(line[4:])
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and (i := line.rfind(TIMING)) > 0:
                    at = float(line[i + len(TIMING) : -1])
            if seq is not None:
                self.frames.append((seq, at, self._received, name))


async def _subscribe(url: str, on_first: Any) -> _Subscriber:
    parts = urlsplit(url)
    request = (
        f"GET {parts.path}?timing=1 HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    _, reader = await loop.create_connection(
        lambda: _Subscriber(request, on_first), parts.hostname, parts.port
    )
    await reader.done
    return reader


async def _fan_out(urls: list[str], go: Any) -> tuple[list[_Subscriber], float]:
    ready = asyncio.Event()
    count = [0]

    def on_first() -> None:
        count[0] += 1
        if count[0] == len(urls):
            ready.set()

    tasks = []
    for i, url in enumerate(urls):
        tasks.append(asyncio.create_task(_subscribe(url, on_first)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # connect in waves: listen backlogs are 128
    await asyncio.wait_for(ready.wait(), 120)
    # This process only measures: a collection of its reads would stall every
    # subscriber's reads at once and show up as hub latency.
    gc.collect()
    gc.disable()
    try:
        released = time.time()
        go()
        subscribers = await asyncio.gather(*tasks)
    finally:
        gc.enable()
    return subscribers, released


# ------------------------------------------------------------------ processes


def _run(main: Any) -> Any:
    """``asyncio.run(main)``, on uvloop when installed (the hub's loop too): cheaper reads."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _producers(args: argparse.Namespace, tmp: Path) -> list[subprocess.Popen[str]]:
    """``--producers`` processes sharing ``--runs`` runs, each run at its own phase."""
    n = max(1, min(args.producers, args.runs))
    shares = [args.runs // n + (k < args.runs % n) for k in range(n)]
    procs = []
    for k, share in enumerate(shares):
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    PRODUCER,
                    str(ROOT),
                    str(tmp / f"agent-{time.monotonic_ns()}"),
                    str(share),
                    str(args.deltas),
                    str(args.rate),
                    AGENT,
                    "1" if args.lockstep else "0",
                    str(sum(shares[:k])),
                    str(args.runs),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        )
    return procs


def _workload(args: argparse.Namespace, hubs: list[Any], tmp: Path) -> dict[str, Any]:
    producers = _producers(args, tmp)
    runs = []
    for producer in producers:
        assert producer.stdout is not None
        runs += json.loads(producer.stdout.readline())
    urls = [
        f"{hubs[i % len(hubs)].url}/v1/threads/{runs[i % len(runs)][0]}/stream/"
        f"{runs[i % len(runs)][1]}"
        for i in range(args.subscribers)
    ]
    at_release: dict[str, Any] = {}

    def go() -> None:
        # CPU seconds are counted from here: the connections' set-up is not the streaming's
        at_release["hubs"] = [_cpu_seconds(h.proc.pid) for h in hubs]
        at_release["client"] = time.process_time()
        at_release["wall"] = time.monotonic()
        for producer in producers:
            assert producer.stdin is not None
            producer.stdin.write("go\n")
            producer.stdin.flush()

    subscribers, released = _run(_fan_out(urls, go))
    client_cpu = time.process_time() - at_release["client"]
    wall = time.monotonic() - at_release["wall"]
    frames = [subscriber.frames() for subscriber in subscribers]  # parsed now, untimed
    statuses, producer_cpu = [], 0.0
    for producer in producers:
        assert producer.stdout is not None
        end = json.loads(producer.stdout.readline())
        statuses += end["statuses"]
        producer_cpu += end["cpu"]
        producer.wait(60)
    cpu = [_cpu_seconds(h.proc.pid) - c for h, c in zip(hubs, at_release["hubs"], strict=True)]
    delays, lost, twice = [], 0, 0
    for got in frames:
        seqs = [f[0] for f in got]
        ended = bool(got) and got[-1][3] == "done"
        total = seqs[-1] if ended else max(seqs, default=0) + 1  # no `done`: its end is lost
        lost += total - len(set(seqs))
        twice += len(seqs) - len(set(seqs))
        delays += [(r - a) * 1000 for _, a, r, _ in got if a is not None and a >= released]
    return {
        "p50": statistics.median(delays) if delays else float("nan"),
        "p99": _pct(delays, 0.99),
        "max": max(delays, default=float("nan")),
        "pairs": len(delays),
        "lost": lost,
        "twice": twice,
        "completed": statuses.count("completed"),
        "hub_cpu": sum(cpu),  # from the release, as the two below
        # this process reads every frame: with the hubs it shows how busy the 2 cores were
        "client_cpu": client_cpu,
        # the runs' processes, from the release to their runs' ends
        "producer_cpu": producer_cpu,
        "wall": wall,
    }


def _cancel_times(args: argparse.Namespace, hubs: list[Any], srv: Any, tmp: Path) -> list[float]:
    import httpx

    from tests.support.scaleout import Producer

    times = []
    for i in range(args.cancels):
        producer = Producer(srv, tmp / f"cancel-{time.monotonic_ns()}", ticks=2000, delay=0.01)
        try:
            producer.wait_for_deltas(3)
            viewer, asker = hubs[i % len(hubs)], hubs[(i + 1) % len(hubs)]
            with (
                httpx.Client(timeout=httpx.Timeout(10, read=30)) as client,
                client.stream("GET", viewer.url + producer.path()) as stream,
            ):
                lines = stream.iter_lines()
                while "thread.message.delta" not in next(lines):
                    pass
                asked = time.monotonic()
                cancel = (
                    f"{asker.url}/v1/threads/{producer.thread_id}/runs/{producer.run_id}/cancel"
                )
                assert httpx.post(cancel, timeout=10).status_code == 200
                while "thread.run.cancelled" not in next(lines):
                    pass
                times.append((time.monotonic() - asked) * 1000)
            producer.finish()
        finally:
            producer.close()
    return times


# ------------------------------------------------------------------ backends


def _configuration(kind: str, n_hubs: int, args: argparse.Namespace) -> dict[str, Any]:
    from tests.support.hub import HubProcess
    from tests.support.openai_server import ScriptedOpenAI
    from tests.support.postgres_server import PostgresServer
    from tests.support.redis_server import redis_server

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["NEARNB_HOME"] = str(tmp / "home")
        for var in ("NEARNB_DATABASE_URL", "NEARNB_BUS"):
            os.environ.pop(var, None)
        if kind == "postgres+redis":
            pg = stack.enter_context(PostgresServer())
            os.environ["NEARNB_DATABASE_URL"] = pg.create_database()
            os.environ["NEARNB_BUS"] = stack.enter_context(redis_server(tmp / "redis"))
        hubs = [stack.enter_context(HubProcess()) for _ in range(n_hubs)]
        figures = _workload(args, hubs, tmp)
        if args.cancels:
            srv = stack.enter_context(ScriptedOpenAI())
            os.environ["NEARNB_PROVIDER_SCRIPTED_BASE_URL"] = srv.base_url
            os.environ["NEARNB_PROVIDER_SCRIPTED_API_KEY"] = "sk-bench"
            times = _cancel_times(args, hubs, srv, tmp)
            figures["cancel_ms"] = statistics.median(times)
            figures["cancel_max_ms"] = max(times)
        return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hubs", type=int, default=4)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--deltas", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="chunks per second per run")
    parser.add_argument("--cancels", type=int, default=5)
    parser.add_argument(
        "--producers",
        type=int,
        default=4,
        help="processes the runs execute in (kernels are processes; one GIL for all 20 "
        "runs would make every run's end wait on the others')",
    )
    parser.add_argument(
        "--lockstep",
        action="store_true",
        help="every run the same length, its chunks released at the same instants as "
        "the others' (the worst case), not at phases spread over one chunk interval "
        "with lengths up to a fifth longer",
    )
    args = parser.parse_args()
    configs = [("sqlite", 1), ("postgres+redis", 1), ("postgres+redis", args.hubs)]
    print(
        f"{args.runs} runs x {args.deltas} deltas at {args.rate:g}/s "
        f"({'lockstep' if args.lockstep else 'own phases, lengths up to +20%'}) in "
        f"{args.producers} processes, {args.subscribers} subscribers; "
        "2-core machine: everything shares it"
    )
    print(
        f"{'backend':<16}{'hubs':>5}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'pairs':>9}"
        f"{'lost':>6}{'twice':>6}{'runs ok':>8}{'hub cpu s':>10}{'client cpu s':>13}"
        f"{'runs cpu s':>11}{'wall s':>8}{'cancel ms':>10}"
    )
    results = {}
    bad = False
    for kind, n in configs:
        f = results[(kind, n)] = _configuration(kind, n, args)
        bad |= f["lost"] > 0 or f["twice"] > 0 or f["completed"] != args.runs
        cancel = (
            f"{f.get('cancel_ms', float('nan')):.0f}/{f.get('cancel_max_ms', float('nan')):.0f}"
        )
        print(
            f"{kind:<16}{n:>5}{f['p50']:>9.1f}{f['p99']:>9.1f}{f['max']:>9.1f}{f['pairs']:>9}"
            f"{f['lost']:>6}{f['twice']:>6}{f['completed']:>8}{f['hub_cpu']:>10.1f}"
            f"{f['client_cpu']:>13.1f}{f['producer_cpu']:>11.1f}{f['wall']:>8.1f}{cancel:>10}",
            flush=True,
        )
    if args.hubs > 1:
        one, many = results[("postgres+redis", 1)], results[("postgres+redis", args.hubs)]
        extra = args.hubs - 1
        print(
            f"cost per extra hub: {(many['hub_cpu'] - one['hub_cpu']) / extra:+.2f} CPU s, "
            f"{(many['p99'] - one['p99']) / extra:+.1f} ms p99 "
            f"(cancel: median/max ms from POST on one hub to the frame on another)"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
