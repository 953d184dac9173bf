"""View cost of a 20,000-delta stream: nearnb's widget view vs a naive one.

    python bench/bench_view.py [--deltas 20000] [--rates 100,1000,10000]

The same synthetic answer (Markdown paragraphs, ~4 chars a delta like a
tokenizer's) is fed as events with an injected clock at several delivery
rates, to

* ``nearnb``: the real :class:`~nearnb.view.widget.WidgetRenderer` (throttled,
  frozen Markdown blocks, live tail only), and
* ``naive``: one ``HTML`` widget whose value (text so far + counter) is set
  on every delta - what a first implementation does.

Widgets get recording comms (:mod:`nearnb.view.testing`), so every message
that would reach the frontend is counted; bytes are the JSON of each
message's ``data`` (the Jupyter envelope adds ~0.5 kB per message on top,
which is why message counts are printed too). Updates/s is view refreshes
per second of stream time, and the busiest 1-second window.

Targets (issue 3): <= 20 updates/s; bytes within 3x of the final text size.
The first holds at every rate. Bytes grow O(n) (doubling the stream doubles
them; naive grows 4x), but a refresh costs about the same whatever the rate
(counter ~0.15 kB, live tail <= a paragraph), so a slow stream pays ~10 kB
per second of stream on top of its text: the 3x ratio holds for fast streams
(>= ~2,000 deltas/s), not for the embedded model's ~100/s, where the cost
is ~10 kB/s - O(duration), never O(n^2). The exit status checks the rate.
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

from nearnb.view import RunInfo  # noqa: E402
from nearnb.view.sink import RecordingSink  # noqa: E402
from nearnb.view.testing import (  # noqa: E402
    EventFactory,
    ManualClock,
    busiest_second,
    feed_paced,
    recording_comms,
)
from nearnb.view.widget import WidgetRenderer  # noqa: E402

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
    text_chars: int
    duration: float
    updates: int
    peak_updates: int
    messages: int
    bytes: int
    cpu: float

    def row(self) -> str:
        rate = self.updates / self.duration if self.duration else float(self.updates)
        return (
            f"{self.name:>7} | {rate:8.1f} | {self.peak_updates:8d} | {self.messages:9,d} | "
            f"{self.bytes:14,d} | {self.bytes / self.text_chars:8.2f}x | {self.cpu:6.2f} s"
        )


def run_nearnb(chunks: list[str], rate: float) -> Result:
    clock = ManualClock()
    with recording_comms(clock) as log:
        factory = EventFactory(clock=clock)
        view = WidgetRenderer(
            RunInfo(agent_name="bench", model="local::smollm2"),
            sink=RecordingSink(),
            clock=clock,
            autoflush=False,
        )
        log.clear()  # count only the stream, not building the empty view
        started = time.process_time()
        events = [*factory.start(), *factory.streamed_message(chunks), *factory.end()]
        refreshes = feed_paced(view, clock, events, rate=rate)
        view.finish()
        cpu = time.process_time() - started
    duration = len(chunks) / rate
    return Result(
        "nearnb",
        len("".join(chunks)),
        duration,
        len(refreshes),
        busiest_second(refreshes),
        log.count(),
        log.bytes,
        cpu,
    )


def run_naive(chunks: list[str], rate: float, limit: int | None = None) -> Result:
    """Per-delta full-value updates. ``limit`` extrapolates the O(n^2) bytes
    from the first ``limit`` deltas when the full run would take too long."""
    with recording_comms() as log:
        view = widgets.HTML()
        log.clear()
        text = ""
        started = time.process_time()
        for i, chunk in enumerate(chunks[:limit] if limit else chunks, 1):
            text += chunk
            view.value = f"<b>{i} deltas</b><pre>{html.escape(text)}</pre>"
        cpu = time.process_time() - started
    full = "".join(chunks)
    sent = log.bytes
    if limit and limit < len(chunks):  # bytes grow with the square of the position
        sent = int(sent * (len(chunks) / limit) ** 2)
    peak = min(len(chunks), round(rate))  # one update per delta
    return Result("naive", len(full), len(chunks) / rate, len(chunks), peak, len(chunks), sent, cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deltas", type=int, default=20_000)
    parser.add_argument(
        "--rates", default="100,1000,2000,10000", help="delivery rates to test, deltas per second"
    )
    args = parser.parse_args(argv)
    chunks = synthetic_chunks(args.deltas)
    text_chars = len("".join(chunks))
    print(f"{args.deltas:,} deltas, final text {text_chars:,} chars")
    header = "   view | upd/s    | peak/1s  | messages  |     bytes sent | vs text  | cpu"
    ok = True
    for rate in (float(r) for r in args.rates.split(",")):
        print(f"\n-- {rate:,.0f} deltas/s ({args.deltas / rate:,.0f} s of stream)")
        print(header)
        ours = run_nearnb(chunks, rate)
        naive = run_naive(chunks, rate, limit=4000)
        print(ours.row())
        print(naive.row() + "  (bytes extrapolated from 4,000 deltas)")
        rate_ok = ours.peak_updates <= 20
        bytes_ok = ours.bytes <= 3 * ours.text_chars
        print(
            f"  nearnb: {ours.bytes / ours.duration / 1000:,.1f} kB/s of stream; "
            f"{naive.bytes / ours.bytes:,.0f}x fewer bytes and "
            f"{naive.messages / ours.messages:,.0f}x fewer messages than naive; "
            f"targets: <=20 updates/s {'met' if rate_ok else 'MISSED'}, "
            f"bytes <=3x text {'met' if bytes_ok else 'missed'}"
        )
        ok &= ours.peak_updates <= 20
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
