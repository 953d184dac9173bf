"""``%near_agent`` in a real (in-process) IPython shell, on real runs.

The agent's model is the scripted OpenAI-compatible server over HTTP; the
display is ``plain``, which IPython's terminal display publisher prints.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from nearnb.runs import RunHandle, RunResult
from nearnb.store import Store
from tests.agent_helpers import make_agent, use_scripted_provider
from tests.support.openai_server import Reply, ScriptedOpenAI

ECHO = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"


@pytest.fixture
def srv(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as server:
        server.default = Reply.text("Know ", "thyself.")
        use_scripted_provider(monkeypatch, server)
        yield server


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("NEARNB_DISPLAY", "plain")
    shell = InteractiveShell.instance()
    result = shell.run_cell("%load_ext nearnb")
    assert result.success
    yield shell
    shell.run_cell("%reload_ext nearnb")  # forget remembered threads between tests


@pytest.fixture
def agent(tmp_path: Path) -> Path:
    return make_agent(tmp_path / "echo", ECHO)


def run(ip: InteractiveShell, code: str) -> Any:
    result = ip.run_cell(code)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def test_line_magic_returns_the_run_result(
    ip: InteractiveShell, srv: ScriptedOpenAI, agent: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(ip, f'%near_agent {agent} "What is virtue?"')
    assert isinstance(result, RunResult)
    assert result.status == "completed" and result.text == "Know thyself."
    assert ip.user_ns["_"] is result  # the cell's value: _ and Out[n] work
    assert srv.requests[0].body["messages"][-1]["content"] == "What is virtue?"
    out = capsys.readouterr().out
    assert "echo · scripted::test-model · completed · 2 deltas" in out  # the static bundle
    repr_line = "<RunResult completed · echo · scripted::test-model · 1 answer · 2 deltas"
    assert f"{repr_line} · thread_id={result.thread_id}" in out


def test_cell_magic_takes_the_body_as_message_and_continues_the_thread(
    ip: InteractiveShell, srv: ScriptedOpenAI, agent: Path
) -> None:
    first = run(ip, f"%%near_agent {agent}\nWhat is virtue?\n")
    second = run(ip, f"%%near_agent {agent}\nAnd justice?")
    assert second.thread_id == first.thread_id  # a notebook is a conversation
    history = [m["content"] for m in srv.requests[1].body["messages"]]
    assert history == ["What is virtue?", "Know thyself.", "And justice?"]
    third = run(ip, f"%%near_agent {agent} --new-thread\nHello again")
    assert third.thread_id != first.thread_id
    fourth = run(ip, f"%%near_agent {agent} --thread {first.thread_id}\nBack to virtue")
    assert fourth.thread_id == first.thread_id
    assert len(Store().list_messages(first.thread_id)) == 6


def test_no_wait_returns_the_handle_at_once(
    ip: InteractiveShell, srv: ScriptedOpenAI, agent: Path
) -> None:
    srv.default = Reply.text("slow ", "answer", delay=0.1)
    handle = run(ip, f'%near_agent {agent} "hi" --no-wait')
    assert isinstance(handle, RunHandle) and not handle.done
    assert handle.wait().status == "completed"


def test_a_failing_agent_returns_a_failed_result(
    ip: InteractiveShell, srv: ScriptedOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = make_agent(tmp_path / "bad", "raise RuntimeError('agent broke')\n")
    result = run(ip, f'%near_agent {bad} "hi"')
    assert result.status == "failed"
    assert "error: RuntimeError: agent broke" in capsys.readouterr().out


def test_help_prints_usage(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(ip, "%near_agent --help") is None
    out = capsys.readouterr().out
    assert out.startswith("usage: %near_agent")
    assert "--new-thread" in out and "--no-wait" in out and "--display" in out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%near_agent --bogus", "unrecognized arguments: --bogus"),
        ("%near_agent", "missing AGENT"),
        ("%near_agent no-such-agent hi", "agent not found: no-such-agent"),
        ("%near_agent AGENT hi --display fancy", "invalid choice: 'fancy'"),
        ("%near_agent AGENT 'unbalanced", "No closing quotation"),
        ("%near_agent AGENT hi --thread thread_nope", "thread_nope"),
        ("%%near_agent AGENT extra words\nbody", "put the message in the cell body"),
    ],
)
def test_mistakes_are_one_clear_line(
    ip: InteractiveShell, srv: ScriptedOpenAI, agent: Path, line: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message) as info:
        run(ip, line.replace("AGENT", str(agent)))
    assert "\n" not in str(info.value)
    assert srv.requests == []


def test_agents_are_found_by_name_in_the_configured_dirs(
    ip: InteractiveShell, srv: ScriptedOpenAI, agent: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEARNB_AGENTS_DIR", str(agent.parent))
    assert run(ip, '%near_agent echo "hi"').status == "completed"


def test_attach_is_a_call_into_nearnb_attach(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []
    from nearnb.hub import client

    monkeypatch.setattr(client, "attach", lambda url, **kw: calls.append((url, kw)) or "result")
    out = run(ip, "%near_agent --attach http://127.0.0.1:9/v1 --thread t1 --run r1")
    assert out == "result"
    assert calls == [
        ("http://127.0.0.1:9/v1", {"thread_id": "t1", "run_id": "r1", "display": "auto"})
    ]
    with pytest.raises(UsageError, match="--run needs --attach"):
        run(ip, "%near_agent somewhere --run r1")
