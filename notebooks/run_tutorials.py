"""Execute the tutorials headless, exactly as the notebook tests do, and save their outputs.

    python notebooks/run_tutorials.py                       # every tutorial, in place
    python notebooks/run_tutorials.py notebooks/04-attach-and-replay.ipynb

The notebooks are committed *with* the outputs of a real run, so GitHub and a fresh Binder
show them, and nbval compares a new run against them. After editing a notebook, run this
script and commit the result.

The kernel gets the environment :func:`kernel_env` builds, which ``conftest.py`` also uses:

* ``NEARNB_DISPLAY=plain``: every run leaves one static output (its final answer), which is
  what nbval can compare and what GitHub can render. A person running the notebooks in
  JupyterLab does not have this variable and sees the live widget instead.
* no provider keys and no ``NEARNB_*`` settings from your shell: every run is offline on the
  embedded model, whatever you have exported, so the saved outputs are the ones CI sees;
* this checkout first on ``PYTHONPATH``: the notebooks exercise the ``nearnb`` next to them,
  even if the installed one (an editable install of another clone, say) is elsewhere.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Credentials and endpoints a developer may have exported; never passed to a tutorial kernel.
PROVIDER_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "FIREWORKS_API_KEY",
    "NEARAI_API_KEY",
    "NEARAI_BASE_URL",
)
#: ``NEARNB_*`` settings that only tune speed, not results; kept.
KEPT_NEARNB_VARS = ("NEARNB_LOCAL_THREADS",)
#: Seconds a single cell may take (the slowest runs the embedded model four times).
CELL_TIMEOUT = 600


def kernel_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a tutorial kernel runs in, derived from ``base`` (default: ours)."""
    base = os.environ if base is None else base
    env = {
        name: value
        for name, value in base.items()
        if name not in PROVIDER_VARS
        and not (name.startswith("NEARNB_") and name not in KEPT_NEARNB_VARS)
    }
    env["NEARNB_DISPLAY"] = "plain"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), base.get("PYTHONPATH")) if p)
    return env


def tutorials() -> list[Path]:
    return sorted(HERE.glob("[0-9][0-9]-*.ipynb"))


def execute(path: Path) -> None:
    """Run ``path`` top to bottom in a fresh kernel (this interpreter) and save it in place."""
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

    nb = nbformat.read(path, as_version=4)
    # The same kernel nbval's --nbval-current-env starts: ipykernel in this interpreter.
    km = KernelManager(
        kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager()
    )
    client = NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT,
        record_timing=False,  # no per-cell timestamps: they would change on every run
        resources={"metadata": {"path": str(path.parent)}},  # the kernel's cwd, as in nbval
    )
    try:
        client.execute(env=kernel_env())
    finally:
        # nbclient leaves a kernel it did not create running; a clean shutdown lets the
        # notebook's TemporaryDirectory (its NEARNB_HOME) remove itself.
        if client.kc is not None:
            client.kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=False)
    nb.metadata.pop("widgets", None)  # plain mode shows no widgets; keep the file clean
    nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every tutorial")
    args = parser.parse_args(argv)
    for path in args.notebooks or tutorials():
        print(f"executing {path.name} ...", flush=True)
        execute(path.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
