"""Any OpenAI-compatible chat-completions endpoint, through the official ``openai`` SDK.

OpenAI, Fireworks, a NEAR-style hub, vLLM, Ollama and ``llama_cpp.server`` all speak the same
``/v1/chat/completions`` protocol, so one class serves every HTTP provider. The SDK does the
request side (auth header, retries with back-off, error classes). For streams nearnb reads the
SSE lines itself through the SDK's public ``with_streaming_response`` and validates each chunk
with pydantic's compiled validator: the SDK's lenient ``construct`` costs ~75 us per chunk against
~3 us, which matters when a run streams tens of thousands of deltas. Chunks the strict validator
rejects (off-spec servers: an unknown ``finish_reason``, a missing ``created``) fall back to the
SDK's lenient construction, so nothing that the SDK would accept is refused.

Every failure surfaces as :class:`ProviderError` naming the provider and the HTTP status, and
the API key is never part of a message, repr or exception chain.

openai, httpx and httpx-sse come from :func:`nearnb.providers.sdk.sdk` only, which loads them
once, in an order that lets concurrent first runs in a fresh process work (see that module).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from .base import ProviderError
from .sdk import sdk

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

DEFAULT_TIMEOUT = 600.0  # seconds between bytes; NEAR's own default (client_config.py)
CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 1  # NEAR's default too: one retry on 408/409/429/5xx/connection errors


def safe_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class OpenAICompatProvider:
    """A :class:`~nearnb.providers.base.Provider` for one OpenAI-compatible base URL.

    ``model_map`` turns short names into the names the endpoint expects; ``model_prefix`` is put
    in front of names without a ``/`` (Fireworks: ``llama-v3p3-70b-instruct`` ->
    ``accounts/fireworks/models/llama-v3p3-70b-instruct``). The SDK client is created on first
    use and reused, so its connection pool is too.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str,
        *,
        default_model: str = "",
        model_map: dict[str, str] | None = None,
        model_prefix: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.default_model = default_model
        self.model_map = dict(model_map or {})
        self.model_prefix = model_prefix
        self.timeout = timeout
        self.max_retries = max_retries
        self.__api_key = api_key  # name-mangled: not in repr, not shown by tab completion
        self._client: openai.OpenAI | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"OpenAICompatProvider(name={self.name!r}, base_url={safe_url(self.base_url)!r}, "
            f"default_model={self.default_model!r})"
        )

    # ------------------------------------------------------------------ models

    def map_model(self, model: str) -> str:
        """The model name sent to the endpoint for a user-facing ``model`` ('' = default)."""
        model = model or self.default_model
        if not model:
            raise ProviderError(
                f"no model given for provider {self.name!r} and it has no default_model",
                provider=self.name,
            )
        model = self.model_map.get(model, model)
        if self.model_prefix and "/" not in model:
            model = self.model_prefix + model
        return model

    # ------------------------------------------------------------------ calls

    def complete(
        self, messages: list[dict[str, Any]], *, model: str, **params: Any
    ) -> ChatCompletion:
        """One non-streamed completion (``stream`` in ``params`` is ignored)."""
        kwargs = self._request(messages, model, params)
        try:
            return self.client.chat.completions.create(**kwargs, stream=False)
        except Exception as exc:
            error = self._error(exc)
        raise error  # outside the except block: no __context__ holding the SDK's exception

    def stream(
        self, messages: list[dict[str, Any]], *, model: str, **params: Any
    ) -> SSEChunkStream:
        """A streamed completion. HTTP errors (401, 429 ...) raise here, before any chunk;
        failures mid-stream raise from iteration after the chunks received so far."""
        kwargs = self._request(messages, model, params)
        try:
            manager = self.client.chat.completions.with_streaming_response.create(
                **kwargs, stream=True
            )
            response = manager.__enter__()
        except Exception as exc:
            error = self._error(exc)
        else:
            return SSEChunkStream(response, self.name, self._redact)
        raise error  # outside the except block: no __context__ holding the SDK's exception

    # ------------------------------------------------------------------ internals

    @property
    def client(self) -> openai.OpenAI:
        """The SDK client, created once (importing openai costs ~0.5 s)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    openai = sdk().openai
                    client = openai.OpenAI(
                        base_url=self.base_url,
                        api_key=self.__api_key or "none",
                        timeout=openai.Timeout(self.timeout, connect=CONNECT_TIMEOUT),
                        max_retries=self.max_retries,
                    )
                    # ``chat`` is a lazily imported resource: build it here, under the lock,
                    # not in several threads' first requests at once.
                    _create_parameters(client)
                    self._client = client
        return self._client

    def _request(
        self, messages: list[dict[str, Any]], model: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """SDK keyword arguments: known parameters as is, anything else in ``extra_body``
        (so provider-specific options such as ``top_k`` still reach the server)."""
        known = _create_parameters(self.client)
        kwargs: dict[str, Any] = {"model": self.map_model(model), "messages": messages}
        extra: dict[str, Any] = dict(params.pop("extra_body", None) or {})
        for key, value in params.items():
            if value is None or key == "stream":
                continue
            if key in known:
                kwargs[key] = value
            else:
                extra[key] = value
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    def _redact(self, text: str) -> str:
        key = self.__api_key
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return text

    def _error(self, exc: Exception) -> ProviderError:
        """A ProviderError for any exception from the SDK, with the key scrubbed."""
        if isinstance(exc, ProviderError):
            return exc
        openai = sdk().openai
        where = safe_url(self.base_url)
        name = self.name
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = self._redact(_server_message(exc))[:300]
            if status == 401:
                message = f"unauthorized: check the API key for provider {name!r} (HTTP 401)"
            elif status == 403:
                message = f"forbidden: provider {name!r} refused the request (HTTP 403): {detail}"
            elif status == 404:
                message = (
                    f"not found: provider {name!r} (HTTP 404) at {where}: {detail}; "
                    "check the model name and base_url"
                )
            elif status == 429:
                message = f"rate limited by provider {name!r} (HTTP 429): {detail}; retry later"
            elif status >= 500:
                message = f"provider {name!r} failed with HTTP {status}: {detail}"
            else:
                message = f"provider {name!r} rejected the request with HTTP {status}: {detail}"
            return ProviderError(message, provider=name, status=status)
        if isinstance(exc, openai.APITimeoutError):
            return ProviderError(f"provider {name!r} timed out at {where}", provider=name)
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            reason = self._redact(str(cause)) if cause else "connection error"
            message = f"cannot reach provider {name!r} at {where}: {reason}"
            return ProviderError(message, provider=name)
        reason = self._redact(f"{type(exc).__name__}: {exc}")[:300]
        return ProviderError(f"provider {name!r} failed: {reason}", provider=name)


def _server_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    return str(getattr(exc, "message", "") or exc)


_CREATE_PARAMETERS: frozenset[str] | None = None
_NOT_JSON = object()


def _create_parameters(client: openai.OpenAI) -> frozenset[str]:
    """Names ``chat.completions.create`` accepts in the installed SDK (computed once)."""
    global _CREATE_PARAMETERS
    if _CREATE_PARAMETERS is None:
        signature = inspect.signature(client.chat.completions.create)
        _CREATE_PARAMETERS = frozenset(signature.parameters) - {"model", "messages", "stream"}
    return _CREATE_PARAMETERS


class SSEChunkStream:
    """Iterator of ``ChatCompletionChunk`` read from an SSE response; ``close()`` stops it.

    A stream that ends before ``data: [DONE]`` and before any ``finish_reason`` (the connection
    dropped) raises :class:`ProviderError` after yielding every chunk that did arrive. ``close()``
    may be called from another thread (a cancel button); iteration then just ends.
    """

    def __init__(self, response: Any, provider: str, redact: Callable[[str], str]) -> None:
        loaded = sdk()
        self._chunk_type = loaded.ChatCompletionChunk
        self._invalid = loaded.ValidationError
        self._response = response
        # SSE framing is httpx-sse's job; this class only maps events to chunks.
        self._events: Iterator[Any] = loaded.EventSource(response.http_response).iter_sse()
        self._provider = provider
        self._redact = redact
        self._closed = False
        self._finished = False  # saw a finish_reason
        self.chunks = 0  # chunks yielded so far
        self._wire: list[str] | None = None  # each chunk's data text, when observed
        self._on_end: Callable[[list[str], str, BaseException | None], None] | None = None
        self._on_block: Callable[[list[str]], None] = list.clear  # (never called while _block=0)
        self._block = 0  # hand the texts to _on_block every this many (0: never)

    def observe(
        self,
        on_end: Callable[[list[str], str, BaseException | None], None],
        *,
        on_block: Callable[[list[str]], None] | None = None,
        block: int = 2048,
    ) -> None:
        """Keep each chunk's JSON text as it came over the wire; at the end, once, call
        ``on_end(texts, reason, error)``: reason ``done`` (the stream finished), ``error``
        (it broke: ``error`` says how) or ``closed`` (the reader stopped it, or a cancel did).
        With ``on_block``, every ``block`` texts go to it instead, as they come (it may not
        keep the list), and ``on_end`` gets the rest.

        What recording needs, here and not in a wrapper: a wrapper's call per chunk cost a
        run of 50,000 chunks about a tenth of its time (bench_pipeline).
        """
        self._wire, self._on_end = [], on_end
        if on_block is not None:
            self._on_block, self._block = on_block, block

    def _end(self, reason: str, error: BaseException | None = None) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            wire, self._wire = self._wire or [], None
            on_end(wire, reason, error)

    def __iter__(self) -> SSEChunkStream:
        return self

    def __enter__(self) -> SSEChunkStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._end("closed")  # the reader's close; the stream's own ends are recorded first
        self._shut()

    def _shut(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._response.close()
            except Exception:  # closing a half-read connection can itself fail; nothing to do
                pass

    def interrupt(self) -> None:
        """Stop a read blocked in another thread (a cancel while the provider is silent).

        Closing a socket does not wake a thread blocked reading it; shutting it
        down does. httpx exposes the connection's socket as the response's
        ``network_stream`` extension. The connection cannot be reused after a
        half-read stream anyway; the reading thread then sees the stream end.
        """
        self._closed = True
        http_response = getattr(self._response, "http_response", self._response)
        stream = getattr(http_response, "extensions", {}).get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed by the other end
                sock.shutdown(socket.SHUT_RDWR)

    def __next__(self) -> ChatCompletionChunk:
        if self._closed:
            raise StopIteration
        data, broken = None, ""
        try:
            for event in self._events:
                if event.data:  # id-only / retry-only events carry no chunk
                    data = event.data
                    break
        except Exception as exc:
            broken = f"{type(exc).__name__}: {exc}"
        if broken:  # raised outside the except: no exception chain that could hold a key
            if self._closed:  # closed from another thread while reading
                raise StopIteration
            self._fail(
                f"stream from provider {self._provider!r} broke after {self.chunks} chunks: "
                f"{self._redact(broken)[:300]}"
            )
        if data is not None:
            try:
                return self._dispatch(data)
            except ProviderError as exc:
                self._fail(exc)
        if not self._finished:
            if self._closed:  # interrupted from another thread: not the provider's doing
                raise StopIteration
            self._fail(
                f"stream from provider {self._provider!r} ended after {self.chunks} chunks "
                "without finishing (connection closed before [DONE])"
            )
        self._shut()
        self._end("done")
        raise StopIteration

    def _fail(self, error: str | ProviderError) -> NoReturn:
        """End the stream as broken: recorded as ``error``, then raised."""
        if isinstance(error, str):
            error = ProviderError(error, provider=self._provider)
        self._shut()
        self._end("error", error)
        raise error

    def _dispatch(self, text: str) -> ChatCompletionChunk:
        if text.startswith("[DONE]"):
            self._finished = True
            self._shut()
            self._end("done")
            raise StopIteration
        try:
            chunk = self._chunk_type.model_validate_json(text)
        except self._invalid:
            chunk = None
        if chunk is None:  # outside the except: errors raised below carry no server payload
            chunk = self._lenient(text)
        self.chunks += 1
        wire = self._wire
        if wire is not None:
            wire.append(text)
            if len(wire) == self._block:
                self._on_block(wire)
                wire.clear()
        choices = chunk.choices
        if choices and choices[0].finish_reason:
            self._finished = True
        return chunk

    def _lenient(self, text: str) -> ChatCompletionChunk:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            obj = _NOT_JSON
        if obj is _NOT_JSON:
            raise ProviderError(
                f"provider {self._provider!r} sent a stream event that is not JSON: "
                f"{self._redact(text[:200])!r}",
                provider=self._provider,
            )
        if isinstance(obj, dict) and obj.get("error"):
            error = obj["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise ProviderError(
                f"provider {self._provider!r} reported an error mid-stream: "
                f"{self._redact(str(message))[:300]}",
                provider=self._provider,
            )
        if not isinstance(obj, dict):
            raise ProviderError(
                f"provider {self._provider!r} sent a stream event that is not an object",
                provider=self._provider,
            )
        return self._chunk_type.construct(**obj)
