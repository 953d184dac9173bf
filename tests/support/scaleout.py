"""Real processes for the scale-out tests: run producers, SSE readers, the backend's settings.

* :class:`Producer` — a child process executing a slow streaming agent against the scripted
  OpenAI server (``python -c`` running :func:`nearnb.runs.start_run`, or ``nearnb run``),
  as a notebook kernel or the CLI on another machine would;
* :class:`Reader` — an SSE client on a thread, keeping every frame (id, event, data);
* :func:`backend_env` — the environment of one backend: ``sqlite`` (the SQLite store, the
  store-backed bus) or ``postgres+redis`` (a fresh PostgreSQL database and a real
  redis-server), exported so every subprocess of the test uses the same.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from nearnb.bus import BUS_ENV
from nearnb.store import DATABASE_URL_ENV, open_store
from tests.agent_helpers import make_agent
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.support.redis_server import redis_server
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
STREAM_REPLY = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
PRODUCER = """
import sys
from nearnb.runs import start_run
handle = start_run(sys.argv[1], "go")
print(handle.thread_id, handle.run_id, flush=True)
print(handle.wait().status, flush=True)
"""
BACKENDS = ["sqlite", "postgres+redis"]


@contextmanager
def backend_env(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp: Path
) -> Iterator[str]:
    """Set ``$NEARNB_DATABASE_URL`` and ``$NEARNB_BUS`` for ``kind`` (see the module docstring)."""
    if kind == "sqlite":
        monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
        monkeypatch.delenv(BUS_ENV, raising=False)
        yield kind
        return
    if kind != "postgres+redis":
        raise ValueError(f"unknown backend: {kind}")
    monkeypatch.setenv(DATABASE_URL_ENV, request.getfixturevalue("postgres_url"))
    with redis_server(tmp / "redis") as url:
        monkeypatch.setenv(BUS_ENV, url)
        yield kind


def child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


class Producer:
    """A child process running a slow streaming agent (``ticks`` deltas, ``delay`` s apart)."""

    def __init__(
        self,
        srv: ScriptedOpenAI,
        folder: Path,
        *,
        ticks: int = 500,
        delay: float = 0.02,
        cli: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        srv.script(Reply.text(*["tick "] * ticks, delay=delay))
        self.agent = make_agent(folder, STREAM_REPLY)
        self.store = open_store()
        if cli:  # nearnb run, on a thread made here so the test knows its run
            self.thread_id = self.store.create_thread().id
            argv = ["-m", "nearnb.cli", "run", str(self.agent), "go", "--thread", self.thread_id]
        else:
            argv = ["-c", PRODUCER, str(self.agent)]
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            env=child_env(**(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if cli:
            wait_until(lambda: self.store.list_runs(self.thread_id), "the CLI's run is stored")
            self.run_id = self.store.list_runs(self.thread_id)[0].id
        else:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            assert line, f"the producer did not start: {self.proc.stderr.read()}"  # type: ignore[union-attr]
            self.thread_id, self.run_id = line.split()

    def deltas(self) -> int:
        return sum(e.event == "thread.message.delta" for e in self.store.events(self.run_id))

    def wait_for_deltas(self, n: int) -> None:
        wait_until(lambda: self.deltas() >= n, f"the producer streamed {n} deltas")

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        """Its exit code, stdout and stderr once it exits."""
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)  # reaped: a zombie still counts as a live pid

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        self.store.close()

    def path(self) -> str:
        return f"/v1/threads/{self.thread_id}/stream/{self.run_id}"


class Reader:
    """An SSE client on a thread: every frame of one stream, until it ends."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.frames: list[tuple[str, str, str]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            timeout = httpx.Timeout(10.0, read=60.0)
            with (
                httpx.Client(timeout=timeout) as client,
                connect_sse(client, "GET", self.url, headers=self.headers) as source,
            ):
                source.response.raise_for_status()
                for sse in source.iter_sse():
                    self.frames.append((sse.id, sse.event, sse.data))
        except BaseException as exc:  # the test looks at what arrived, and at this
            self.error = exc

    @property
    def names(self) -> list[str]:
        return [name for _, name, _ in self.frames]

    def data(self, name: str) -> Any:
        return json.loads(next(d for _, n, d in reversed(self.frames) if n == name))

    def join(self, timeout: float = 30) -> Reader:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the stream {self.url} did not end"
        return self

    @property
    def ids(self) -> list[int]:
        return [int(i) for i, _, _ in self.frames]


def ended_alike(*readers: Reader) -> list[tuple[str, str, str]]:
    """The frames every reader got, asserted the same, numbered 1..n without a gap."""
    first = readers[0].frames
    for reader in readers:
        assert reader.error is None, reader.error
        assert reader.frames == first
    assert [int(i) for i, _, _ in first] == list(range(1, len(first) + 1))
    return first
