"""Two agents side by side on the embedded model vs the same two one after the other.

Side by side (``nearnb.compare``) the runs share the embedded model in fair
turns, token by token, each on its own ``Llama`` instance
(:mod:`nearnb.providers.turns`); one after the other they run back to back.
Both are the same two agents (one streamed completion each, temperature 0,
the same message, ``--tokens`` tokens at most), measured in the same process,
rounds alternating which goes first so background load hits both alike.

Reported per mode (median of the rounds): wall time for both runs, and the
time from the start until the *second* run's first delta - what the user
waits before the second column moves. Also the memory the second instance
costs (private, from /proc/self/smaps_rollup).

Run: ``python bench/bench_compare.py [--tokens 96] [--rounds 3] [--threads N]`` (~1 min on
2 idle cores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

AGENT = "env.add_reply(env.completion(env.list_messages(), stream=True, temperature=0))\n"
MESSAGE = "Write a short poem about the sea."


def make_agents(root: Path) -> list[Path]:
    folders = []
    for name in ("sea-a", "sea-b"):
        folder = root / name
        folder.mkdir()
        (folder / "agent.py").write_text(AGENT)
        meta = {"defaults": {"model": "smollm2", "model_provider": "local"}}
        metadata = {"name": name, "version": "0.1.0", "details": {"agent": meta}}
        (folder / "metadata.json").write_text(json.dumps(metadata))
        folders.append(folder)
    return folders


def private_mb() -> float:
    """Private (anonymous) memory of this process, MB."""
    with open("/proc/self/smaps_rollup") as smaps:
        for line in smaps:
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) / 1024
    return 0.0


def first_delta(events: list) -> float:
    return next(e.at for e in events if e.event == "thread.message.delta")


def side_by_side(agents: list[Path]) -> tuple[float, float, int]:
    from nearnb.comparing import compare

    started = time.time()
    result = compare(agents, MESSAGE, display="none")
    wall = time.time() - started
    second = max(first_delta(r.events) for r in result.results)  # the later of the two
    return wall, second - started, sum(r.deltas for r in result.results)


def one_after_the_other(agents: list[Path]) -> tuple[float, float, int]:
    from nearnb.api import run_agent

    started = time.time()
    results = [run_agent(agent, MESSAGE, display="none") for agent in agents]
    wall = time.time() - started
    return wall, first_delta(results[1].events) - started, sum(r.deltas for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=0, help="llama.cpp threads (default: nearnb's choice)"
    )
    args = parser.parse_args()
    os.environ["NEARNB_LOCAL_MAX_TOKENS"] = str(args.tokens)
    if args.threads:
        os.environ["NEARNB_LOCAL_THREADS"] = str(args.threads)
    load_before = os.getloadavg()[0]
    os.environ.setdefault("NEARNB_HOME", tempfile.mkdtemp(prefix="nearnb-bench-"))

    from nearnb.providers.local import llama_settings, load

    with tempfile.TemporaryDirectory() as tmp:
        agents = make_agents(Path(tmp))
        before = private_mb()
        load()
        one = private_mb()
        side_by_side(agents)  # warm-up: loads the second instance, imports everything
        two = private_mb()
        _first, pool = load()
        modes = {"side by side": side_by_side, "one after the other": one_after_the_other}
        walls: dict[str, list[float]] = {name: [] for name in modes}
        seconds: dict[str, list[float]] = {name: [] for name in modes}
        for round_ in range(args.rounds):
            order = list(modes.items())
            if round_ % 2:
                order.reverse()
            for name, fn in order:
                wall, second, deltas = fn(agents)
                walls[name].append(wall)
                seconds[name].append(second)
                print(
                    f"round {round_ + 1} {name:>20}: wall {wall:5.2f} s, second run's first "
                    f"delta after {second:5.2f} s ({deltas} deltas)"
                )
    wall_side, wall_seq = (statistics.median(walls[n]) for n in modes)
    first_side, first_seq = (statistics.median(seconds[n]) for n in modes)
    settings = llama_settings()
    print(
        f"\nTwo agents on the embedded model (SmolLM2-135M, n_threads={settings['n_threads']}, "
        f"{args.tokens} tokens each, median of {args.rounds} rounds):\n"
        f"  wall time:              side by side {wall_side:.2f} s vs one after the other "
        f"{wall_seq:.2f} s = {wall_side / wall_seq:.2f}x\n"
        f"  second run's 1st delta: side by side {first_side:.2f} s vs one after the other "
        f"{first_seq:.2f} s = {first_side / first_seq:.2f}x "
        f"({first_seq / first_side:.1f}x sooner)\n"
        f"  memory: the model {one - before:.0f} MB private, a second instance "
        f"+{two - one:.0f} MB ({pool.instances} instances in the pool)\n"
        f"  machine load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
        f"({os.cpu_count()} CPUs): llama.cpp's threads spin at barriers, so other processes "
        "make single rounds slow; compare the two modes within a round"
    )


if __name__ == "__main__":
    main()
