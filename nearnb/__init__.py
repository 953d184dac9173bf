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
    "run_agent": "nearnb.runs",
    "start_run": "nearnb.runs",
    "RunResult": "nearnb.runs",
    "RunHandle": "nearnb.runs",
    "Environment": "nearnb.environment",
    "StreamHandler": "nearnb.environment",
    "Store": "nearnb.store",
    "RunState": "nearnb.reducer",
    "Event": "nearnb.events",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
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
