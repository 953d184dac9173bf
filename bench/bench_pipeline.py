"""Pipeline overhead: a whole nearnb run against nearnb's own bare transport, like with like.

The same N-chunk stream from a loopback OpenAI-compatible server (the scripted test server, on
uvicorn in this process) is read three ways:

* **transport**: nearnb's provider ``stream()`` (``nearnb.providers.resolve``) iterated bare:
  the same HTTP request, SSE parsing and chunk validation a run uses, nothing else;
* **pipeline**: ``nearnb.runs.start_run`` of an agent that streams the reply with
  ``env.add_reply(env.completion(..., stream=True))``: StreamHandler, numbered events, the
  SQLite event log and rows, the reducer, and one live view (the display-handle renderer
  from ``nearnb.view.open_view``, writing into a ``RecordingSink`` instead of a kernel);
  timed until ``wait()`` returns and the view has finished;
* **openai SDK**: ``client.chat.completions.create(stream=True)`` iterated, for reference.

Each round runs all three back to back, in a rotating order (so drift and warm-up do not
favour one), and the ratio is taken within the round; the median of the per-round ratios is
reported. A second line gives the same ratio in process CPU time (all threads, over the same
span), which moves less than wall time when other work shares the machine. One untimed
warm-up round first (imports, connections). After every pipeline run
the bench checks that nothing was skipped: every delta counted, the store holds the whole
event log, the view's final output holds the whole text.

Target: pipeline / transport <= 1.5x.

    python bench/bench_pipeline.py [--chunks 50000] [--rounds 5]
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

from tests.support.openai_server import Reply, ScriptedOpenAI  # noqa: E402

PROVIDER = "bench"
MESSAGES = [{"role": "user", "content": "go"}]
AGENT = "env.add_reply(env.completion([{'role': 'user', 'content': 'go'}], stream=True))\n"
TARGET = 1.5


def transport(chunks: int) -> tuple[float, float]:
    """nearnb's provider stream, read bare: HTTP + SSE + chunk validation."""
    from nearnb.providers import resolve

    cpu, start = time.process_time(), time.perf_counter()
    resolved = resolve(f"{PROVIDER}::bench")
    count = 0
    for chunk in resolved.provider.stream(list(MESSAGES), model=resolved.model):
        if chunk.choices and chunk.choices[0].delta.content:
            count += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert count == chunks, (count, chunks)
    return elapsed, cpu


def pipeline(agent_dir: Path, chunks: int, text: str) -> tuple[float, float]:
    """A whole run through start_run, folded and rendered by one live view."""
    from nearnb.runs import start_run
    from nearnb.store import Store
    from nearnb.view import open_view
    from nearnb.view.sink import RecordingSink

    sink = RecordingSink()
    cpu, start = time.process_time(), time.perf_counter()
    view = open_view("handle", agent_name=agent_dir.name, sink=sink)
    handle = start_run(agent_dir, "go", provider=PROVIDER, model="bench", on_event=view)
    result = handle.wait()
    view.finish(result)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    # untimed: the run really did all of it
    assert result.status == "completed", result.error
    assert result.deltas == chunks, (result.deltas, chunks)
    assert [m.text for m in result.messages] == [text]
    stored = Store().events(result.run_id)
    assert [e.seq for e in stored] == [e.seq for e in result.events], "event log incomplete"
    (final, _), *_ = sink.final
    assert text.strip() in final["text/markdown"], "the view did not show the whole text"
    return elapsed, cpu


def openai_sdk(base_url: str, chunks: int) -> tuple[float, float]:
    """The openai SDK's own streaming iteration (reference line)."""
    from openai import OpenAI

    cpu, start = time.process_time(), time.perf_counter()
    client = OpenAI(base_url=base_url, api_key="none", max_retries=0)
    count = 0
    for chunk in client.chat.completions.create(model="bench", messages=MESSAGES, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            count += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert count == chunks, (count, chunks)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ScriptedOpenAI() as srv:
        os.environ["NEARNB_HOME"] = str(Path(tmp) / "home")
        os.environ[f"NEARNB_PROVIDER_{PROVIDER.upper()}_BASE_URL"] = srv.base_url
        os.environ[f"NEARNB_PROVIDER_{PROVIDER.upper()}_API_KEY"] = "none"
        os.environ["NEARNB_FALLBACK"] = "error"  # never measure the embedded model by mistake
        agent_dir = Path(tmp) / "bench-agent"
        agent_dir.mkdir()
        (agent_dir / "agent.py").write_text(AGENT)
        (agent_dir / "metadata.json").write_text('{"name": "bench-agent", "version": "1"}')
        pieces = [f"w{i % 10} " for i in range(args.chunks)]
        text = "".join(pieces)

        def measures(chunks: int, text: str) -> dict[str, Callable[[], tuple[float, float]]]:
            return {
                "transport": lambda: transport(chunks),
                "pipeline": lambda: pipeline(agent_dir, chunks, text),
                "sdk": lambda: openai_sdk(srv.base_url, chunks),
            }

        warm = [f"w{i % 10} " for i in range(200)]
        for measure in measures(len(warm), "".join(warm)).values():  # imports, connections
            srv.script(Reply.text(*warm))
            measure()

        order = list(measures(args.chunks, text).items())
        times: dict[str, list[float]] = {name: [] for name, _ in order}
        cpus: dict[str, list[float]] = {name: [] for name, _ in order}
        for round_no in range(args.rounds):
            rotation = order[round_no % len(order) :] + order[: round_no % len(order)]
            for name, measure in rotation:
                srv.script(Reply.text(*pieces))
                elapsed, cpu = measure()
                times[name].append(elapsed)
                cpus[name].append(cpu)
            print(
                f"round {round_no + 1}: "
                + ", ".join(f"{name} {times[name][-1]:.3f} s" for name, _ in order),
                flush=True,
            )

    bare, full, sdk = times["transport"], times["pipeline"], times["sdk"]
    vs_bare = statistics.median(f / b for f, b in zip(full, bare, strict=True))
    vs_sdk = statistics.median(f / s for f, s in zip(full, sdk, strict=True))
    n = args.chunks
    print(f"chunks={n} rounds={args.rounds} (medians; ratios are medians of per-round ratios)")
    for label, values in (
        ("nearnb transport (provider stream)", bare),
        ("nearnb full pipeline (run + view)", full),
        ("openai SDK iteration", sdk),
    ):
        median = statistics.median(values)
        print(f"{label:<35}: {median:.3f} s ({n / median:,.0f} chunks/s)")
    verdict = "met" if vs_bare <= TARGET else "NOT met"
    print(f"pipeline vs its own transport : {vs_bare:.2f}x (target <= {TARGET}x: {verdict})")
    print(f"pipeline vs openai SDK        : {vs_sdk:.2f}x")
    # CPU of the whole process (every thread, the in-process server's too) over the
    # same span: steadier than wall time when other work shares the machine.
    cpu_ratio = statistics.median(
        f / b for f, b in zip(cpus["pipeline"], cpus["transport"], strict=True)
    )
    print(f"pipeline vs transport, CPU    : {cpu_ratio:.2f}x (process CPU, all threads)")


if __name__ == "__main__":
    main()
