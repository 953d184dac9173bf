"""Helpers for crash tests: hub processes that are SIGKILLed, SSE clients that record every
frame they get, the store read straight from its SQLite file, and the crash-consistency check.

Usage::

    from tests.support.chaos import HubProc, StreamRecorder, stored_events, resume_problems

    with HubProc(agents=folder) as hub:           # ``python -m nearnb.hub`` on a free port
        ...
        hub.kill()                                # SIGKILL, reaped (a zombie counts as alive)

Nothing here mocks anything: hubs are real processes serving real uvicorn on 127.0.0.1, frames
are parsed by httpx-sse, and the store is read with ``sqlite3`` from ``$NEARNB_HOME/nearnb.db``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from nearnb.logrows import expand_rows

ROOT = Path(__file__).resolve().parents[2]
#: Read timeout of recording clients: below the hub's 15 s keepalive, so a stream that went
#: silent fails the test instead of hanging it.
READ_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HubProc:
    """``python -m nearnb.hub --port P --agents DIR`` as a child process.

    :meth:`spawn` returns at once (so the next hub can start while a test works with the
    current one); :meth:`wait_ready` waits until it answers HTTP. stderr goes to a file (a pipe
    nobody reads could fill up and block the hub), shown when it fails to start.
    """

    def __init__(self, *, agents: Path, port: int | None = None, env: dict[str, str] | None = None):
        self.agents = agents
        self.port = port or free_port()
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self) -> HubProc:
        env = {**(self.env or os.environ), "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "nearnb.hub", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*command, "--agents", str(self.agents)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        return self

    def wait_ready(self, timeout: float = 30.0) -> HubProc:
        """Until any HTTP answer (a 404 for a made-up thread); fails if the process exits."""
        assert self.proc is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}: {self.stderr()}")
            try:
                httpx.get(f"{self.url}/v1/threads/none", timeout=1.0)
                return self
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"hub did not answer in {timeout} s: {self.stderr()}"
                    ) from None
                time.sleep(0.02)

    def start(self, timeout: float = 30.0) -> HubProc:
        return self.spawn().wait_ready(timeout)

    def kill(self) -> None:
        """SIGKILL and reap, so the pid is gone when this returns (liveness checks see it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stderr(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-3000:]

    def close(self) -> None:
        self.kill()
        self._log.close()

    def __enter__(self) -> HubProc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------ clients


@dataclass(frozen=True)
class Frame:
    """One SSE frame as a client received it: ``data`` parsed (``[DONE]`` kept as text)."""

    id: int
    event: str
    data: Any
    connection: int  # 0: before the crash, 1, 2 ...: after


def parse_data(event: str, text: str) -> Any:
    return text if event == "done" else json.loads(text)


@dataclass
class StreamRecorder:
    """Reads run streams with httpx-sse and records every frame, across connections."""

    frames: list[Frame] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # HTTP status of each connection
    endings: list[str] = field(default_factory=list)  # how each connection ended

    @property
    def last_id(self) -> int:
        return self.frames[-1].id if self.frames else 0

    @property
    def ended(self) -> bool:
        return bool(self.frames) and self.frames[-1].event == "done"

    def read(
        self,
        method: str,
        url: str,
        *,
        json_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        on_frame: Callable[[Frame], None] | None = None,
    ) -> None:
        """One connection, read until the server ends it or it breaks (both are recorded)."""
        connection = len(self.statuses)
        timeout = httpx.Timeout(10.0, read=READ_TIMEOUT)
        try:
            with (
                httpx.Client(timeout=timeout) as client,
                connect_sse(
                    client, method, url, json=json_body, headers=dict(headers or {})
                ) as source,
            ):
                self.statuses.append(source.response.status_code)
                if source.response.status_code != 200:
                    source.response.read()
                    self.endings.append(f"HTTP {source.response.status_code}")
                    return
                for sse in source.iter_sse():
                    if not sse.data and not sse.event:
                        continue
                    frame = Frame(
                        int(sse.id), sse.event, parse_data(sse.event, sse.data), connection
                    )
                    self.frames.append(frame)
                    if on_frame is not None:
                        on_frame(frame)
            self.endings.append("closed by the server")
        except httpx.TransportError as exc:
            if len(self.statuses) == connection:
                self.statuses.append(0)
            self.endings.append(f"{type(exc).__name__}: {exc}")

    def resume(self, stream_url: str, *, attempts: int = 3) -> None:
        """Reconnect with ``Last-Event-ID`` until ``done``, a 204, or ``attempts`` connections."""
        for _ in range(attempts):
            self.read("GET", stream_url, headers={"Last-Event-ID": str(self.last_id)})
            if self.ended or self.statuses[-1] != 200:
                return


# -------------------------------------------------------------------- store


@dataclass(frozen=True)
class Stored:
    seq: int
    event: str
    data: Any


def init_store() -> None:
    """Create ``$NEARNB_HOME``'s store (in WAL mode) before several processes open it at once.

    Processes that all open a fresh store file together race to switch it to WAL, and the
    loser's ``PRAGMA journal_mode=WAL`` fails at once with ``database is locked`` (SQLite does
    not wait on the busy timeout there): a defect of its own, reported apart, that tests of
    other things should not trip over.
    """
    from nearnb.store import Store

    Store().close()


def store_path() -> Path:
    from nearnb.config import home

    return home() / "nearnb.db"


def stored_events(run_id: str, path: Path | None = None) -> list[Stored]:
    """The run's event log as committed in the SQLite file (read-only, its own connection)."""
    db = sqlite3.connect(f"file:{path or store_path()}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT seq, last_seq, event, data, thread_id, at FROM events WHERE run_id = ? "
            "ORDER BY seq",
            (run_id,),
        ).fetchall()
    finally:
        db.close()
    return [Stored(seq, event, json.loads(data)) for seq, event, data, _, _ in expand_rows(rows)]


def stored_run_status(run_id: str, path: Path | None = None) -> str | None:
    db = sqlite3.connect(f"file:{path or store_path()}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    finally:
        db.close()
    return row[0] if row else None


# -------------------------------------------------------------------- check


def _same(frame: Frame, stored: Stored) -> bool:
    if frame.event != stored.event:
        return False
    if frame.event == "done":
        return True  # "[DONE]" on the wire, the JSON string in the log
    return frame.data == stored.data


def _ranges(numbers: Iterable[int]) -> str:
    numbers = sorted(numbers)
    spans: list[str] = []
    for n in numbers:
        if spans and spans[-1].split("-")[-1] == str(n - 1):
            spans[-1] = f"{spans[-1].split('-')[0]}-{n}"
        else:
            spans.append(str(n))
    return ", ".join(spans)


def resume_problems(frames: list[Frame], stored: list[Stored], end: str) -> list[str]:
    """What is wrong with what a client saw across a crash and resume, compared with the log.

    The rules ("nothing lost, nothing twice" across a crash): ids strictly increase over all
    connections; no id comes with two different contents; everything seen is in the log as
    seen; every logged delta is seen exactly once; the stream ends with ``thread.run.<end>``
    then ``done``. Empty when all hold.
    """
    problems: list[str] = []
    log = {s.seq: s for s in stored}
    first: dict[int, Frame] = {}
    for before, after in zip(frames, frames[1:], strict=False):
        if after.id <= before.id:
            problems.append(
                f"ids not increasing: {after.id} ({after.event}, connection {after.connection}) "
                f"after {before.id} ({before.event}, connection {before.connection})"
            )
            break
    for frame in frames:
        seen = first.setdefault(frame.id, frame)
        if seen is not frame and (seen.event, seen.data) != (frame.event, frame.data):
            problems.append(
                f"id {frame.id} came twice with different content: {seen.event} on connection "
                f"{seen.connection}, {frame.event} on connection {frame.connection}"
            )
    unsaved = [f for f in frames if f.id not in log]
    if unsaved:
        names = sorted({f.event for f in unsaved})
        problems.append(
            f"{len(unsaved)} event(s) seen that the store does not have: ids "
            f"{_ranges(f.id for f in unsaved)} ({', '.join(names)})"
        )
    differing = [f for f in frames if f.id in log and not _same(f, log[f.id])]
    if differing:
        pairs = sorted({(f.event, log[f.id].event) for f in differing})
        what = "; ".join(f"client saw {a}, store has {b}" for a, b in pairs)
        problems.append(
            f"{len(differing)} event(s) differ from the store: ids "
            f"{_ranges(f.id for f in differing)} ({what})"
        )
    counts: dict[int, int] = {}
    for frame in frames:
        if frame.id in log and _same(frame, log[frame.id]):
            counts[frame.id] = counts.get(frame.id, 0) + 1
    deltas = [s.seq for s in stored if s.event == "thread.message.delta"]
    missing = [seq for seq in deltas if counts.get(seq, 0) == 0]
    twice = [seq for seq in deltas if counts.get(seq, 0) > 1]
    if missing:
        problems.append(f"{len(missing)} saved delta(s) never seen: ids {_ranges(missing)}")
    if twice:
        problems.append(f"{len(twice)} saved delta(s) seen more than once: ids {_ranges(twice)}")
    tail = [f.event for f in frames[-2:]]
    if tail != [f"thread.run.{end}", "done"]:
        problems.append(f"stream ended with {tail}, not ['thread.run.{end}', 'done']")
    return problems
