"""nearnb's hub: an SSE server for runs, and the client that attaches to it.

* :func:`start` — a hub in the background of this process (a notebook kernel);
  returns its URL.
* :func:`serve` — a hub in the foreground (``nearnb hub``).
* :func:`attach` / :func:`attach_async` — follow or replay a run from any
  hub's ``/v1/threads/{tid}/stream/{rid}``.

Imports are lazy: ``import nearnb.hub`` does not load uvicorn or Starlette.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "start": "nearnb.hub.server",
    "stop": "nearnb.hub.server",
    "serve": "nearnb.hub.server",
    "HubServer": "nearnb.hub.server",
    "HubError": "nearnb.hub.server",
    "create_app": "nearnb.hub.app",
    "attach": "nearnb.hub.client",
    "attach_async": "nearnb.hub.client",
    "AttachError": "nearnb.hub.client",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nearnb.hub' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
