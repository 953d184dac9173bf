"""The scrubber on a 10,000-delta recorded run: time to open it, time per seek.

The run is real: an agent streams 10,000 deltas from the scripted OpenAI server
(tests/support/openai_server.py) on 127.0.0.1, and ``RunResult.save`` writes
its recorded-run file. Then, with no frontend (widget traffic goes to the
recording comm of nearnb.view.testing, which serialises every message as the
kernel would):

* open: file -> parsed events -> timeline (one fold, checkpoints) -> the widget
  built and rendered at the end of the run;
* seek: ``scrubber.position = k`` for random k (view model, widget updates,
  their JSON), and the worst case (a position just before the next checkpoint,
  reached from far away: a state copy plus ``every - 1`` events folded);
* the naive seek - ``present(reduce(events[:k]))``, re-folding from zero - on
  the same positions, in the same process, as a ratio.

Run: ``python bench/bench_scrub.py [--deltas 10000] [--seeks 400]`` (~20 s).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STREAM = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"


def pieces(deltas: int) -> list[str]:
    """Words, a paragraph break every 40 of them (so the view freezes paragraphs)."""
    return [f"word{i}" + ("\n\n" if i % 40 == 39 else " ") for i in range(deltas)]


def record_run(folder: Path, deltas: int) -> Path:
    """A real run of ``deltas`` deltas on the scripted server, saved as a recorded-run file."""
    from nearnb.runs import run_agent
    from tests.agent_helpers import make_agent
    from tests.support.openai_server import Reply, ScriptedOpenAI

    with ScriptedOpenAI() as server:
        os.environ["NEARNB_PROVIDER_SCRIPTED_BASE_URL"] = server.base_url
        os.environ["NEARNB_PROVIDER_SCRIPTED_API_KEY"] = "sk-bench"
        server.script(Reply.text(*pieces(deltas)))
        result = run_agent(make_agent(folder / "streamer", STREAM), "Go on.")
    assert result.status == "completed" and result.deltas == deltas, result.error
    return result.save(folder / "run.jsonl")


def timed(call: object) -> tuple[float, object]:
    start = time.perf_counter()
    value = call()  # type: ignore[operator]
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deltas", type=int, default=10_000)
    parser.add_argument("--seeks", type=int, default=400)
    parser.add_argument("--naive", type=int, default=60, help="naive seeks measured")
    parser.add_argument("--rounds", type=int, default=3, help="opens measured")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NEARNB_HOME"] = str(Path(tmp) / "home")
        made, path = timed(lambda: record_run(Path(tmp), args.deltas))
        print(
            f"recorded run: {args.deltas:,} deltas, {path.stat().st_size / 1e6:.1f} MB file "
            f"(made in {made:.1f} s on the scripted server)"
        )
        bench(path, args)


def bench(path: Path, args: argparse.Namespace) -> None:
    from nearnb.reducer import reduce
    from nearnb.scrubbing import scrub, timeline_of
    from nearnb.view.present import present
    from nearnb.view.scrubber import Scrubber
    from nearnb.view.testing import recording_comms

    # ------------------------------------------------------------------ open
    opens, parts = [], []
    with recording_comms(keep=False) as wire:
        for _ in range(args.rounds):
            wire.clear()
            start = time.perf_counter()
            timeline = timeline_of(path)
            built = time.perf_counter()
            scrubber = Scrubber(timeline)
            opens.append(time.perf_counter() - start)
            parts.append((built - start, opens[-1] - (built - start)))
            opened_bytes, opened_msgs = wire.bytes, wire.count()
            scrubber.close()
        scrubber = scrub(path)
    events = scrubber.timeline.events
    end = len(events)
    load, widget = min(parts)
    print(
        f"\nopen (file -> widget at the end, no frontend), best of {args.rounds}: "
        f"{min(opens) * 1000:.0f} ms  (read + fold + {len(timeline._checkpoints)} checkpoints "
        f"{load * 1000:.0f} ms, widgets {widget * 1000:.0f} ms; {opened_msgs} comm messages, "
        f"{opened_bytes / 1e3:.0f} kB)"
    )
    print(f"events: {end:,}, checkpoint every {scrubber.timeline.every} events")

    # ------------------------------------------------------------------ seeks
    rng = random.Random(12)
    positions = [rng.randrange(end + 1) for _ in range(args.seeks)]
    with recording_comms(keep=False) as wire:
        scrubber = scrub(path)
        wire.clear()
        seeks = []
        for k in positions:
            took, _ = timed(lambda k=k: setattr(scrubber, "position", k))
            seeks.append(took)
        seek_bytes = wire.bytes / len(positions)

        every = scrubber.timeline.every
        worst = []
        for base in range(0, end - every, max(every, (end // 20) // every * every)):
            scrubber.position = end if base < end // 2 else 0  # far away: no forward fold
            took, _ = timed(lambda base=base: setattr(scrubber, "position", base + every - 1))
            worst.append(took)

        scrubber.position = 0
        steps = []
        for k in range(1, min(end, 2000) + 1):  # play / the ▶ button / an arrow key
            took, _ = timed(lambda k=k: setattr(scrubber, "position", k))
            steps.append(took)

    timeline = scrubber.timeline
    model_seeks = [timed(lambda k=k: timeline.view_at(k))[0] for k in positions]
    naive = [
        timed(lambda k=k: present(reduce(events[:k]), timeline.info))[0]
        for k in positions[: args.naive]
    ]
    ours = statistics.mean(model_seeks[: args.naive])

    ms = 1000.0
    print(f"\nseek, {len(positions)} random positions (widget updated, messages serialised):")
    first, rest = seeks[0], seeks[1:]
    print(
        f"  first seek {first * ms:.0f} ms (into the long message: its paragraph blocks are "
        "made once, then reused by every seek)"
    )
    print(
        f"  then median {statistics.median(rest) * ms:.2f} ms, p95 "
        f"{sorted(rest)[int(len(rest) * 0.95)] * ms:.2f} ms, max {max(rest) * ms:.2f} ms, "
        f"{seek_bytes / 1e3:.1f} kB sent per seek "
        f"(the text is {len(timeline.view_at(end).blocks[0].text) / 1e3:.0f} kB)"
    )
    print(
        f"  worst case (just before a checkpoint, from far away): "
        f"max {max(worst) * ms:.2f} ms, mean {statistics.mean(worst) * ms:.2f} ms"
    )
    print(
        f"  one event on (play, ▶, →), {len(steps)} steps: "
        f"median {statistics.median(steps) * ms:.3f} ms, max {max(steps) * ms:.2f} ms"
    )
    print(
        f"\nview model only, same positions: checkpointed {ours * ms:.2f} ms/seek, "
        f"naive re-fold from 0 {statistics.mean(naive) * ms:.2f} ms/seek "
        f"-> {statistics.mean(naive) / ours:.0f}x faster ({args.naive} seeks each)"
    )


if __name__ == "__main__":
    main()
