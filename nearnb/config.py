"""Where nearnb keeps its state and how it reads user configuration.

``$NEARNB_HOME`` (default ``~/.nearnb``) holds the SQLite store, thread files
and ``config.toml``; ``$NEARNB_DATABASE_URL=postgresql://…`` moves the
store to PostgreSQL (:func:`nearnb.store.open_store`); thread files stay.
The config file is read fresh on each call: it is tiny, and a notebook
user who edits it should not have to restart the kernel.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """The user's config file cannot be read; the message names the file."""


def home() -> Path:
    """nearnb's state directory, created on first use."""
    path = Path(os.environ.get("NEARNB_HOME") or "~/.nearnb").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_path() -> Path:
    return home() / "config.toml"


def load_config() -> dict[str, Any]:
    """The parsed ``$NEARNB_HOME/config.toml``, or ``{}`` when there is none.

    Example::

        [providers.myhub]
        base_url = "http://127.0.0.1:8081/v1"
        api_key_env = "MYHUB_TOKEN"     # or api_key = "..." (kept out of outputs)
        default_model = "smollm2"

        [agents]
        dirs = ["~/agents"]
    """
    path = config_path()
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
