"""The HTTP client stack (httpx, httpx-sse, openai), loaded once, in order, under one lock.

``import nearnb`` must stay light, so openai (~0.5 s) and the rest load on first use, and first
use happens on run worker threads: a hub or a notebook that starts several runs at once starts
several first uses at once. Done piecemeal (``import openai`` here, ``from httpx_sse import ...``
there) that fails, and this module exists to make it impossible. Every provider gets these
modules from :func:`sdk` only.

The failure (issue 8, item 1; 42 of 60 runs failed when 10 fresh processes each started 6 runs
together): ``ProviderError: partially initialized module 'httpx' has no attribute 'Response'``.
The mechanism:

* openai (3.x) sends requests with ``httpx2``, and only *peeks* at the legacy ``httpx``: after
  every response ``openai._httpx2.http_response_types()`` does ``sys.modules.get("httpx")`` and,
  when it finds a module, reads ``module.Response`` (likewise ``Timeout``,
  ``RequestError`` ... in its other helpers), so that clients built on either package work.
* Python puts a module into ``sys.modules`` *before* running its body. The import lock protects
  ``import httpx`` (a second importer waits for the first), but a bare ``sys.modules.get`` takes
  no lock: for the ~60 ms that another thread spends executing ``httpx/__init__.py`` it returns
  a module with no ``Response`` yet.
* nearnb imports httpx through httpx-sse, which parses the chunk stream, and it did so lazily
  when the first response arrived. So run A, whose response came first, started importing
  httpx while run B's openai request was finishing; B's peek found A's half-built module, and B
  failed with an ``AttributeError`` (wrapped as ``ProviderError``).

The fix is an order and a lock: :func:`sdk` imports httpx and httpx-sse completely *before*
openai, so by the time any openai client exists (clients are built from what ``sdk()`` returns)
``sys.modules["httpx"]`` is either absent or whole, and every later ``import httpx`` anywhere in
the process is a no-op. The module-level lock makes a second thread wait for the first thread's
load instead of racing it (also through openai's own lazily imported submodules, which two
threads importing at once can see half-initialised through CPython's import-deadlock escape,
which hands out a partially initialised module rather than blocking forever).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["SDK", "sdk"]


@dataclass(frozen=True)
class SDK:
    """The loaded modules and the few names the providers use from them."""

    openai: ModuleType
    EventSource: Any  # httpx_sse.EventSource
    ChatCompletion: Any  # openai.types.chat.ChatCompletion
    ChatCompletionChunk: Any  # openai.types.chat.ChatCompletionChunk
    ValidationError: type[Exception]  # pydantic.ValidationError


_LOCK = threading.Lock()
_LOADED: SDK | None = None


def sdk() -> SDK:
    """The client stack, imported on the first call (by whichever thread comes first) and
    returned as is afterwards; concurrent first callers wait for that one load."""
    loaded = _LOADED
    if loaded is not None:  # the common case: no lock once loaded
        return loaded
    return _load()


def _load() -> SDK:
    global _LOADED
    with _LOCK:
        if _LOADED is None:
            # Order matters: httpx must be complete before openai can send a request and peek
            # at sys.modules["httpx"] (see the module docstring).
            import httpx  # noqa: F401
            import httpx_sse
            import openai
            from openai.types.chat import ChatCompletion, ChatCompletionChunk
            from pydantic import ValidationError

            _LOADED = SDK(
                openai=openai,
                EventSource=httpx_sse.EventSource,
                ChatCompletion=ChatCompletion,
                ChatCompletionChunk=ChatCompletionChunk,
                ValidationError=ValidationError,
            )
        return _LOADED
