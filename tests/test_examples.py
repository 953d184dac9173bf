"""The shipped example agents, end to end on the real embedded model.

No API key is set (conftest clears them), so the examples' Fireworks default
falls back to SmolLM2 with a notice. Assertions are about shape — two
replies, deltas counted, notice present — never about the model's words.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from nearnb.runs import run_agent
from nearnb.store import Store
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.local_model


@pytest.fixture(autouse=True)
def short_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the embedded model's metadata-default answers short for the suite."""
    monkeypatch.setenv("NEARNB_LOCAL_MAX_TOKENS", "24")


def test_streaming_example_streams_socrates_then_plato() -> None:
    result = run_agent(EXAMPLES / "streaming-example", "What is virtue?")
    assert result.status == "completed", result.traceback
    assert len(result.messages) == 2 and all(m.text.strip() for m in result.messages)
    assert result.model == "local::smollm2"
    assert result.notice and "FIREWORKS_API_KEY" in result.notice
    per_message = [
        sum(1 for e in result.events if e.event == "thread.message.delta" and e.data["id"] == m.id)
        for m in result.messages
    ]
    assert all(n > 1 for n in per_message) and sum(per_message) == result.deltas
    notice_at = next(
        i
        for i, e in enumerate(result.events)
        if e.event == "thread.message.completed"
        and e.data["metadata"].get("message_type") == "system:notice"
    )
    in_progress_at = next(
        i for i, e in enumerate(result.events) if e.event == "thread.run.in_progress"
    )
    assert notice_at < in_progress_at  # the notice is visible before any text


def test_fallback_can_be_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEARNB_FALLBACK", "error")
    result = run_agent(EXAMPLES / "streaming-example", "What is virtue?")
    assert result.status == "failed" and "FIREWORKS_API_KEY" in (result.error or "")
    assert result.messages == []


def test_simple_and_intermediate_examples() -> None:
    simple = run_agent(EXAMPLES / "simple-agent", "What is 2+2?")
    assert simple.status == "completed" and simple.deltas == 0 and simple.messages[0].text.strip()
    assert simple.notice and "No provider credentials are set" in simple.notice
    inter = run_agent(EXAMPLES / "intermediate-example", "Why is the sky blue?")
    assert inter.status == "completed" and len(inter.messages) == 1
    hidden = [m for m in Store().list_messages(inter.thread_id) if m.hidden]
    assert [m.message_type for m in hidden if m.message_type != "system:notice"] == [
        "agent:intermediate"
    ]
    assert inter.deltas > len(
        [
            e
            for e in inter.events
            if e.event == "thread.message.delta" and e.data["id"] == inter.messages[0].id
        ]
    )


def test_cli_run_prints_replies_and_fails_nonzero(tmp_path: pytest.TempPathFactory) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nearnb.cli", "run", str(EXAMPLES / "simple-agent"), "Hi!"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "agent.py").write_text("raise RuntimeError('nope')\n")
    (broken / "metadata.json").write_text('{"name": "broken", "version": "1"}')
    failed = subprocess.run(
        [sys.executable, "-m", "nearnb.cli", "run", str(broken), "Hi!"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode == 1 and "RuntimeError: nope" in failed.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "nearnb.cli", "run", "no-such-agent", "Hi"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("nearnb: agent not found")
