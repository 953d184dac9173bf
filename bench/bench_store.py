"""The store of record: SQLite against PostgreSQL on the same work, in one run.

What a run's store sink and a hub ask of the store, timed on each backend:

* **commit** — ``Store.commit`` of batches of ``--batch`` delta events (the sink's one
  transaction per batch), ``--events`` in all, from one thread;
* **4 writers** — the same from 4 threads at once, each its own run (several runs of
  one kernel, or several kernels);
* **replay** — ``event_rows`` of the whole log (what a hub sends a late subscriber);
* **get_run** — one point read (what a hub does per request).

PostgreSQL is a real server started for the bench (tests.support.postgres_server: a
throw-away cluster without fsync, so commits here cost the round trips, not the disk; a
durable server adds its fsync per commit). Ratios are PostgreSQL / SQLite, measured in
the same run.

Run: ``python bench/bench_store.py [--events 5000] [--batch 10]`` (~10 s).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def workload(store: object, events: int, batch: int) -> dict[str, float]:
    """The four measurements on ``store``; rates in events/s, latencies in ms."""
    from nearnb.events import Event, Run, message_delta, new_id

    def write(tid: str) -> str:
        run = Run(id=new_id("run"), created_at=1, thread_id=tid, assistant_id="b", status="queued")
        for first in range(1, events + 1, batch):
            rows = [
                Event(
                    seq=seq,
                    event="thread.message.delta",
                    data=message_delta("msg_bench", f"tok{seq} "),
                    run_id=run.id,
                    thread_id=tid,
                )
                for seq in range(first, min(first + batch, events + 1))
            ]
            store.commit(rows, [run] if first == 1 else [], [])  # type: ignore[attr-defined]
        return run.id

    tid = store.create_thread().id  # type: ignore[attr-defined]
    start = time.perf_counter()
    run_id = write(tid)
    commit = time.perf_counter() - start

    threads = [threading.Thread(target=write, args=(tid,)) for _ in range(4)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    parallel = time.perf_counter() - start

    start = time.perf_counter()
    rows = store.event_rows(run_id)  # type: ignore[attr-defined]
    replay = time.perf_counter() - start
    assert len(rows) == events

    start = time.perf_counter()
    for _ in range(200):
        store.get_run(run_id)  # type: ignore[attr-defined]
    point = (time.perf_counter() - start) / 200
    return {
        "commit": events / commit,
        "4 writers": 4 * events / parallel,
        "replay": replay * 1e3,
        "get_run": point * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args()
    os.environ["NEARNB_HOME"] = tempfile.mkdtemp(prefix="nearnb-bench-store-")

    from nearnb.pgstore import PgStore
    from nearnb.store import Store
    from tests.support.postgres_server import PostgresServer

    with PostgresServer() as server:
        sqlite = workload(Store(), args.events, args.batch)
        postgres = workload(PgStore(server.create_database()), args.events, args.batch)

    units = {"commit": "events/s", "4 writers": "events/s", "replay": "ms", "get_run": "ms"}
    print(f"{args.events} delta events in batches of {args.batch}")
    print(f"{'':12}{'sqlite':>14}{'postgres':>14}{'pg/sqlite':>11}")
    for name, unit in units.items():
        ratio = postgres[name] / sqlite[name]
        print(f"{name:12}{sqlite[name]:>14,.2f}{postgres[name]:>14,.2f}{ratio:>10.2f}x  {unit}")


if __name__ == "__main__":
    main()
