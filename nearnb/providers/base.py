"""What every chunk source looks like to the rest of nearnb.

A provider turns OpenAI chat messages into either one ``ChatCompletion`` or
an iterator of ``ChatCompletionChunk`` objects (openai-python's own types),
whether it speaks HTTP (any OpenAI-compatible endpoint through the openai
SDK) or runs llama.cpp in-process. The Environment and StreamHandler never
know which.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # openai is imported lazily: it costs ~0.5 s at import time
    from openai.types.chat import ChatCompletion, ChatCompletionChunk


class ProviderError(RuntimeError):
    """A provider could not be used or failed; the message names which and why.

    Never contains a credential. ``provider`` names the provider when known and ``status`` is the
    HTTP status when there was one (401, 429, 500 ...), so callers can react without parsing the
    message (e.g. a run may retry on 429 but not on 401).
    """

    def __init__(
        self, message: str, *, provider: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status


class ChunkStream(Protocol):
    """An iterator of chunks that can be closed early (stop / cancel)."""

    def __iter__(self) -> Iterator[ChatCompletionChunk]: ...

    def __next__(self) -> ChatCompletionChunk: ...

    def close(self) -> None: ...


@runtime_checkable
class Provider(Protocol):
    """A named source of chat completions."""

    name: str

    def complete(
        self, messages: list[dict[str, Any]], *, model: str, **params: Any
    ) -> ChatCompletion:
        """One non-streamed completion. ``params``: temperature, max_tokens, tools, ..."""
        ...

    def stream(self, messages: list[dict[str, Any]], *, model: str, **params: Any) -> ChunkStream:
        """A streamed completion: ``ChatCompletionChunk`` objects as they arrive."""
        ...


@dataclass(frozen=True)
class Resolved:
    """The outcome of resolving ``provider`` / ``model`` names for one call.

    ``label`` is what views show (``"local::smollm2"``); ``notice`` is set when
    nearnb fell back to the embedded model because the requested provider had
    no credentials, and says so in words a user can act on.
    """

    provider: Provider
    model: str
    label: str
    notice: str | None = None
