"""Who may talk to the hub: the bearer token, and two checks against browser-borne attacks.

The hub executes agents on the machine it runs on, so it is protected even
on 127.0.0.1, where any web page the user visits can send requests to it:

* **Token.** With ``--token``, every request needs ``Authorization: Bearer
  <token>``. A browser ``EventSource`` cannot set headers, so ``?token=`` is
  accepted as well (Jupyter does the same); compared in constant time.
* **Host.** On a loopback bind, the ``Host`` header must name a loopback
  host, so a DNS-rebinding page (``evil.example`` resolving to 127.0.0.1)
  is refused.
* **Origin.** A request that changes state (POST) and carries an ``Origin``
  header must come from the hub's own origin, so a page elsewhere cannot
  start runs on the user's behalf (CSRF). curl and SDKs send no ``Origin``.

Pure ASGI (not ``BaseHTTPMiddleware``), so SSE responses pass through unbuffered.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import ApiError, error_response

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def host_of(value: str) -> str:
    """``"127.0.0.1:8081"`` -> ``"127.0.0.1"``; ``"[::1]:8081"`` -> ``"::1"``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    def __init__(self, app: ASGIApp, *, token: str | None = None, loopback: bool = True) -> None:
        self.app = app
        self.token = token
        self.loopback = loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = self.check(scope)
        if error is not None:
            await error_response(error, [self.token] if self.token else [])(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def check(self, scope: Scope) -> ApiError | None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.loopback and host and host_of(host) not in LOOPBACK_HOSTS:
            return ApiError(
                403, f"forbidden: host {host!r} is not a loopback name", code="bad_host"
            )
        origin = headers.get("origin")
        unsafe = scope["method"] not in ("GET", "HEAD", "OPTIONS")
        if unsafe and origin and urlsplit(origin).netloc.lower() != host.lower():
            return ApiError(
                403, f"forbidden: cross-origin request from {origin}", code="bad_origin"
            )
        if self.token is None:
            return None
        expected = f"Bearer {self.token}"
        given = headers.get("authorization", "")
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        if secrets.compare_digest(given.encode(), expected.encode()) or (
            query and secrets.compare_digest(query.encode(), self.token.encode())
        ):
            return None
        reason = "wrong bearer token" if given or query else "missing bearer token"
        return ApiError(
            401,
            f"unauthorized: {reason} (send Authorization: Bearer <token>)",
            code="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
