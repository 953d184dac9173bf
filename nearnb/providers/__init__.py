"""Chunk sources for nearnb: HTTP OpenAI-compatible endpoints and the embedded model.

``resolve(model, provider)`` is the entry point: it returns a :class:`Resolved` whose
``provider.stream(messages, model=resolved.model, ...)`` yields openai ``ChatCompletionChunk``
objects whichever provider was picked. Only light modules are imported here; openai and
llama.cpp load on first use.
"""

from __future__ import annotations

from .base import ChunkStream, Provider, ProviderError, Resolved
from .registry import ProviderSpec, provider_names, provider_spec, resolve

__all__ = [
    "ChunkStream",
    "Provider",
    "ProviderError",
    "ProviderSpec",
    "Resolved",
    "provider_names",
    "provider_spec",
    "resolve",
]
