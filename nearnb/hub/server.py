"""Running the hub: ``serve()`` in the foreground (``nearnb hub``), ``start()`` in the background.

``start()`` is for notebooks: it runs uvicorn on a daemon thread of the
kernel, returns the hub's URL at once, and stops the hub when the
interpreter exits. A second notebook, a browser or ``nearnb attach`` can then
follow any run of this kernel while it streams, because the hub reads the
same ``$NEARNB_HOME`` store the kernel writes.

Stopping a hub ends its open streams without ``done`` (the broker closes
them first, so uvicorn need not wait for them); clients read that as a
dropped connection and resume from the next hub with ``Last-Event-ID``.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from ..store import Store
from .app import create_app
from .sse import KEEPALIVE_SECONDS

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081


class HubError(ValueError):
    """The hub cannot start as asked; the message says why and what to do."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose the hub beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise HubError(
            f"refusing to serve on {host} without a token: anyone who can reach this machine "
            "could read your threads and run agents on it. Pass --token SECRET (clients then "
            "send 'Authorization: Bearer SECRET'), or keep the default --host 127.0.0.1."
        )


class _Server(uvicorn.Server):
    """uvicorn, but open SSE streams are ended before it waits for connections to close."""

    def __init__(self, config: uvicorn.Config, on_shutdown: Any) -> None:
        super().__init__(config)
        self._on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_shutdown()
        await super().shutdown(sockets)


class HubServer:
    """One hub: an app on a bound socket, served by uvicorn in this process."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        agents_dir: str | Path | None = None,
        token: str | None = None,
        store: Store | None = None,
        keepalive: float = KEEPALIVE_SECONDS,
        tail_interval: float = 0.01,
        log_level: str = "warning",
    ) -> None:
        check_bind(host, token)
        self.host = host
        self.token = token
        self.app = create_app(
            store,
            agents_dir=agents_dir,
            token=token,
            keepalive=keepalive,
            tail_interval=tail_interval,
            loopback=is_loopback(host),
        )
        self.hub = self.app.state.hub
        self.socket = _bind(host, port)
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=3,
            lifespan="on",
        )
        self.server = _Server(config, self.hub.broker.close)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL clients use (``.../v1`` is appended by them)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C / SIGTERM)."""
        self.server.run(sockets=[self.socket])

    def start(self, timeout: float = 10.0) -> str:
        """Serve on a daemon thread; returns the URL once the hub accepts connections."""
        self._thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self.socket]},
            name="nearnb-hub",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise HubError(f"the hub on {self.url} did not start (see the log above)")
            time.sleep(0.01)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (streams end without ``done``; clients resume elsewhere)."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self.socket.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.server.started


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise HubError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


# ------------------------------------------------------------ entry points


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    agents_dir: str | Path | None = None,
    token: str | None = None,
) -> None:
    """Run a hub in the foreground until Ctrl-C (what ``nearnb hub`` does)."""
    hub = HubServer(host, port, agents_dir=agents_dir, token=token, log_level="info")
    print(
        f"nearnb hub on {hub.url}/v1 (agents: {agents_dir or 'name lookup'}); Ctrl-C stops it",
        flush=True,
    )
    hub.serve()


_started: list[HubServer] = []
_lock = threading.Lock()


def start(
    host: str = DEFAULT_HOST,
    port: int | None = None,
    *,
    agents_dir: str | Path | None = None,
    token: str | None = None,
) -> str:
    """Start a hub in the background of this process and return its URL.

    ``port=None`` takes 8081, or any free port if 8081 is busy (the URL says
    which); ``port=0`` takes any free port. Calling it again without naming
    another port returns the running hub. The hub stops when the
    interpreter (the kernel) exits, or with :func:`stop`.
    """
    with _lock:
        for hub in _started:
            if hub.running and hub.host == host and port in (None, 0, hub.port):
                return hub.url
        try:
            hub = HubServer(
                host, DEFAULT_PORT if port is None else port, agents_dir=agents_dir, token=token
            )
        except HubError:
            if port is not None:
                raise
            hub = HubServer(host, 0, agents_dir=agents_dir, token=token)
        url = hub.start()
        _started.append(hub)
        return url


def stop(url: str | None = None) -> None:
    """Stop the hubs :func:`start` started (or only the one at ``url``)."""
    with _lock:
        for hub in list(_started):
            if url is None or hub.url == url.rstrip("/").removesuffix("/v1"):
                hub.stop()
                _started.remove(hub)


atexit.register(stop)
