"""Who may talk to the hub and how much they may send: token, browser-attack checks, body size.

The hub executes agents on the machine it runs on, so it is protected even
on 127.0.0.1, where any web page the user visits can send requests to it:

* **Token.** With ``--token``, every request needs ``Authorization: Bearer
  <token>`` (the scheme in any case, as RFC 7235 says). A browser
  ``EventSource`` cannot set headers, so ``?token=`` is accepted as well
  (Jupyter does the same); compared in constant time.
* **Host.** On a loopback bind, the ``Host`` header must name a loopback
  host, so a DNS-rebinding page (``evil.example`` resolving to 127.0.0.1)
  is refused.
* **Origin.** A request that changes state (POST) and carries an ``Origin``
  header must come from the hub's own origin, so a page elsewhere cannot
  start runs on the user's behalf (CSRF). curl and SDKs send no ``Origin``.
* **Body size** (:class:`BodyLimit`). A body above ``max_body`` bytes is
  answered 413 while it is being read, declared (``Content-Length``) or
  chunked, so an oversized message is never held in memory nor stored.

Pure ASGI (not ``BaseHTTPMiddleware``), so SSE responses pass through unbuffered.
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import parse_qs, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_response

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

#: Request bodies above this many bytes are refused with 413 (``--max-body``, ``$NEARNB_MAX_BODY``).
DEFAULT_MAX_BODY = 4 * 1024 * 1024
MAX_BODY_ENV = "NEARNB_MAX_BODY"


def host_of(value: str) -> str:
    """``"127.0.0.1:8081"`` -> ``"127.0.0.1"``; ``"[::1]:8081"`` -> ``"::1"``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def max_body_from_env(default: int = DEFAULT_MAX_BODY) -> int:
    """``$NEARNB_MAX_BODY`` in bytes, else ``default``; ValueError naming the variable if bad."""
    raw = os.environ.get(MAX_BODY_ENV, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"${MAX_BODY_ENV} must be a positive number of bytes, not {raw!r}")
    return int(raw)


def bearer_matches(header: str, token: str) -> bool:
    """Whether an ``Authorization`` value carries ``token``: ``Bearer`` in any case, and the
    credential compared in constant time (a length mismatch still costs a full compare)."""
    scheme, _, credential = header.strip().partition(" ")
    return secrets.compare_digest(credential.strip().encode(), token.encode()) and (
        scheme.lower() == "bearer"
    )


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
        given = headers.get("authorization", "")
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        if bearer_matches(given, self.token) or (
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


class BodyTooLarge(ApiError):
    """413 in OpenAI's error shape."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"request body is larger than the hub's limit of {limit} bytes "
            "(nearnb hub --max-body BYTES, or $NEARNB_MAX_BODY)",
            code="request_too_large",
        )


class BodyLimit:
    """Refuse request bodies above ``limit`` bytes with 413, counting as they arrive.

    A declared ``Content-Length`` above the limit is answered before the app
    runs. A chunked body (or one longer than declared) is counted message by
    message: the read that crosses the limit raises :class:`BodyTooLarge`
    inside the route's ``request.body()``, so the route writes nothing and the
    app's error handler answers. At most ``limit`` bytes (plus one network
    read) are ever held. uvicorn (h11 and httptools alike) discards the rest of
    a body the app did not read once the response is sent, so the client reads
    its 413 and the keep-alive connection stays usable; closing instead would
    reset a client still sending, which can lose the 413 before it is read.
    """

    def __init__(self, app: ASGIApp, *, limit: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await error_response(BodyTooLarge(self.limit), [])(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            raw = value.strip()
            return int(raw) if raw.isdigit() and len(raw) <= 18 else None
    return None
