"""Running the hub: ``serve()`` in the foreground (``nearnb hub``), ``start()`` in the background.

``start()`` is for notebooks: it runs uvicorn on a daemon thread of the
kernel, returns the hub's URL at once, and stops the hub when the
interpreter exits. A second notebook, a browser or ``nearnb attach`` can then
follow any run of this kernel while it streams, because the hub reads the
same ``$NEARNB_HOME`` store the kernel writes.

Stopping a hub ends its open streams without ``done`` (the broker closes
them first, so uvicorn need not wait for them); clients read that as a
dropped connection and resume from the next hub with ``Last-Event-ID``.

Binding: loopback by default. Any other address needs a token of at least
:data:`MIN_TOKEN_LENGTH` characters, given or generated (``--generate-token``,
printed once on stderr), because anyone who can reach the port could
otherwise read every thread and run agents on this machine.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import ipaddress
import logging
import secrets
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from ..store import Store
from .app import AgentsDirs, create_app
from .sse import KEEPALIVE_SECONDS

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081
#: The shortest token accepted on a non-loopback bind: a guessable token there is no lock.
MIN_TOKEN_LENGTH = 16


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
    """Refuse to expose the hub beyond this machine without a token (see :func:`check_token`)."""
    if not is_loopback(host) and not token:
        raise HubError(
            f"refusing to serve on {host} without a token: anyone who can reach this machine "
            "could read your threads and run agents on it. Pass --token SECRET (at least "
            f"{MIN_TOKEN_LENGTH} characters; clients then send 'Authorization: Bearer SECRET'), "
            "or --generate-token to have one made and printed, or keep the default "
            "--host 127.0.0.1."
        )


def check_token(host: str, token: str | None) -> None:
    """Refuse a token too short to protect a non-loopback bind (on loopback any token will do:
    the token there only keeps other local users and web pages out)."""
    if token and not is_loopback(host) and len(token) < MIN_TOKEN_LENGTH:
        raise HubError(
            f"refusing to serve on {host} with a {len(token)}-character token: use at least "
            f"{MIN_TOKEN_LENGTH} characters (e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe())'), or --generate-token."
        )


def generated_token() -> str:
    """A fresh token, announced once on stderr (the only place it is ever shown)."""
    token = secrets.token_urlsafe(32)
    print(
        f"nearnb hub: generated token {token} (clients send 'Authorization: Bearer <token>')",
        file=sys.stderr,
        flush=True,
    )
    return token


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
        agents_dir: AgentsDirs = None,
        token: str | None = None,
        store: Store | None = None,
        keepalive: float = KEEPALIVE_SECONDS,
        tail_interval: float = 0.01,
        log_level: str = "warning",
        max_body: int | None = None,
        generate_token: bool = False,
        bus: Any = None,
    ) -> None:
        if generate_token and not token:
            token = generated_token()
        check_bind(host, token)
        check_token(host, token)
        self.host = host
        self.token = token
        try:
            self.app = create_app(
                store,
                agents_dir=agents_dir,
                token=token,
                keepalive=keepalive,
                tail_interval=tail_interval,
                loopback=is_loopback(host),
                max_body=max_body,
                bus=bus,
            )
        except ValueError as exc:  # a bad --max-body / $NEARNB_MAX_BODY, a bad --bus
            raise HubError(str(exc)) from None
        self.hub = self.app.state.hub
        self.agents_dirs: list[Path] = self.hub.agents_dirs
        self.max_body: int = self.app.state.max_body
        self.socket = _bind(host, port)
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=3,
            lifespan="on",
            # h11, not httptools: httptools answers some malformed requests with a
            # plain-text 400 and drops the keep-alive connection, where the hub
            # promises an OpenAI-shaped 4xx on a connection that survives
            # (tests/test_hub_fuzz.py). The event loop is still uvloop when installed.
            http="h11",
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
    agents_dir: AgentsDirs = None,
    token: str | None = None,
    *,
    max_body: int | None = None,
    generate_token: bool = False,
    bus: str | None = None,
) -> None:
    """Run a hub in the foreground until Ctrl-C (what ``nearnb hub`` does).

    ``bus``: the event bus URL shared with other hubs (``redis://…``; None: ``$NEARNB_BUS``).
    """
    hub = HubServer(
        host,
        port,
        agents_dir=agents_dir,
        token=token,
        log_level="info",
        max_body=max_body,
        generate_token=generate_token,
        bus=bus,
    )
    print(
        f"nearnb hub on {hub.url}/v1 (agents: {', '.join(map(str, hub.agents_dirs))}; "
        f"max body {hub.max_body} bytes; bus {hub.hub.bus.name}); Ctrl-C stops it",
        flush=True,
    )
    # This process is the hub and nothing else: what it imported and built to get here
    # lives as long as it does. Frozen, it is no longer scanned by every full collection;
    # with 1,000 streams open, those took 110-260 ms, a pause every stream felt.
    gc.collect()
    gc.freeze()
    hub.serve()


_started: list[HubServer] = []
_lock = threading.Lock()


def start(
    host: str = DEFAULT_HOST,
    port: int | None = None,
    *,
    agents_dir: AgentsDirs = None,
    token: str | None = None,
    max_body: int | None = None,
    generate_token: bool = False,
) -> str:
    """Start a hub in the background of this process and return its URL.

    ``port=None`` takes 8081, or any free port if 8081 is busy (the URL says
    which); ``port=0`` takes any free port. Calling it again without naming
    another port returns the running hub. The hub stops when the
    interpreter (the kernel) exits, or with :func:`stop`.

    ``agents_dir``: a folder, or several, whose agents runs may name, besides
    ``$NEARNB_HOME/agents`` (logged at start).
    """
    with _lock:
        for hub in _started:
            if hub.running and hub.host == host and port in (None, 0, hub.port):
                return hub.url
        if generate_token and not token:
            token = generated_token()  # once, even if the first port is busy
        options: dict[str, Any] = {"agents_dir": agents_dir, "token": token, "max_body": max_body}
        try:
            hub = HubServer(host, DEFAULT_PORT if port is None else port, **options)
        except HubError:
            if port is not None:
                raise
            hub = HubServer(host, 0, **options)
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
