"""Helpers to write throw-away agent folders and point them at a scripted server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.openai_server import ScriptedOpenAI

PROVIDER = "scripted"
API_KEY = "sk-test-SECRET-do-not-leak"

#: agent.py of an agent that streams one answer to the thread.
STREAM_AGENT = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
#: agent.py of an agent that asks for its ``add`` tool and runs it (a run step of its own).
TOOL_AGENT = '''
def add(a: int, b: int) -> int:
    """Add two numbers.
    a: the first number
    b: the second number
    """
    return a + b

env.get_tool_registry().register_tool(add)
env.completion_and_run_tools(
    [{"role": "user", "content": "add"}],
    tools=env.get_tool_registry().get_all_tool_definitions(),
)
'''
#: agent.py of a sub-agent that streams an answer, then runs its own child ``leaf``.
TALKER_AGENT = STREAM_AGENT + "env.run_agent('leaf', query='deeper')\n"


def make_agent(
    folder: Path,
    code: str,
    *,
    show_streaming_message: bool | None = None,
    defaults: dict[str, Any] | None = None,
) -> Path:
    """An agent folder whose default provider is the scripted server."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agent.py").write_text(code)
    agent: dict[str, Any] = {
        "defaults": {"model": "test-model", "model_provider": PROVIDER, **(defaults or {})}
    }
    if show_streaming_message is not None:
        agent["show_streaming_message"] = show_streaming_message
    metadata = {"name": folder.name, "version": "0.1.0", "details": {"agent": agent}}
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def use_scripted_provider(monkeypatch: pytest.MonkeyPatch, server: ScriptedOpenAI) -> None:
    """Register the scripted server as provider ``scripted`` through env vars."""
    monkeypatch.setenv(f"NEARNB_PROVIDER_{PROVIDER.upper()}_BASE_URL", server.base_url)
    monkeypatch.setenv(f"NEARNB_PROVIDER_{PROVIDER.upper()}_API_KEY", API_KEY)
