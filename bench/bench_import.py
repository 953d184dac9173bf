"""``import nearnb`` wall time, measured in fresh interpreters (target < 0.3 s).

Heavy dependencies (openai, llama.cpp, ipywidgets, starlette) load lazily,
so the import a notebook pays for ``%load_ext nearnb`` stays small. The
figure is the median of several cold subprocess imports, next to the bare
interpreter start-up it includes, so the ratio is meaningful on a noisy host.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def timed(code: str, runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    bare = timed("pass")
    ours = timed("import nearnb")
    api = timed("from nearnb import run_agent, Environment")
    print(f"python start-up                  : {bare * 1000:.0f} ms")
    print(f"import nearnb                    : {(ours - bare) * 1000:.0f} ms (target < 300 ms)")
    print(f"from nearnb import run_agent, ...: {(api - bare) * 1000:.0f} ms (no openai/llama yet)")


if __name__ == "__main__":
    main()
