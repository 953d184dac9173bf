"""The public API is small, explicit and lazy; this guards it."""

from __future__ import annotations

import subprocess
import sys

import nearnb

PUBLIC = [
    "Comparison",
    "Environment",
    "Event",
    "RunHandle",
    "RunResult",
    "RunState",
    "Store",
    "StreamHandler",
    "__version__",
    "attach",
    "compare",
    "hub",
    "providers",
    "render",
    "run_agent",
    "scrub",
    "start_run",
    "view",
]


def test_exported_members() -> None:
    assert nearnb.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(nearnb, name) is not None, name
    assert nearnb.run_agent.__module__ == "nearnb.api"  # the display-aware run
    assert callable(nearnb.hub.start) and callable(nearnb.attach)


def test_import_is_lazy() -> None:
    """``import nearnb`` must not pay for openai, llama.cpp, ipywidgets or the ASGI stack."""
    code = (
        "import sys, nearnb\n"
        "heavy = [m for m in ('openai', 'llama_cpp', 'ipywidgets', 'starlette', 'uvicorn', 'httpx')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_load_ipython_extension_is_exposed() -> None:
    assert callable(nearnb.load_ipython_extension)
