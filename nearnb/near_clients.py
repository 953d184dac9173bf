"""``env.openai`` and ``env.async_openai``: NEAR's "secure" OpenAI clients, on the run's provider.

NEAR gave agents ``SecureOpenAI`` objects whose only method was
``chat.completions.create(**params)``, sent to the hub with the caller's auth
held in a closure so agent code could not read it. Agents used them for calls
the ``env`` helpers did not cover (``response_format``, ``n``, raw
responses). nearnb keeps that shape and sends the call to the run's
provider: ``model`` is resolved like ``env.completion``'s (``provider::model``
works; missing means the run's model), and the provider object does the
request with its own base_url and key, so no key is ever stored here, shown in
a repr, or reachable from the agent. The embedded model answers too, since the
call goes through the provider, not through HTTP.

Like NEAR's, these calls are outside the run's event stream: viewers see only
what the agent passes to ``env.add_reply``. A cancelled run refuses new calls.

The async twin runs the same blocking call on a worker thread (and streams
chunk by chunk the same way): the providers are synchronous, and an
``AsyncOpenAI`` of its own would need the key in this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .providers.base import Provider, Resolved

__all__ = ["AsyncNearClient", "NearClient", "provider_base_url"]


def provider_base_url(provider: Provider) -> str | None:
    """An HTTP provider's endpoint without credentials; None for the embedded model."""
    url = getattr(provider, "base_url", None)
    if not isinstance(url, str) or not url:
        return None
    from .providers.openai_compat import safe_url

    return safe_url(url)


class _Completions:
    def __init__(self, resolve: Callable[[str], Resolved], check: Callable[[], None]) -> None:
        self._resolve = resolve
        self._check = check

    def create(self, **params: Any) -> Any:
        """A ``ChatCompletion``, or with ``stream=True`` an iterator of ``ChatCompletionChunk``.

        Keyword arguments are OpenAI's (``messages``, ``model``, ``temperature``,
        ``tools``, ``response_format`` ...); unknown ones reach the provider as
        extra body fields. The stream closes early with ``close()`` or ``with``.
        """
        self._check()
        messages = list(params.pop("messages"))
        resolved = self._resolve(str(params.pop("model", "") or ""))
        params = {k: v for k, v in params.items() if v is not None}
        if params.pop("stream", False):
            return resolved.provider.stream(messages, model=resolved.model, **params)
        return resolved.provider.complete(messages, model=resolved.model, **params)


class _Chat:
    def __init__(self, completions: Any) -> None:
        self.completions = completions


class NearClient:
    """``env.openai``: ``chat.completions.create(**params)`` against the run's provider."""

    def __init__(self, resolve: Callable[[str], Resolved], check: Callable[[], None]) -> None:
        self.chat = _Chat(_Completions(resolve, check))

    def __repr__(self) -> str:
        return "<env.openai: chat.completions.create(...) on the run's provider>"


class _AsyncChunks:
    """A blocking chunk stream read on a worker thread, one chunk per ``await``."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._iter: Iterator[Any] = iter(stream)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        done = object()
        chunk = await asyncio.to_thread(next, self._iter, done)
        if chunk is done:
            raise StopAsyncIteration
        return chunk

    async def close(self) -> None:
        await asyncio.to_thread(self._stream.close)

    aclose = close

    async def __aenter__(self) -> _AsyncChunks:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _AsyncCompletions:
    def __init__(self, sync: _Completions) -> None:
        self._sync = sync

    async def create(self, **params: Any) -> Any:
        """``await``-able :meth:`_Completions.create`; a stream is an async iterator."""
        result = await asyncio.to_thread(self._sync.create, **params)
        return _AsyncChunks(result) if params.get("stream") else result


class AsyncNearClient:
    """``env.async_openai``: ``await chat.completions.create(**params)``."""

    def __init__(self, sync: NearClient) -> None:
        self.chat = _Chat(_AsyncCompletions(sync.chat.completions))

    def __repr__(self) -> str:
        return "<env.async_openai: await chat.completions.create(...) on the run's provider>"
