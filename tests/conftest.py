"""Shared fixtures: every test gets its own NEARNB_HOME and no provider keys."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.openai_server import ScriptedOpenAI

pytest_plugins = [
    "tests.support.backends",  # the store fixture, once per backend
    "tests.support.jupyterlab",  # the browser fixture (Debian's chromium, per test module)
]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# Provider credentials a developer may have exported must never reach a test:
# tests talk only to 127.0.0.1, and the fallback path must be exercised.
_KEY_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "FIREWORKS_API_KEY",
    "NEARAI_API_KEY",
    "NEARNB_LOCAL_MODEL",
)
_NEARNB_VARS = ("NEARNB_FALLBACK", "NEARNB_DISPLAY", "NEARNB_MODEL", "NEARNB_AGENTS_DIR")


@pytest.fixture(autouse=True)
def nearnb_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A fresh, private ``$NEARNB_HOME`` per test."""
    home = tmp_path_factory.mktemp("nearnb-home")
    monkeypatch.setenv("NEARNB_HOME", str(home))
    for var in _KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    for var in list(os.environ):
        if var.startswith("NEARNB_PROVIDER") or var in (
            "NEARNB_FALLBACK",
            "NEARNB_DISPLAY",
            "NEARNB_MODEL",
            "NEARNB_DATABASE_URL",  # a developer's database must not receive test data
        ):
            monkeypatch.delenv(var, raising=False)
    yield home


@pytest.fixture
def srv(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    """A real scripted OpenAI server on 127.0.0.1, registered as provider ``scripted``."""
    from tests.agent_helpers import use_scripted_provider

    with ScriptedOpenAI() as server:
        use_scripted_provider(monkeypatch, server)
        yield server
