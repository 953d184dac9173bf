"""How the hub says no: OpenAI-shaped error bodies, request validation, credential redaction.

Every error leaves the hub as ``{"error": {"message", "type", "param",
"code"}}`` — the body openai-python turns into ``NotFoundError``,
``AuthenticationError`` and so on — and every message passes through
:func:`redact` first, because an exception raised deep in a provider may
quote a key, and no credential may ever appear in a response.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
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
    422: "invalid_request_error",
}


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


async def read_body(request: Request, model: type[M]) -> M:
    """The JSON body validated as ``model``; 422 naming the first bad field otherwise."""
    raw = await request.body()
    try:
        payload: Any = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ApiError(422, "request body is not valid JSON", code="invalid_json") from None
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
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, f"{name} must be an integer, not {raw!r}", param=name) from None
    if not low <= value <= high:
        raise ApiError(422, f"{name} must be between {low} and {high}", param=name)
    return value


def query_choice(request: Request, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = request.query_params.get(name, default)
    if value not in choices:
        raise ApiError(
            422, f"{name} must be one of {', '.join(choices)}, not {value!r}", param=name
        )
    return value
