"""Real hubs for tests: uvicorn on 127.0.0.1 (in a thread or a separate process), a producer
that writes a run into the store the way a notebook kernel does, and a TCP proxy that can cut
connections.

Usage::

    from tests.support.hub import FakeRun, HubProcess, CuttingProxy, running_hub

    @pytest.fixture
    def hub():
        with running_hub() as server:         # a HubServer on a free port, stopped afterwards
            yield server

    def test_x(hub):
        run = FakeRun(deltas=50, interval=0.01).start()   # writes events from a thread
        url = f"{hub.url}/v1/threads/{run.thread_id}/stream/{run.run_id}"

Nothing here mocks HTTP: clients talk to real sockets.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from nearnb.events import Message, Run, message_delta, new_id, now, text_content
from nearnb.hub.server import HubServer
from nearnb.persist import StoreSink
from nearnb.runlog import RunLog
from nearnb.sinks import QueuedSink
from nearnb.store import Store

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running_hub(**kwargs: Any) -> Iterator[HubServer]:
    """A hub (in this process, on a uvicorn thread) on a free loopback port.

    Test modules wrap it in their own ``hub`` fixture (a fixture imported from
    here would shadow the argument name, which ruff rightly flags).
    """
    server = HubServer("127.0.0.1", 0, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Any ASGI app on uvicorn on a free loopback port (e.g. a deliberately broken hub);
    yields its base URL."""
    import uvicorn

    config = uvicorn.Config(app, log_level="critical", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ producer


class FakeRun:
    """A run written into the store from a thread, as a kernel in another process would.

    Events: run created/queued/in_progress, message created/in_progress, ``deltas`` deltas
    (``interval`` s apart, each ``"w<i> "``), message completed (the full text), run
    completed, done — through a :class:`~nearnb.runlog.RunLog` and the store sink, the
    write path of ``runs.py`` (the rows are the projection of those events).
    """

    def __init__(
        self,
        deltas: int = 20,
        *,
        interval: float = 0.0,
        store: Store | None = None,
        thread_id: str | None = None,
        start_gate: threading.Event | None = None,
    ) -> None:
        self.store = store or Store()
        self.thread_id = thread_id or self.store.create_thread().id
        self.run_id = new_id("run")
        self.message_id = new_id("msg")
        self.deltas = deltas
        self.interval = interval
        self.gate = start_gate
        self.pieces = [f"w{i} " for i in range(deltas)]
        self.text = "".join(self.pieces)
        self.emitted = 0
        self.run = Run(
            id=self.run_id,
            created_at=now(),
            thread_id=self.thread_id,
            assistant_id="local/fake/0.1",
            status="queued",
            model="fake-model",
        )
        self._log = RunLog(self.run_id, self.thread_id)
        self._sink = self._log.attach(QueuedSink(StoreSink(self.store), name=f"fake-{self.run_id}"))
        # Like start_run: the run exists (its first event is stored) before it executes.
        self._emit("thread.run.created", self.run.model_dump(mode="json"))
        assert self._sink.wait_for(1, 30)
        self.thread: threading.Thread | None = None
        self.finished = threading.Event()

    @property
    def total(self) -> int:
        """How many events the run emits, ``done`` included."""
        return self.deltas + 8

    def _emit(self, name: str, data: object) -> None:
        event = self._log.emit(name, data)
        assert event is not None
        self.emitted = event.seq

    def _run(self) -> None:
        run = self.run.model_dump(mode="json")
        self._emit("thread.run.queued", run)
        self._emit("thread.run.in_progress", {**run, "status": "in_progress"})
        msg = Message(
            id=self.message_id,
            created_at=now(),
            thread_id=self.thread_id,
            role="assistant",
            status="in_progress",
            run_id=self.run_id,
            assistant_id=self.run.assistant_id,
        )
        self._emit("thread.message.created", msg.model_dump(mode="json"))
        self._emit("thread.message.in_progress", msg.model_dump(mode="json"))
        if self.gate is not None:
            self.gate.wait(30)
        for piece in self.pieces:
            self._emit("thread.message.delta", message_delta(self.message_id, piece))
            if self.interval:
                time.sleep(self.interval)
        done_msg = Message.model_validate(
            {
                **msg.model_dump(),
                "status": "completed",
                "content": text_content(self.text),
                "completed_at": now(),
            }
        )
        self._emit("thread.message.completed", done_msg.model_dump(mode="json"))
        self._emit("thread.run.completed", {**run, "status": "completed", "completed_at": now()})
        self._emit("done", "[DONE]")
        self._log.close()
        assert self._sink.close(30), "the store sink did not drain"
        self.finished.set()

    def start(self) -> FakeRun:
        self.thread = threading.Thread(target=self._run, name=f"fake-{self.run_id}", daemon=True)
        self.thread.start()
        return self

    def complete(self) -> FakeRun:
        """Write the whole run now (a finished run to replay)."""
        self._run()
        return self

    def wait(self, timeout: float = 30) -> None:
        assert self.finished.wait(timeout), "fake run did not finish"

    def stream_path(self) -> str:
        return f"/v1/threads/{self.thread_id}/stream/{self.run_id}"


# ------------------------------------------------------------- hub process


class HubProcess:
    """``python -m nearnb.hub`` in a child process: a hub that can be killed and restarted on
    the same port, reading the same ``$NEARNB_HOME`` store as the test."""

    def __init__(self, port: int | None = None, *args: str) -> None:
        self.port = port or free_port()
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> HubProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nearnb.hub", "--port", str(self.port), *self.args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited: {self.proc.stderr.read().decode()}")
            try:
                httpx.get(f"{self.url}/v1/threads/none", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("hub process did not start")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> HubProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(kill=True)


# ------------------------------------------------------------------- proxy


class CuttingProxy:
    """A loopback TCP proxy whose open connections can be cut, to drop a stream mid-run.

    ``requests`` keeps the head of every request it forwarded (to assert on ``Last-Event-ID``).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.requests: list[str] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, log: bool) -> None:
            try:
                while data := await src.read(65536):
                    if log:
                        self.requests.append(data.decode("latin-1").split("\r\n\r\n")[0])
                        log = False
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        """Abort every open connection (the client sees a broken chunked body)."""

        def abort() -> None:
            for writer in list(self._writers):
                writer.transport.abort()

        self._loop.call_soon_threadsafe(abort)

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


# ------------------------------------------------------- write/keep-alive probes

STORE_TABLES = ("threads", "messages", "runs", "events")


def store_counts(path: Path | None = None) -> dict[str, int]:
    """Rows per table of the store file (default ``$NEARNB_HOME/nearnb.db``), read with sqlite3
    directly, to prove that a refused request wrote nothing."""
    import sqlite3

    from nearnb.config import home

    db = sqlite3.connect(path or home() / "nearnb.db")
    try:
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in STORE_TABLES}
    finally:
        db.close()


def client_port(response: httpx.Response) -> int:
    """The local port of the connection ``response`` came on: the same port on the next
    request means the keep-alive connection survived."""
    stream = response.extensions["network_stream"]
    try:
        return stream.get_extra_info("client_addr")[1]
    except OSError:  # the socket is closed already: the server dropped the connection
        return -1
