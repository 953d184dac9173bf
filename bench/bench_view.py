"""View cost: nearnb's widget view vs a naive one, per event mix and per delta rate.

    python bench/bench_view.py [--deltas 20000] [--rates 100,1000,10000]

Two parts, both measured in full in the same run (nothing extrapolated):

1. **Every event mix** (:mod:`nearnb.view.mixes`): one long message, 300
   short messages in one second, streamed tool steps, a flood of notices, a
   run that fails mid-stream. For each, the worst one-second window of view
   refreshes and of comm messages on the wire (targets: <= 20 and <= 100),
   whether the final view is exact, and the same for a naive view.
2. **A long stream at several delivery rates**: bytes sent vs the answer's
   size (O(n) for nearnb, O(n^2) naive).

``nearnb`` is the real :class:`~nearnb.view.widget.WidgetRenderer`; ``naive``
is one ``HTML`` widget whose value (everything so far + a counter) is set on
every event - what a first implementation does. Widgets get recording comms
(:mod:`nearnb.view.testing`), so every message that would reach the frontend
(open, update, close) is counted at the manual clock's time; bytes are the
JSON of each message's ``data`` (the Jupyter envelope adds ~0.5 kB a message,
which is why message counts matter as much). The exit status is non-zero if
a bound is missed or a final view is not exact.
"""

from __future__ import annotations

import argparse
import html
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ipywidgets as widgets  # noqa: E402

from nearnb.events import delta_text  # noqa: E402
from nearnb.reducer import reduce  # noqa: E402
from nearnb.view import RunInfo  # noqa: E402
from nearnb.view.bundle import final_bundle  # noqa: E402
from nearnb.view.mixes import MIXES, Timed, play, timed_stream  # noqa: E402
from nearnb.view.sink import RecordingSink  # noqa: E402
from nearnb.view.testing import ManualClock, busiest_second, recording_comms  # noqa: E402
from nearnb.view.widget import WidgetRenderer  # noqa: E402

MAX_REFRESHES, MAX_MESSAGES = 20, 100
INFO = RunInfo(agent_name="bench", model="local::smollm2")

WORDS = (
    "virtue", "knowledge", "soul", "justice", "city", "citizen", "reason", "wisdom", "courage",
    "temperance", "the", "of", "and", "to", "a", "is", "that", "we", "must", "ask", "whether",
    "what", "truly", "good", "life", "examined", "not", "worth", "living", "Socrates", "Plato",
    "dialogue", "form", "idea", "cave", "shadow", "light", "truth", "opinion",
)  # fmt: skip


def synthetic_chunks(n: int, seed: int = 7) -> list[str]:
    """``n`` token-like chunks forming Markdown paragraphs of 40-160 words."""
    rng = random.Random(seed)
    chunks: list[str] = []
    left = rng.randint(40, 160)
    while len(chunks) < n:
        chunks.append(" " + rng.choice(WORDS))
        left -= 1
        if left == 0:
            chunks.append(".\n\n")
            left = rng.randint(40, 160)
    return chunks[:n]


@dataclass
class Result:
    name: str
    refreshes: int
    peak_refreshes: int
    messages: int
    peak_messages: int
    bytes: int
    cpu: float
    exact: bool | None = None  # None: not checked (the naive view has no final bundle)
    latency: float = 0.0


def run_nearnb(timed: Timed) -> Result:
    clock, sink = ManualClock(), RecordingSink()
    with recording_comms(clock, keep=False) as wire:
        started = time.process_time()
        view = WidgetRenderer(INFO, sink=sink, clock=clock, autoflush=False)
        played = play(view, clock, timed)
        cpu = time.process_time() - started
    exact = sink.final == [final_bundle(reduce(e for _, e in timed), INFO)]
    return Result(
        "nearnb",
        len(played.refreshes),
        busiest_second(played.refreshes),
        wire.count(),
        busiest_second(wire.times),
        wire.bytes,
        cpu,
        exact,
        played.latency,
    )


def run_naive(timed: Timed) -> Result:
    """Re-render everything into one HTML widget on every event."""
    clock = ManualClock()
    with recording_comms(clock, keep=False) as wire:
        started = time.process_time()
        view = widgets.HTML()
        done: list[str] = []
        current, deltas, times = "", 0, []
        for t, event in timed:
            clock.now = t
            data = event.data if isinstance(event.data, dict) else {}
            if event.event == "thread.message.delta":
                deltas += 1
                current += delta_text(data)
            elif event.event in ("thread.message.completed", "thread.message.incomplete"):
                done.append(current)
                current = ""
            elif event.event == "thread.run.step.delta":
                current += str(data.get("delta", ""))[:40]
            view.value = (
                f"<b>{deltas} deltas</b> {event.event}<pre>"
                f"{html.escape(''.join(done) + current)}</pre>"
            )
            times.append(t)
        view.close()
        cpu = time.process_time() - started
    return Result(
        "naive",
        len(times),
        busiest_second(times),
        wire.count(),
        busiest_second(wire.times),
        wire.bytes,
        cpu,
    )


def _exact(result: Result) -> str:
    return "-" if result.exact is None else ("yes" if result.exact else "NO")


def mixes_part() -> bool:
    print("Worst one-second window, per event mix (targets: <= 20 refreshes, <= 100 messages)")
    print(
        f"{'mix':<20} {'view':>6} | {'events':>6} | {'refr/s':>6} | {'msgs/s':>6} | "
        f"{'messages':>8} | {'bytes':>11} | {'cpu':>6} | exact"
    )
    ok = True
    for name, make in MIXES.items():
        timed = make()
        ours, naive = run_nearnb(timed), run_naive(timed)
        for result, label in ((ours, name), (naive, "")):
            print(
                f"{label:<20} {result.name:>6} | {len(timed):6,d} | {result.peak_refreshes:6d} | "
                f"{result.peak_messages:6d} | {result.messages:8,d} | {result.bytes:11,d} | "
                f"{result.cpu:5.2f}s | {_exact(result)}"
            )
        print(
            f"{'':<20} ratios: {naive.peak_refreshes / ours.peak_refreshes:,.0f}x fewer refreshes "
            f"and {naive.peak_messages / ours.peak_messages:,.0f}x fewer messages in the worst "
            f"second, {naive.bytes / ours.bytes:,.1f}x fewer bytes; slowest boundary shown "
            f"after {ours.latency * 1000:.0f} ms"
        )
        ok &= bool(ours.exact) and ours.peak_refreshes <= MAX_REFRESHES
        ok &= ours.peak_messages <= MAX_MESSAGES
    return ok


def rates_part(deltas: int, rates: list[float]) -> bool:
    chunks = synthetic_chunks(deltas)
    text_chars = len("".join(chunks))
    print(f"\nOne answer of {deltas:,} deltas ({text_chars:,} chars) at several delivery rates")
    print(
        f"{'rate':>8} {'view':>6} | {'refr/s':>6} | {'msgs/s':>6} | {'messages':>8} | "
        f"{'bytes':>13} | {'vs text':>8} | {'cpu':>6}"
    )
    ok = True
    for rate in rates:
        timed = timed_stream(chunks, rate)
        ours, naive = run_nearnb(timed), run_naive(timed)
        for result, label in ((ours, f"{rate:,.0f}/s"), (naive, "")):
            print(
                f"{label:>8} {result.name:>6} | {result.peak_refreshes:6d} | "
                f"{result.peak_messages:6d} | {result.messages:8,d} | {result.bytes:13,d} | "
                f"{result.bytes / text_chars:7.2f}x | {result.cpu:5.2f}s"
            )
        print(
            f"{'':>8} ratios: {naive.bytes / ours.bytes:,.0f}x fewer bytes, "
            f"{naive.messages / ours.messages:,.0f}x fewer messages; nearnb "
            f"{ours.bytes / (deltas / rate) / 1000:,.1f} kB per second of stream"
        )
        ok &= bool(ours.exact) and ours.peak_refreshes <= MAX_REFRESHES
        ok &= ours.peak_messages <= MAX_MESSAGES
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deltas", type=int, default=20_000)
    parser.add_argument(
        "--rates", default="100,1000,10000", help="delivery rates to test, deltas per second"
    )
    args = parser.parse_args(argv)
    ok = mixes_part()
    ok &= rates_part(args.deltas, [float(r) for r in args.rates.split(",")])
    print("\nall bounds met, every final view exact" if ok else "\nA BOUND WAS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
