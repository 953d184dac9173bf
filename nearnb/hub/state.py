"""What a hub's routes share: the store, the broker, the agents folders, live hub-runs.

Its own module so the route modules (:mod:`.routes`, :mod:`.vector_routes`)
and the app that mounts them all import it, and not each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio.to_thread

from ..bus import EventBus, open_bus
from ..config import home
from ..events import Run
from ..store import ENDED_STATUSES, Store
from .broker import Broker
from .errors import ApiError, secrets_to_hide
from .sse import KEEPALIVE_SECONDS

AgentsDirs = str | Path | Iterable[str | Path] | None


def agents_dirs(given: AgentsDirs = None) -> list[Path]:
    """The folders a hub serves agents from: ``$NEARNB_HOME/agents``, then ``given``.

    Never the working directory: a hub started from ``/`` must not run any
    folder on the machine that an ``assistant_id`` names.
    """
    if given is None:
        extra: list[str | Path] = []
    elif isinstance(given, str | Path):
        extra = [given]
    else:
        extra = list(given)
    folders: list[Path] = []
    for folder in [home() / "agents", *extra]:
        path = Path(folder).expanduser().resolve()
        if path not in folders:
            folders.append(path)
    return folders


class Hub:
    """What the routes share: the store, the broker, the agents folders, live hub-runs."""

    def __init__(
        self,
        store: Store,
        *,
        agents_dirs: list[Path],
        token: str | None = None,
        keepalive: float = KEEPALIVE_SECONDS,
        tail_interval: float = 0.01,
        bus: EventBus | None = None,
    ) -> None:
        self.store = store
        self.bus = bus if bus is not None else open_bus(None, store)
        self.broker = Broker(store, bus=self.bus, tail_interval=tail_interval)
        self.agents_dirs = agents_dirs
        self.token = token
        self.keepalive = keepalive
        self.handles: dict[str, Any] = {}  # run_id -> RunHandle, for runs started here

    @property
    def hidden(self) -> list[str]:
        return secrets_to_hide([self.token])

    # ---------------------------------------------------------------- lookups

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking store call off the event loop."""
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    async def thread(self, thread_id: str) -> Any:
        thread = await self.call(self.store.get_thread, thread_id)
        if thread is None:
            raise ApiError(404, f"thread not found: {thread_id}", param="thread_id")
        return thread

    async def run(self, thread_id: str, run_id: str) -> Run:
        """The run, ended as ``expired`` first if the process producing it died.

        Liveness must not depend on someone having the stream open: a client
        that only polls ``GET .../runs/{id}`` would otherwise see
        ``in_progress`` forever after a ``kill -9`` of the kernel running it.
        """
        run = await self.call(self._live_run, run_id)
        if run is None or run.thread_id != thread_id:
            raise ApiError(404, f"run not found: {run_id} in thread {thread_id}", param="run_id")
        return run

    def _live_run(self, run_id: str) -> Run | None:
        from ..liveness import expire_if_orphaned

        run = self.store.get_run(run_id)
        ending = run is not None and run.status not in ENDED_STATUSES
        return (
            self.store.get_run(run_id)
            if ending and expire_if_orphaned(self.store, run_id, self.bus)
            else run
        )

    def live_runs(self, thread_id: str) -> list[Run]:
        """The thread's runs, orphaned ones ended first (see :meth:`run`); blocking."""
        from ..liveness import expire_if_orphaned

        runs = self.store.list_runs(thread_id)
        expired = [
            r.id
            for r in runs
            if r.status not in ENDED_STATUSES and expire_if_orphaned(self.store, r.id, self.bus)
        ]
        return self.store.list_runs(thread_id) if expired else runs

    def check_provider(self, provider: str | None) -> None:
        """Refuse a ``replay:FILE`` provider whose file lies outside what the hub serves.

        A run request's ``replay:PATH`` is read by this process; anywhere on the
        machine would let a client probe which files exist. Recordings are
        served from the agents folders and ``$NEARNB_HOME`` only; blocking.
        """
        from ..providers.replay import PREFIX

        text = (provider or "").strip()
        if text[: len(PREFIX)].lower() != PREFIX:
            return
        source = text[len(PREFIX) :].strip()
        try:
            target = Path(source).expanduser().resolve()
        except (OSError, RuntimeError):
            target = None
        roots = [*self.agents_dirs, home().resolve()]
        if target is None or not any(target.is_relative_to(root) for root in roots):
            raise ApiError(
                400,
                "provider: replay files are read only from the agents folders or $NEARNB_HOME",
                param="provider",
            )

    def agent_path(self, assistant_id: str) -> Path:
        """The folder an ``assistant_id`` names, never outside the agents folders; blocking.

        Accepts a folder name (``streaming-example``), a path under an agents
        folder, or the identifier runs report (``local/<name>/<version>``).
        A name the filesystem refuses (a segment over 255 bytes, a symlink
        loop) is simply not found.
        """
        names = [assistant_id]
        parts = assistant_id.split("/")
        if len(parts) == 3 and parts[0] == "local":
            names.append(parts[1])
        for name in names:
            for base in self.agents_dirs:
                try:
                    folder = (base / name).resolve()
                    if folder.is_relative_to(base) and (folder / "agent.py").is_file():
                        return folder
                except (OSError, RuntimeError):  # ENAMETOOLONG; 3.11 raises RuntimeError on loops
                    continue
        where = ", ".join(str(d) for d in self.agents_dirs)
        raise ApiError(
            404, f"assistant not found: {assistant_id} under {where}", param="assistant_id"
        )
