"""How the hub says no: OpenAI-shaped error bodies, request validation, credential redaction.

Every error leaves the hub as ``{"error": {"message", "type", "param",
"code"}}`` — the body openai-python turns into ``NotFoundError``,
``AuthenticationError`` and so on — and every message passes through
:func:`redact` first, because an exception raised deep in a provider may
quote a key, and no credential may ever appear in a response.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import from_json
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    410: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
}

#: An event sequence number as clients send it back: ASCII digits that fit SQLite's INTEGER.
_SEQ = re.compile(r"[0-9]{1,18}")


class ApiError(Exception):
    """An error response: status, message, and the request field it is about."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers


def secrets_to_hide(extra: Iterable[str | None] = ()) -> list[str]:
    """Values that must never be echoed: the hub token, credential-like env vars, config keys."""
    values = [v for v in extra if v]
    for name, value in os.environ.items():
        if any(word in name.upper() for word in _SECRET_WORDS) and len(value) >= 8:
            values.append(value)
    try:
        from ..config import load_config

        for section in (load_config().get("providers") or {}).values():
            if isinstance(section, dict) and isinstance(section.get("api_key"), str):
                values.append(section["api_key"])
    except Exception:  # an unreadable config is reported elsewhere, not here
        pass
    return sorted({v for v in values if len(v) >= 8}, key=len, reverse=True)


def redact(text: str, hidden: Iterable[str] | None = None) -> str:
    """``text`` with every secret value replaced by ``[redacted]``."""
    for value in secrets_to_hide() if hidden is None else hidden:
        if value in text:
            text = text.replace(value, "[redacted]")
    return text


def error_response(error: ApiError, hidden: Iterable[str] | None = None) -> JSONResponse:
    body = {
        "error": {
            "message": redact(error.message, hidden),
            "type": _TYPES.get(error.status, "server_error" if error.status >= 500 else "error"),
            "param": error.param,
            "code": error.code,
        }
    }
    return JSONResponse(body, status_code=error.status, headers=error.headers)


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc, request.app.state.hub.hidden)


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own 404 (no such route) and 405 (wrong method), in the same shape."""
    assert isinstance(exc, HTTPException)
    message = f"{exc.detail}: {request.method} {request.url.path}"
    return error_response(ApiError(exc.status_code, message, headers=dict(exc.headers or {})))


async def server_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Anything unexpected: a 500 whose message names the exception, redacted."""
    log.exception("hub error on %s %s", request.method, request.url.path)
    message = f"internal hub error: {type(exc).__name__}: {exc}"
    return error_response(ApiError(500, message, code="server_error"), request.app.state.hub.hidden)


# --------------------------------------------------------------- validation


def _shown(raw: str, limit: int = 40) -> str:
    """``raw`` for an error message, repr'd and cut short: a hostile value is not echoed whole."""
    return repr(raw if len(raw) <= limit else raw[:limit] + "...")


def parse_json(raw: bytes) -> Any:
    """A request body as JSON, refusing what the store or a response could not hold.

    pydantic-core's parser (jiter) already refuses what ``json.loads`` lets
    through and the hub then fails on: lone surrogates (``"\\ud800"`` cannot be
    encoded as UTF-8, so SQLite and every JSON response would fail), nesting
    deeper than 200 (``json.loads`` raises RecursionError at ~1,000), invalid
    UTF-8, integers past Python's 4,300-digit limit and ``NaN``/``Infinity``.
    What is left is a float literal too large for a double (``1e999`` parses
    as ``inf``), which no JSON response may contain: refused here too.
    """
    try:
        payload = from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        raise ApiError(422, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not _finite(payload):
        raise ApiError(
            422, "request body is not valid JSON: number out of range", code="invalid_json"
        )
    return payload


def _finite(payload: Any) -> bool:
    """Whether no float in ``payload`` is infinite (iterative: no recursion to exhaust)."""
    pending = [payload]
    while pending:
        item = pending.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


async def read_body(request: Request, model: type[M]) -> M:
    """The JSON body validated as ``model``; 422 naming the first bad field otherwise.

    Nothing is written before this returns, so a rejected request leaves no trace.
    The size limit is enforced while the body is read (:class:`~nearnb.hub.guard.BodyLimit`).
    """
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise ApiError(400, "the client went away before sending its whole body") from None
    payload: Any = parse_json(raw) if raw.strip() else {}
    if not isinstance(payload, dict):
        raise ApiError(422, "request body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> ApiError:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    return ApiError(422, f"{field}: {first['msg']}", param=field, code="invalid_value")


def query_int(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _SEQ.fullmatch(raw.strip()):
        raise ApiError(422, f"{name} must be an integer, not {_shown(raw)}", param=name)
    value = int(raw)
    if not low <= value <= high:
        raise ApiError(422, f"{name} must be between {low} and {high}", param=name)
    return value


def event_seq(raw: str, param: str) -> int:
    """An event sequence number sent back by a client (``Last-Event-ID``, ``?after=``).

    ASCII digits only: ``str.isdigit`` accepts ``"²"``, which ``int`` refuses,
    and 5,000 digits would exceed both ``int``'s limit and SQLite's INTEGER.
    """
    if not _SEQ.fullmatch(raw.strip()):
        raise ApiError(
            422, f"{param} must be an event sequence number, not {_shown(raw)}", param=param
        )
    return int(raw)


def query_choice(request: Request, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = request.query_params.get(name, default)
    if value not in choices:
        raise ApiError(
            422, f"{name} must be one of {', '.join(choices)}, not {_shown(value)}", param=name
        )
    return value
