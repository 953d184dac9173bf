"""Tokens/s of nearnb's embedded provider against raw llama-cpp-python, same run, same model.

The local provider wraps llama.cpp's stream (lock, reset, ChatCompletionChunk validation); this
measures what that wrapping costs. Both sides use the *same* cached ``Llama`` object (so the
same settings: ``nearnb.providers.local.llama_settings()``), the same prompt, temperature 0 and
the same sampling arguments, so both generate identical tokens; rounds alternate between the
two so background load hits both alike. Target: nearnb >= 0.95x raw.

Both sides compute on the same thread, the pool's model thread: nearnb's stream hands each
token to it, and the raw loop is run there whole. llama.cpp's OpenMP team belongs to the thread
that starts the work, and a second such thread alive in one process slows both to about a
third (:mod:`nearnb.providers.turns`), so raw on the main thread would measure that, not the
wrapping.

Run: ``python bench/bench_local_model.py [--tokens 128] [--rounds 7]`` (~25 s on 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nearnb.providers.local import LocalProvider, _arguments, llama_settings, load  # noqa: E402

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a short poem about the sea."},
]


def run_nearnb(provider: LocalProvider, max_tokens: int) -> tuple[int, float]:
    """(content chunks, seconds) for one streamed answer through nearnb."""
    started = time.perf_counter()
    tokens = 0
    for chunk in provider.stream(MESSAGES, model="", temperature=0, max_tokens=max_tokens):
        if chunk.choices and chunk.choices[0].delta.content:
            tokens += 1
    return tokens, time.perf_counter() - started


def run_raw(llm: Any, kwargs: dict[str, Any]) -> tuple[int, float]:
    """The same answer from llama-cpp-python directly (reset, as nearnb does, for equal work)."""
    started = time.perf_counter()
    tokens = 0
    llm.reset()
    for chunk in llm.create_chat_completion(MESSAGES, stream=True, **kwargs):
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            tokens += 1
    return tokens, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    started = time.perf_counter()
    llm, pool = load()
    load_seconds = time.perf_counter() - started
    provider = LocalProvider()
    # exactly the arguments nearnb passes to create_chat_completion
    kwargs = _arguments({"temperature": 0, "max_tokens": args.tokens}, provider.model_name)
    run_nearnb(provider, 8)  # warm-up: imports openai types, touches the weights
    pool.worker.call(lambda: run_raw(llm, {**kwargs, "max_tokens": 8}))

    ours: list[float] = []
    raw: list[float] = []
    for round_ in range(args.rounds):
        pairs = [("nearnb", lambda: run_nearnb(provider, args.tokens)),
                 ("raw", lambda: pool.worker.call(lambda: run_raw(llm, kwargs)))]  # fmt: skip
        if round_ % 2:
            pairs.reverse()
        counts = {}
        for name, fn in pairs:
            tokens, seconds = fn()
            counts[name] = tokens
            (ours if name == "nearnb" else raw).append(tokens / seconds)
        if counts["nearnb"] != counts["raw"]:
            print(f"warning: token counts differ {counts}", file=sys.stderr)
        print(f"round {round_ + 1}: nearnb {ours[-1]:6.1f} tok/s   raw {raw[-1]:6.1f} tok/s")

    settings = llama_settings()
    # Best of N: background load only ever slows a round down (llama.cpp's threads spin at
    # barriers, so one busy core can cut a round to a quarter), never speeds it up.
    best_ours, best_raw = max(ours), max(raw)
    ratio = best_ours / best_raw
    paired = statistics.median(o / r for o, r in zip(ours, raw, strict=True))
    print(
        f"Embedded model (SmolLM2-135M Q4_1, llama-cpp-python, n_threads={settings['n_threads']}, "
        f"n_ctx={settings['n_ctx']}): nearnb {best_ours:.1f} tok/s vs raw {best_raw:.1f} tok/s "
        f"= {ratio:.2f}x (best of {args.rounds}; median paired ratio {paired:.2f}x; "
        f"{args.tokens} tokens, temperature 0; model load {load_seconds:.2f} s)"
    )
    if ratio < 0.95:
        print("below the 0.95x target", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
