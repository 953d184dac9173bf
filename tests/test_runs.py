"""Run lifecycle: how runs end, and that bad input loses nothing."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from nearnb.agents import AgentError
from nearnb.events import Event
from nearnb.recording import recorded_calls
from nearnb.runs import run_agent, start_run
from nearnb.store import Store, StoreError
from tests.agent_helpers import API_KEY, make_agent
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.support.waiting import wait_until

STREAM_REPLY = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"


def test_agent_exception_fails_the_run_with_traceback(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.script(["partial ", "answer"])
    agent = make_agent(
        tmp_path / "raiser",
        (
            "s = env.completion([], stream=True)\n"
            "next(s)\n"
            "next(s)\n"
            "raise ValueError('agent blew up')\n"
        ),
    )
    result = run_agent(agent, "go")
    assert result.status == "failed"
    assert result.error == "ValueError: agent blew up"
    assert "agent.py" in result.traceback and "ValueError: agent blew up" in result.traceback
    # the partial message is kept, as incomplete
    assert [(m.text, m.status) for m in result.messages] == [("partial ", "incomplete")]
    run = Store().get_run(result.run_id)
    assert run.status == "failed" and run.last_error.message == "ValueError: agent blew up"
    assert [e.event for e in result.events][-2:] == ["thread.run.failed", "done"]


def test_provider_dropping_mid_stream_fails_and_keeps_partial_text(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(Reply.text("Hel", "lo ", "wor", "ld", drop_after=2))
    result = run_agent(make_agent(tmp_path / "drop", STREAM_REPLY), "go")
    assert result.status == "failed", result.events
    assert result.messages[0].text == "Hello " and result.messages[0].status == "incomplete"
    assert result.messages[0].incomplete_details.reason == "run_failed"
    stored = Store().list_messages(result.thread_id)
    assert [(m.text, m.status) for m in stored] == [("go", "completed"), ("Hello ", "incomplete")]


def test_unauthorized_provider_fails_clearly_without_leaking_the_key(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(Reply.error(401))
    result = run_agent(make_agent(tmp_path / "auth", STREAM_REPLY), "go")
    assert result.status == "failed"
    assert "unauthorized" in result.error.lower()
    dump = json.dumps([e.data for e in result.events]) + (result.traceback or "")
    assert API_KEY not in dump


def test_syntax_error_in_agent_fails_the_run(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    result = run_agent(make_agent(tmp_path / "syntax", "def broken(:\n"), "go")
    assert result.status == "failed" and result.error.startswith("SyntaxError")
    assert "agent.py" in result.traceback


def test_broken_metadata_raises_before_anything_is_written(tmp_path: Path) -> None:
    store = Store()
    thread = store.create_thread()
    folder = make_agent(tmp_path / "broken", "pass\n")
    (folder / "metadata.json").write_text('{"name": "broken", "version": 1.0,')
    with pytest.raises(AgentError, match="not valid JSON"):
        start_run(folder, "hello", thread_id=thread.id, store=store)
    assert store.list_messages(thread.id) == []  # nothing half-written
    assert store.get_thread(thread.id) == thread
    with pytest.raises(StoreError, match="thread not found"):
        start_run(make_agent(tmp_path / "ok", "pass\n"), "x", thread_id="thread_missing")


def test_thread_continues_across_runs(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.script(["first"], ["second"])
    agent = make_agent(tmp_path / "conv", STREAM_REPLY)
    one = run_agent(agent, "q1")
    two = run_agent(agent, "q2", thread_id=one.thread_id)
    assert two.thread_id == one.thread_id and two.run_id != one.run_id
    sent = [(m["role"], m["content"]) for m in srv.requests[1].body["messages"]]
    assert sent == [("user", "q1"), ("assistant", "first"), ("user", "q2")]


def test_cancel_from_another_thread_keeps_partial_message(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(Reply.text(*["tick "] * 200, delay=0.02))
    handle = start_run(make_agent(tmp_path / "long", STREAM_REPLY), "go")
    deadline = time.time() + 10
    while handle.state.deltas < 3 and time.time() < deadline:
        time.sleep(0.01)
    threading.Thread(target=handle.cancel).start()
    result = handle.wait(timeout=10)
    assert result.status == "cancelled"
    assert 3 <= result.deltas < 200
    message = result.messages[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "run_cancelled"
    assert message.text == "tick " * result.deltas
    assert Store().get_run(result.run_id).status == "cancelled"


def test_cancel_reaches_a_run_whose_provider_has_gone_silent(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    """A read blocked on a provider that sends nothing never sees the cancel flag; the
    cancel hook shuts the connection down, so the run ends without the provider's help."""
    gate = threading.Event()  # the server holds every chunk after the role chunk until set
    srv.script(Reply.text("never ", "sent", gate=gate))
    handle = start_run(make_agent(tmp_path / "silent", STREAM_REPLY), "go")
    try:
        wait_until(lambda: srv.requests, "the provider request")
        # Not a wait for a condition but for an interleaving: without it the cancel may land
        # before the read blocks, which the flag alone handles (the test then cannot tell).
        time.sleep(0.3)
        handle.cancel()
        result = handle.wait(timeout=20)  # the server would hold the stream for 60 s
        assert not gate.is_set()
        assert result.status == "cancelled", result.error
        assert result.deltas == 0
        assert Store().get_run(result.run_id).status == "cancelled"
        # recorded as the reader leaving, so a replay does not pass it off as a whole answer
        _, calls = recorded_calls(Store(), result.run_id)
        assert [response["reason"] for _, _, response in calls] == ["closed"]
    finally:
        gate.set()


def test_keyboard_interrupt_while_waiting_cancels_the_run(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(Reply.text(*["tock "] * 200, delay=0.02))
    first_delta = threading.Event()

    def on_event(event: Event) -> None:
        if event.event == "thread.message.delta":
            first_delta.set()

    def ctrl_c_after_first_delta() -> None:
        # The condition, not a guess: a cold ``import openai`` on a loaded machine can take
        # longer than any fixed delay. A run that ends without streaming gets no Ctrl-C (it
        # would hit the test, not the wait) and fails the assertions below.
        while not handle.done:
            if first_delta.wait(0.05):
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, while the main thread waits
                return

    handle = start_run(make_agent(tmp_path / "interrupt", STREAM_REPLY), "go", on_event=on_event)
    interrupter = threading.Thread(target=ctrl_c_after_first_delta)
    interrupter.start()
    result = handle.wait(timeout=60)
    interrupter.join()
    assert first_delta.is_set(), "the run never streamed a delta"
    assert result.status == "cancelled"
    assert 1 <= result.deltas < 200
    message = result.messages[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "run_cancelled"
    assert message.text == "tock " * result.deltas  # the partial text, every delta kept


def test_subscribers_get_every_event_live_and_a_broken_one_is_harmless(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(["a", "b"])
    seen: list[int] = []

    def broken(event: object) -> None:
        raise RuntimeError("view bug")

    handle = start_run(
        make_agent(tmp_path / "subs", STREAM_REPLY), "go", on_event=lambda e: seen.append(e.seq)
    )
    handle.subscribe(broken)
    late: list[int] = []
    handle.subscribe(lambda e: late.append(e.seq))
    result = handle.wait()
    assert result.status == "completed"
    assert seen == late == [e.seq for e in result.events]


def test_files_are_confined_to_the_thread(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    agent = make_agent(
        tmp_path / "files",
        (
            "from nearnb.environment import FileAccessError\n"
            "env.write_file('notes/a.txt', 'hello')\n"
            "assert env.read_file('notes/a.txt') == 'hello'\n"
            "assert env.list_files('notes') == ['a.txt']\n"
            "assert env.read_file('metadata.json').startswith('{')  # the agent's own files\n"
            "assert env.read_file('missing.txt') is None\n"
            "refused = []\n"
            "for bad in ['../escape.txt', '/etc/passwd', 'notes/../../x']:\n"
            "    try:\n"
            "        env.write_file(bad, 'x')\n"
            "    except FileAccessError as exc:\n"
            "        refused.append(str(exc))\n"
            "env.add_reply(str(len(refused)))\n"
        ),
    )
    result = run_agent(agent, "go")
    assert result.status == "completed", result.traceback
    assert result.messages[0].text == "3"
    assert not (tmp_path / "escape.txt").exists()
    # the output-file note is stored but hidden, as in NEAR
    hidden = [m for m in Store().list_messages(result.thread_id) if m.hidden]
    assert [m.message_type for m in hidden] == ["system:output_file"]


def test_list_messages_hides_system_and_agent_types(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    agent = make_agent(
        tmp_path / "hide",
        (
            "env.add_reply('log line', message_type='system:log')\n"
            "env.add_reply('thinking', message_type='agent:scratch')\n"
            "env.add_message('assistant', 'visible', topic='x')\n"
            "msgs = env.list_messages()\n"
            "assert [m['content'] for m in msgs] == ['go', 'visible'], msgs\n"
            "assert set(msgs[0]) == {'id', 'content', 'role', 'attachments'}\n"
            "assert env.get_last_message()['content'] == 'go'\n"
            "assert env.get_last_message('assistant')['content'] == 'visible'\n"
            "assert env.get_thread().id == env.thread_id\n"
        ),
    )
    result = run_agent(agent, "go")
    assert result.status == "completed", result.traceback
    assert [m.text for m in result.messages] == ["visible"]


def test_tools_run_as_run_steps_and_errors_become_results(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(Reply.tool_call("add", {"a": 2, "b": 3}), Reply.tool_call("explode", {}))
    agent = make_agent(
        tmp_path / "tools",
        (
            "reg = env.get_tool_registry()\n"
            "def add(a: int, b: int) -> int:\n"
            "    '''Add numbers.'''\n"
            "    return a + b\n"
            "def explode() -> str:\n"
            "    '''Fails.'''\n"
            "    raise RuntimeError('bad tool')\n"
            "reg.register_tool(add)\n"
            "reg.register_tool(explode)\n"
            "messages = [{'role': 'user', 'content': 'add'}]\n"
            "env.completion_and_run_tools(messages)\n"
            "env.completions_and_run_tools(messages)\n"
            "env.add_reply(messages[-1]['content'] + ' | ' + messages[2]['content'])\n"
        ),
    )
    result = run_agent(agent, "go")
    assert result.status == "completed", result.traceback
    assert result.messages[-1].text == "Error: RuntimeError: bad tool | 5"
    tools_sent = srv.requests[0].body["tools"]
    assert {t["function"]["name"] for t in tools_sent} == {"add", "explode"}
    steps = [e for e in result.events if e.event.startswith("thread.run.step.")]
    assert [e.event for e in steps] == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.completed",
    ] * 2
    outputs = [
        e.data["step_details"]["tool_calls"][0]["function"]["output"]
        for e in steps
        if e.event == "thread.run.step.completed"
    ]
    assert outputs == ["5", "Error: RuntimeError: bad tool"]


def test_logs_go_to_thread_files_and_with_debug_to_hidden_messages(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    code = (
        "env.add_system_log('sys line')\n"
        "env.add_agent_log('agent line')\n"
        "env.add_reply(repr([m['content'] for m in env.list_messages()]))\n"
    )
    agent = make_agent(tmp_path / "logs", code)
    store = Store()
    result = run_agent(agent, "hi", store=store, env_vars={"DEBUG": "true"})
    assert result.status == "completed", result.traceback
    files = store.thread_dir(result.thread_id)
    assert (files / "system_log.txt").read_text() == "INFO sys line\n"
    assert (files / "agent_log.txt").read_text() == "INFO agent line\n"
    stored = store.list_messages(result.thread_id)
    assert [m.message_type for m in stored if m.hidden] == ["system:log", "agent:log"]
    assert result.messages[-1].text == repr(["hi"])  # logs are hidden from the agent
