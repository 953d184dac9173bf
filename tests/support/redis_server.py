"""A real ``redis-server`` for tests: a free loopback port, a temporary directory, no persistence.

Usage::

    from tests.support.redis_server import redis_server

    with redis_server(tmp_path) as url:      # redis://127.0.0.1:PORT/0, stopped afterwards
        monkeypatch.setenv("NEARNB_BUS", url)

Debian's ``/usr/bin/redis-server`` (installed by ``scripts/setup.sh``). A
missing server skips the calling test with the reason, except under
``CI=true``, where it fails it: CI must run both backends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.support.hub import free_port

REDIS_SERVER = os.environ.get("NEARNB_TEST_REDIS_SERVER", "/usr/bin/redis-server")


def require_redis() -> str:
    """The redis-server binary; skip (or, under ``CI=true``, fail) when it is missing."""
    found = shutil.which(REDIS_SERVER) or shutil.which("redis-server")
    if found:
        return found
    problem = f"redis-server not found ({REDIS_SERVER}); run scripts/setup.sh"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"CI=true: {problem}")
    pytest.skip(problem)


@contextmanager
def redis_server(directory: Path, timeout: float = 15.0) -> Iterator[str]:
    """A ``redis-server`` on 127.0.0.1, its files in ``directory``; yields its URL."""
    binary = require_redis()
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
        "--logfile",
        str(directory / "redis.log"),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log = (directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited ({proc.returncode}): {log}")
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer on port {port}") from None
                time.sleep(0.02)
        yield url
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()
