"""``replay:FILE``: re-running an agent offline against a recorded run.

Each original run talks to the scripted OpenAI server through the real
provider and is exported; the re-runs then happen with the provider's
variables removed and ``NEARNB_LOCAL_MODEL`` pointing at a file that does
not exist, so any model call (HTTP or embedded) would fail the test.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path

import httpx
import pytest

from nearnb.providers import ProviderError, resolve
from nearnb.providers.replay import ReplayMismatch, ReplayProvider
from nearnb.recording import recorded_calls
from nearnb.replayfile import Recording
from nearnb.runs import RunResult, run_agent
from nearnb.testing import Replayer
from tests.agent_helpers import PROVIDER, make_agent
from tests.support.hub import running_hub
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.test_cli import nearnb as nearnb_cli

ROOT = Path(__file__).resolve().parents[1]
STREAMING = (ROOT / "examples" / "streaming-example" / "agent.py").read_text()
TOOLISH = """\
first = env.completion(env.list_messages(), temperature=0.5)
stream = env.completion(
    [{"role": "system", "content": "refine: " + first}] + env.list_messages(), stream=True
)
env.add_reply(stream)
"""


def _record(
    srv: ScriptedOpenAI, folder: Path, code: str, *replies: object
) -> tuple[RunResult, Path]:
    srv.script(*replies)  # type: ignore[arg-type]
    agent = make_agent(folder, code)
    result = run_agent(agent, "What is virtue?")
    assert result.status == "completed", result.error
    return result, result.save(folder.parent / f"{folder.name}.jsonl")


def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No provider credentials, no base URL, and an embedded model that cannot load."""
    for var in list(os.environ):
        if var.startswith("NEARNB_PROVIDER_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("NEARNB_LOCAL_MODEL", str(tmp_path / "missing.gguf"))


def test_export_then_replay_gives_identical_messages_with_no_model(
    srv: ScriptedOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    nearnb_replay: Replayer,
) -> None:
    original, path = _record(
        srv, tmp_path / "socrates", STREAMING, ["Know ", "thyself."], ["The ", "Forms."]
    )
    served = len(srv.requests)
    _offline(monkeypatch, tmp_path)
    with pytest.raises(ProviderError):  # proof: no model is reachable any more
        resolve(None, PROVIDER).provider.stream([{"role": "user", "content": "x"}], model="m")

    replayed = nearnb_replay(tmp_path / "socrates", path)
    assert replayed.status == "completed", replayed.error
    assert [m.text for m in replayed.messages] == [m.text for m in original.messages]
    assert [e.event for e in replayed.events] == [e.event for e in original.events]
    assert replayed.deltas == original.deltas and replayed.thread_id != original.thread_id
    assert replayed.model == "replay::scripted::test-model"
    assert replayed.text == nearnb_replay.load(path).text
    assert len(srv.requests) == served  # the server heard nothing from the replay
    # the replay is recorded too (chunks re-serialised, not from a wire): same contents
    _, calls = recorded_calls(nearnb_replay.store, replayed.run_id)
    recorded = [call.chunks for call in nearnb_replay.load(path).calls]
    assert [response["chunks"] for _, _, response in calls] == recorded  # type: ignore[index]


def test_replay_through_run_agent_cli_and_hub_with_a_new_message(
    srv: ScriptedOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = _record(srv, tmp_path / "plain", TOOLISH, ["Virtue is knowledge."], ["Refined."])
    _offline(monkeypatch, tmp_path)
    provider = f"replay:{path}"

    result = run_agent(tmp_path / "plain", "What is virtue?", provider=provider)
    assert (result.status, result.text) == ("completed", "Refined."), result.error

    done = nearnb_cli("run", str(tmp_path / "plain"), "What is virtue?", "--provider", provider)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Refined."

    with running_hub(agents_dir=tmp_path) as hub:
        base = f"{hub.url}/v1"
        thread = httpx.post(f"{base}/threads", json={}, timeout=30).json()
        body = {
            "assistant_id": "plain",
            "provider": provider,
            "stream": True,
            "additional_messages": [{"role": "user", "content": "What is virtue?"}],
        }
        text = httpx.post(f"{base}/threads/{thread['id']}/runs", json=body, timeout=60).text
    assert "event: thread.run.completed" in text and "Refined." in text


def test_a_changed_prompt_fails_the_run_with_a_diff_of_the_requests(
    srv: ScriptedOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nearnb_replay: Replayer
) -> None:
    _, path = _record(srv, tmp_path / "socrates", STREAMING, ["Know."], ["Forms."])
    _offline(monkeypatch, tmp_path)
    changed = STREAMING.replace("Socrates", "Aristotle")
    # an agent that swallows every Exception still cannot hide a mismatch
    code = f"try:\n    exec({changed!r})\nexcept Exception:\n    env.add_reply('fallback')\n"
    (tmp_path / "socrates" / "agent.py").write_text(code)

    result = nearnb_replay(tmp_path / "socrates", path)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith("ReplayMismatch: request 1 does not match socrates.jsonl")
    lines = result.error.splitlines()
    assert '-   "content": "respond as though you were Socrates",' in lines
    assert '+   "content": "respond as though you were Aristotle",' in lines
    assert len(lines) < 20  # compact: the diff, not both requests
    assert [m.text for m in result.messages] == []


def test_a_changed_parameter_and_an_extra_request_are_mismatches(
    srv: ScriptedOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nearnb_replay: Replayer
) -> None:
    _, path = _record(srv, tmp_path / "plain", TOOLISH, ["Knowledge."], ["Refined."])
    _offline(monkeypatch, tmp_path)
    agent = tmp_path / "plain" / "agent.py"

    agent.write_text(TOOLISH.replace("temperature=0.5", "temperature=0.9"))
    result = nearnb_replay(tmp_path / "plain", path)
    assert result.status == "failed" and result.error is not None
    assert '-  "temperature": 0.5' in result.error and '+  "temperature": 0.9' in result.error

    agent.write_text(TOOLISH + "env.add_reply(env.completion(env.list_messages()))\n")
    result = nearnb_replay(tmp_path / "plain", path)
    assert result.status == "failed" and result.error is not None
    assert "request 3 is not in plain.jsonl, which has 2 requests" in result.error


def test_a_recorded_provider_error_is_replayed(
    srv: ScriptedOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nearnb_replay: Replayer
) -> None:
    code = "try:\n    env.completion(env.list_messages())\nexcept Exception as e:\n"
    code += "    env.add_reply(f'caught {type(e).__name__}')\n"
    srv.script(Reply.error(400, "bad request, really"))
    agent = make_agent(tmp_path / "careful", code)
    original = run_agent(agent, "hi")
    assert original.text == "caught ProviderError"
    path = original.save(tmp_path / "careful.jsonl")
    _offline(monkeypatch, tmp_path)
    replayed = nearnb_replay(agent, path)
    assert (replayed.status, replayed.text) == ("completed", "caught ProviderError")


def test_a_file_that_is_not_a_recording_fails_the_run_without_echoing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _offline(monkeypatch, tmp_path)
    secret = tmp_path / "notes.jsonl"
    secret.write_text('{"api": "do-not-print-me"}\n')
    agent = make_agent(tmp_path / "a", "env.add_reply(env.completion(env.list_messages()))\n")
    result = run_agent(agent, "hi", provider=f"replay:{secret}")
    assert result.status == "failed" and result.error is not None
    assert "is not a nearnb run recording" in result.error
    assert "do-not-print-me" not in result.error
    result = run_agent(agent, "hi", provider=f"replay:{tmp_path / 'nope.jsonl'}")
    assert result.status == "failed" and "cannot read recording" in (result.error or "")


def test_replay_wins_over_a_session_wide_provider_and_shares_one_position(
    srv: ScriptedOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = _record(srv, tmp_path / "plain", TOOLISH, ["Knowledge."], ["Refined."])
    monkeypatch.setenv("NEARNB_PROVIDER", "openai")
    resolved = resolve("scripted::test-model", f"replay:{path}")
    assert isinstance(resolved.provider, ReplayProvider)
    assert resolved.label == "replay::scripted::test-model"
    # the second call names its model explicitly: a second resolution, the same position
    code = TOOLISH.replace("stream=True", "stream=True, model='test-model'")
    (tmp_path / "plain" / "agent.py").write_text(code)
    result = run_agent(tmp_path / "plain", "What is virtue?", provider=f"replay:{path}")
    assert (result.status, result.text) == ("completed", "Refined."), result.error
    with pytest.raises(ReplayMismatch, match="request 1 is not in empty.jsonl"):
        ReplayProvider(Recording({}, [], [], [], tmp_path / "empty.jsonl")).complete([], model="")


def test_the_fixture_is_a_registered_pytest_plugin() -> None:
    """``pip install nearnb`` is enough: pytest finds the fixture through pytest11."""
    plugins = {e.value for e in entry_points(group="pytest11")}
    assert "nearnb.testing" in plugins


def test_the_hub_reads_replay_files_only_from_what_it_serves(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    """A run request's replay:PATH outside the agents folders and $NEARNB_HOME is refused,
    before anything is written: a client must not probe which files exist."""
    make_agent(tmp_path / "agents" / "plain", "env.add_reply('hi')\n")
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text("{}\n")
    with running_hub(agents_dir=tmp_path / "agents") as hub:
        base = f"{hub.url}/v1"
        thread = httpx.post(f"{base}/threads", json={}, timeout=30).json()
        for path in (outside, tmp_path / "missing.jsonl", "/etc/passwd"):
            body = {"assistant_id": "plain", "provider": f"replay:{path}"}
            answer = httpx.post(f"{base}/threads/{thread['id']}/runs", json=body, timeout=30)
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["param"] == "provider"
            assert str(path) not in answer.text
        runs = httpx.get(f"{base}/threads/{thread['id']}/runs", timeout=30).json()
    assert runs["data"] == []
