"""Pipeline overhead: nearnb's streaming path against plain openai-SDK iteration.

The same 50,000-chunk stream from a loopback OpenAI-compatible server is read
(a) with the openai SDK directly and (b) through a nearnb run: StreamHandler,
numbered events, the SQLite event log and the reducer. Both run in this one
process, alternating, and the best of each is compared, so the ratio holds on
a noisy shared machine. Target: <= 1.15x.

    python bench/bench_pipeline.py [--chunks 50000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.openai_server import Reply, ScriptedOpenAI  # noqa: E402

AGENT = "env.add_reply(env.completion([{'role': 'user', 'content': 'go'}], stream=True))\n"


def plain_sdk(base_url: str) -> float:
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key="none", max_retries=0)
    start = time.perf_counter()
    parts = []
    for chunk in client.chat.completions.create(
        model="bench", messages=[{"role": "user", "content": "go"}], stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    elapsed = time.perf_counter() - start
    assert parts
    return elapsed


def provider_only() -> float:
    """nearnb's provider stream read bare: the transport share of the pipeline."""
    from nearnb.providers import resolve

    resolved = resolve("bench::bench")
    start = time.perf_counter()
    count = sum(
        1
        for c in resolved.provider.stream([{"role": "user", "content": "go"}], model=resolved.model)
        if c.choices and c.choices[0].delta.content
    )
    elapsed = time.perf_counter() - start
    assert count
    return elapsed


def nearnb_run(agent_dir: Path, chunks: int) -> float:
    from nearnb.runs import run_agent

    start = time.perf_counter()
    result = run_agent(agent_dir, "go", provider="bench", model="bench")
    elapsed = time.perf_counter() - start
    assert result.status == "completed", result.error
    assert result.deltas == chunks, (result.deltas, chunks)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ScriptedOpenAI() as srv:
        os.environ["NEARNB_HOME"] = str(Path(tmp) / "home")
        os.environ["NEARNB_PROVIDER_BENCH_BASE_URL"] = srv.base_url
        os.environ["NEARNB_PROVIDER_BENCH_API_KEY"] = "none"
        agent_dir = Path(tmp) / "bench-agent"
        agent_dir.mkdir()
        (agent_dir / "agent.py").write_text(AGENT)
        (agent_dir / "metadata.json").write_text('{"name": "bench-agent", "version": "1"}')
        pieces = [f"w{i % 10} " for i in range(args.chunks)]
        plain, bare, ours = [], [], []
        for _ in range(args.rounds):
            srv.script(Reply.text(*pieces))
            plain.append(plain_sdk(srv.base_url))
            srv.script(Reply.text(*pieces))
            bare.append(provider_only())
            srv.script(Reply.text(*pieces))
            ours.append(nearnb_run(agent_dir, args.chunks))
    p, b, o = min(plain), min(bare), min(ours)
    print(f"chunks={args.chunks} rounds={args.rounds} (best of each)")
    print(f"plain openai SDK iteration : {p:.3f} s ({args.chunks / p:,.0f} chunks/s)")
    print(f"nearnb provider stream only: {b:.3f} s ({args.chunks / b:,.0f} chunks/s)")
    print(f"nearnb full pipeline       : {o:.3f} s ({args.chunks / o:,.0f} chunks/s)")
    print(f"pipeline vs plain SDK      : {o / p:.2f}x (target <= 1.15x)")
    print(f"pipeline vs its own transport: {o / b:.2f}x (events + log + reducer cost)")


if __name__ == "__main__":
    main()
