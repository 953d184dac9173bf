"""nearnb: NEAR-AI-style agents in Jupyter.

The public API is small and imported lazily, so ``import nearnb`` stays fast
(openai, llama.cpp and ipywidgets load only when first used).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "run_agent": "nearnb.api",  # the display-aware run (views live in nearnb.view)
    "render": "nearnb.api",
    "start_run": "nearnb.runs",
    "RunResult": "nearnb.runs",
    "RunHandle": "nearnb.runs",
    "attach": "nearnb.hub.client",
    "compare": "nearnb.comparing",  # agents side by side, in columns of one cell
    "Comparison": "nearnb.comparing",
    "scrub": "nearnb.scrubbing",  # a slider over a finished run's events
    "Environment": "nearnb.environment",
    "StreamHandler": "nearnb.environment",
    "Store": "nearnb.store",
    "RunState": "nearnb.reducer",
    "Event": "nearnb.events",
}
#: subpackages reachable as attributes (``nearnb.hub.start()``) without an import
_SUBPACKAGES = ("hub", "view", "providers")

__all__ = sorted([*_EXPORTS, *_SUBPACKAGES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return import_module(f"nearnb.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nearnb' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nearnb``: register the ``%near_agent`` magics."""
    from .magic import load_ipython_extension as load

    load(ipython)
