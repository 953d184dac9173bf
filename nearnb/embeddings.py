"""Text embeddings for vector stores: the embedded model, or a provider's ``/v1/embeddings``.

NEAR embedded files on its hub; nearnb has no hub service to ask, so a vector
store embeds with whatever the run already talks to:

* the embedded model (provider ``local``): a second llama.cpp ``Llama`` on the
  same GGUF, opened with ``embedding=True`` and mean pooling. It is a separate
  instance because a context is created either for generation or for
  embeddings, and sharing one would make a chat stream and an indexing call
  wait for each other. SmolLM2's GGUF names no pooling type, so mean pooling is
  set through a metadata override (passing ``pooling_type`` instead makes
  llama.cpp print a warning on every load, whatever ``verbose`` says).
* an OpenAI-compatible provider: its ``/v1/embeddings`` through the same SDK
  client (and so the same key, which never leaves that client). The model is
  ``NEARNB_PROVIDER_<NAME>_EMBEDDING_MODEL``, else ``embedding_model`` in the
  provider's ``config.toml`` table, else a known default (OpenAI
  ``text-embedding-3-small``, Fireworks ``nomic-ai/nomic-embed-text-v1.5``),
  else the provider's chat model (llama.cpp's and Ollama's servers embed with
  the model they serve).

An embedder is named by a label, ``provider::model``; a vector store records
the label it was built with, and every later file and query of that store is
embedded by the same embedder (vectors of two models are not comparable).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import struct
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .config import load_config
from .providers.base import ProviderError

if TYPE_CHECKING:
    from llama_cpp import Llama

    from .providers.base import Resolved
    from .providers.openai_compat import OpenAICompatProvider

#: Tokens per embedding call of the embedded model; longer texts are truncated to it.
LOCAL_EMBEDDING_CTX = 2048
#: Texts per ``/v1/embeddings`` request (OpenAI accepts up to 2048).
HTTP_BATCH = 256
KNOWN_EMBEDDING_MODELS = {
    "openai": "text-embedding-3-small",
    "fireworks": "nomic-ai/nomic-embed-text-v1.5",
}
_MEAN_POOLING = 1  # llama.cpp's LLAMA_POOLING_TYPE_MEAN


class Embedder(Protocol):
    """Turns texts into vectors, one per text, in order."""

    @property
    def label(self) -> str:
        """``provider::model``: what a vector store records to be embedded the same way later."""
        ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


# ------------------------------------------------------------------ local


_LOADED: dict[tuple[str, int], tuple[Llama, threading.Lock]] = {}
_LOAD_LOCK = threading.Lock()


def _load_local(path: Path) -> tuple[Llama, threading.Lock]:
    """The process's embedding ``Llama`` for ``path`` (loaded once, 0.2 s) and its lock."""
    from .providers.local import llama_class, llama_settings
    from .providers.turns import model_thread

    threads = llama_settings()["n_threads"]
    key = (str(path), threads)
    with _LOAD_LOCK:
        if key not in _LOADED:
            Llama = llama_class()  # noqa: N806 - the class, named as llama_cpp names it
            try:
                # On the model thread, as every llama.cpp call: one OpenMP team per process.
                llm = model_thread().call(
                    lambda: Llama(
                        model_path=str(path),
                        embedding=True,
                        kv_overrides={f"{_architecture(path)}.pooling_type": _MEAN_POOLING},
                        n_ctx=LOCAL_EMBEDDING_CTX,
                        n_batch=LOCAL_EMBEDDING_CTX,
                        n_ubatch=LOCAL_EMBEDDING_CTX,  # a pooled sequence fits one micro-batch
                        n_threads=threads,
                        verbose=False,
                    )
                )
            except (ValueError, RuntimeError, OSError) as exc:
                raise ProviderError(f"cannot load {path}: {exc}", provider="local") from None
            if not _LOADED:
                atexit.register(_close_local)
            _LOADED[key] = (llm, threading.Lock())
        return _LOADED[key]


def _close_local() -> None:
    """At exit, free the embedding models while the modules they need still exist."""
    for llm, _lock in list(_LOADED.values()):
        with contextlib.suppress(Exception):
            llm.close()


def _architecture(path: Path) -> str:
    """The GGUF's ``general.architecture`` (``llama`` for SmolLM2), the prefix of its keys.

    GGUF writers put it first among the metadata, so the header is enough:
    magic, version (u32), tensor and key counts (u64), then key (u64 length +
    bytes), value type (u32; 8 = string), value (u64 length + bytes).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        if head[:4] == b"GGUF":
            (n,) = struct.unpack_from("<Q", head, 24)
            key = head[32 : 32 + n]
            kind, length = struct.unpack_from("<IQ", head, 32 + n)
            if key == b"general.architecture" and kind == 8:
                return head[44 + n : 44 + n + length].decode()
    except (OSError, struct.error, UnicodeDecodeError):
        pass
    return "llama"


class LocalEmbedder:
    """Embeddings from the embedded GGUF (``local::<model>``), mean-pooled, 576 dims for SmolLM2."""

    def __init__(self, path: Path | None = None) -> None:
        from .providers.local import model_file, model_name

        self.path = path or model_file()
        self.label = f"local::{model_name(self.path)}"

    def __repr__(self) -> str:
        return f"LocalEmbedder({self.label!r})"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        from .providers.turns import model_thread

        llm, lock = _load_local(self.path)
        inputs = [t or " " for t in texts]
        with lock:  # a Llama context is not reentrant
            try:
                vectors: Any = model_thread().call(lambda: llm.embed(inputs, truncate=True))
            except Exception as exc:  # llama.cpp reports failures as assorted exceptions
                raise ProviderError(
                    f"local embeddings: {type(exc).__name__}: {exc}", provider="local"
                ) from None
        return [list(map(float, v)) for v in vectors]


# ------------------------------------------------------------------- http


class HttpEmbedder:
    """Embeddings from an OpenAI-compatible provider's ``/v1/embeddings``."""

    def __init__(self, provider: OpenAICompatProvider, model: str) -> None:
        self.provider = provider
        self.model = model
        self.label = f"{provider.name}::{model}"

    def __repr__(self) -> str:  # the provider's repr already hides the key
        return f"HttpEmbedder({self.label!r})"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), HTTP_BATCH):
            batch = [t or " " for t in texts[start : start + HTTP_BATCH]]
            out.extend(self._request(batch))
        return out

    def _request(self, batch: list[str]) -> list[list[float]]:
        provider = self.provider
        try:
            response = provider.client.embeddings.create(
                model=self.model, input=batch, encoding_format="float"
            )
        except Exception as exc:
            error = provider._error(exc)  # the provider's own redaction of its key
        else:
            data = sorted(response.data, key=lambda item: item.index)
            if len(data) != len(batch):
                raise ProviderError(
                    f"provider {provider.name!r} returned {len(data)} embeddings "
                    f"for {len(batch)} inputs",
                    provider=provider.name,
                )
            return [list(map(float, item.embedding)) for item in data]
        raise error  # outside the except block: no chain holding the SDK's exception


# -------------------------------------------------------------- selection


def embedding_model(provider: str, fallback: str) -> str:
    """The embedding model for HTTP provider ``provider`` (order in the module docstring)."""
    env_name = provider.upper().replace("-", "_").replace(".", "_")
    table = (load_config().get("providers") or {}).get(provider)
    configured = table.get("embedding_model") if isinstance(table, dict) else None
    return str(
        os.environ.get(f"NEARNB_PROVIDER_{env_name}_EMBEDDING_MODEL")
        or configured
        or KNOWN_EMBEDDING_MODELS.get(provider)
        or fallback
    )


def embedder_for(resolved: Resolved) -> Embedder:
    """The embedder that goes with a resolved chat provider (a run's, or the hub's default)."""
    from .providers.openai_compat import OpenAICompatProvider

    provider = resolved.provider
    if isinstance(provider, OpenAICompatProvider):
        return HttpEmbedder(provider, embedding_model(provider.name, resolved.model))
    return LocalEmbedder()


def default_embedder() -> Embedder:
    """The embedder of the default provider (for stores created outside a run, on the hub)."""
    from .providers import resolve

    return embedder_for(resolve())


def embedder_named(label: str) -> Embedder:
    """The embedder a store recorded as ``label``; ProviderError if it cannot be had now."""
    from .providers.local import model_file, model_name
    from .providers.registry import LOCAL, build, provider_spec

    name, _, model = label.partition("::")
    if name == LOCAL:
        current = model_name(model_file())
        if model != current:
            raise ProviderError(
                f"this vector store was embedded with local::{model}, but the embedded model "
                f"is now local::{current}; its vectors cannot be compared",
                provider=LOCAL,
            )
        return LocalEmbedder()
    spec = provider_spec(name)
    problem = spec.missing()
    if problem is not None:
        raise ProviderError(f"this vector store is embedded by {label}: {problem}", provider=name)
    return HttpEmbedder(build(spec), model)
