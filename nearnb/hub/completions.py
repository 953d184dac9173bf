"""``POST /v1/chat/completions``: the hub as an OpenAI-compatible model endpoint.

Backed by nearnb's providers (any configured HTTP provider, or the embedded
model), so an agent running elsewhere can point its ``base_url`` at a hub.
Streams use OpenAI's chat framing (bare ``data:`` chunks, then ``data:
[DONE]``), not the Assistants framing of run streams.

Providers are blocking (HTTP through the openai SDK, or llama.cpp in this
process), so they run on worker threads; a client that disconnects closes
the provider's stream, which stops generation.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import ApiError, read_body, redact
from .responses import SSEResponse
from .schemas import ChatIn

_END = object()


def _resolve(body: ChatIn) -> Any:
    from ..providers import resolve
    from ..providers.base import ProviderError

    try:
        return resolve(body.model or None, body.provider or None)
    except (ProviderError, LookupError, ValueError) as exc:
        raise ApiError(404, f"model: {exc}", param="model", code="model_not_found") from None


def _as_json(obj: Any) -> Any:
    """A chunk or completion as JSON-able data (openai models, or plain dicts)."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json", exclude_none=True)
    return obj


def _provider_error(exc: Exception, hidden: list[str]) -> ApiError:
    """A provider's failure as the hub's answer: the client's fault when the provider refused
    the request itself (400/404/413/422 upstream), a bad gateway otherwise."""
    status = getattr(exc, "status", None)
    message = redact(str(exc), hidden)
    if status == 404:
        return ApiError(404, message, param="model", code="model_not_found")
    if status in (400, 413, 422):
        return ApiError(400, message, code="provider_rejected_request")
    return ApiError(502, message, code="provider_error")


async def chat_completions(request: Request) -> Response:
    from ..providers.base import ProviderError

    hub = request.app.state.hub
    body = await read_body(request, ChatIn)
    resolved = await anyio.to_thread.run_sync(_resolve, body)
    provider, model, params = resolved.provider, resolved.model, body.params()
    if not body.stream:
        try:
            completion = await anyio.to_thread.run_sync(
                lambda: provider.complete(body.messages, model=model, **params)
            )
        except ProviderError as exc:
            raise _provider_error(exc, hub.hidden) from None
        return JSONResponse(_as_json(completion))
    try:
        stream = await anyio.to_thread.run_sync(
            lambda: provider.stream(body.messages, model=model, **params)
        )
    except ProviderError as exc:
        raise _provider_error(exc, hub.hidden) from None
    return SSEResponse(_chunks(stream, hub.hidden), keepalive=hub.keepalive)


async def _chunks(stream: Any, hidden: list[str]) -> AsyncIterator[bytes]:
    """``data: <chunk>`` per chunk, ``data: [DONE]`` at the end; errors as an OpenAI error frame."""

    def step() -> Any:
        return next(stream, _END)

    try:
        while True:
            try:
                chunk = await anyio.to_thread.run_sync(step)
            except Exception as exc:  # the provider broke mid-stream: say so, in band
                error = {"error": {"message": redact(str(exc), hidden), "type": "server_error"}}
                yield f"data: {json.dumps(error)}\n\n".encode()
                return
            if chunk is _END:
                break
            yield f"data: {json.dumps(_as_json(chunk), ensure_ascii=False)}\n\n".encode()
        yield b"data: [DONE]\n\n"
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            await anyio.to_thread.run_sync(close)
