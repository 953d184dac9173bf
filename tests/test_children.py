"""Agents calling agents: ``env.run_agent`` as NEAR defined it, on nearnb's child runs."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from nearnb.runs import run_agent, start_run
from nearnb.store import Store
from tests.agent_helpers import make_agent
from tests.support.openai_server import Reply, ScriptedOpenAI

CHILD = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"


def _pair(tmp_path: Path, parent_code: str, child_code: str = CHILD) -> Path:
    make_agent(tmp_path / "helper", child_code)
    return make_agent(tmp_path / "boss", parent_code)


def _step_events(result) -> list[tuple[str, dict]]:  # noqa: ANN001
    return [(e.event, e.data) for e in result.events if e.event.startswith("thread.run.step.")]


def test_fork_runs_the_child_on_a_copy_and_the_parent_stream_points_at_it(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(["Child ", "says hi"])
    parent = _pair(
        tmp_path,
        "tid = env.run_agent('helper', query='from the boss')\n"
        "env.add_reply(f'{tid}|{tid.status}|' + env.list_messages(thread_id=tid)[-1]['content'])\n",
    )
    store = Store()
    result = run_agent(parent, "start", store=store)
    assert result.status == "completed", result.traceback
    child_thread, status, answer = result.messages[-1].text.split("|")
    assert (status, answer) == ("completed", "Child says hi")
    assert child_thread != result.thread_id
    # FORK: the child's thread holds a copy of the parent's, then the query and the answer.
    texts = [m.text for m in store.list_messages(child_thread)]
    assert texts == ["start", "from the boss", "Child says hi"]
    assert [m.text for m in store.list_messages(result.thread_id)] == [
        "start",
        result.messages[-1].text,
    ]
    (child,) = result.children
    assert child.status == "completed" and child.thread_id == child_thread
    run = store.get_run(child.run_id)
    assert run is not None and run.metadata["nearnb.parent_run_id"] == result.run_id
    # The parent's stream: one tool_calls step naming the child, completed with its answer.
    steps = _step_events(result)
    assert [name for name, _ in steps] == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",  # the call, for clients that announce calls from deltas
        "thread.run.step.completed",
    ]
    call = steps[-1][1]["step_details"]["tool_calls"][0]["function"]
    assert call["name"] == "run_agent" and call["output"] == "Child says hi"
    arguments = json.loads(call["arguments"])
    assert (arguments["thread_id"], arguments["run_id"]) == (child_thread, child.run_id)
    assert steps[0][1]["metadata"]["nearnb.child_run_id"] == child.run_id
    # The child's own log is complete in the store (its own stream endpoint serves it).
    assert store.events(child.run_id)[-1].event == "done"


def test_same_and_child_thread_modes(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.script(["same"], ["child"])
    parent = _pair(
        tmp_path,
        "from nearai.agents.environment import Environment\n"
        "a = env.run_agent('helper', thread_mode='SAME')\n"
        "b = env.run_agent('local/helper/9.9', query='q', thread_mode=3)\n"  # NEAR's CHILD number
        "env.add_reply(a + ' ' + b)\n",
    )
    store = Store()
    result = run_agent(parent, "hello", store=store)
    assert result.status == "completed", result.traceback
    same, child = result.messages[-1].text.split()
    assert same == result.thread_id
    assert [m.text for m in store.list_messages(result.thread_id)][:2] == ["hello", "same"]
    assert [m.text for m in store.list_messages(child)] == ["q", "child"]
    thread = store.get_thread(child)
    assert thread is not None and thread.metadata["nearnb.parent_thread_id"] == result.thread_id


def test_with_callback_posts_the_childs_answer_to_the_parent(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(["answer from below"])
    parent = _pair(tmp_path, "env.run_agent('helper', query='go', run_mode='WITH_CALLBACK')\n")
    result = run_agent(parent, "hi")
    assert result.status == "completed", result.traceback
    assert [m.text for m in result.messages] == ["answer from below"]
    assert result.messages[0].metadata["nearnb.child_run_id"] == result.children[0].run_id


def test_a_failing_child_fails_its_step_not_the_parent(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    parent = _pair(
        tmp_path,
        "tid = env.run_agent('helper')\nenv.add_reply(f'{tid.status}: {tid.error}')\n",
        child_code="raise ValueError('child broke')\n",
    )
    result = run_agent(parent, "hi")
    assert result.status == "completed", result.traceback
    assert result.messages[-1].text == "failed: ValueError: child broke"
    name, data = _step_events(result)[-1]
    assert name == "thread.run.step.failed"
    assert "child broke" in data["last_error"]["message"]


def test_an_unknown_agent_id_is_an_error_the_agent_sees(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    parent = make_agent(
        tmp_path / "boss",
        "try:\n    env.run_agent('nobody/here/1')\nexcept Exception as exc:\n"
        "    env.add_reply(type(exc).__name__ + ': ' + str(exc))\n",
    )
    result = run_agent(parent, "hi")
    assert result.status == "completed", result.traceback
    assert result.messages[-1].text.startswith("AgentError: no agent 'nobody/here/1'")


def test_stopping_the_parent_stops_the_child(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    gate = threading.Event()
    srv.script(Reply.text(*["x "] * 50, gate=gate))
    parent = _pair(tmp_path, "env.run_agent('helper', query='slow')\nenv.add_reply('never')\n")
    store = Store()
    handle = start_run(parent, "hi", store=store)
    deadline = time.monotonic() + 30
    while not handle._ctx.children and time.monotonic() < deadline:
        time.sleep(0.01)
    assert handle._ctx.children, "the child did not start"
    handle.cancel("test")
    gate.set()
    result = handle.wait()
    assert result.status == "cancelled"
    assert result.children[0].status == "cancelled"
    assert [m.text for m in result.messages if m.text == "never"] == []
    assert _step_events(result)[-1][0] == "thread.run.step.cancelled"


def test_request_agent_input_and_next_actor(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    agent = make_agent(
        tmp_path / "hand",
        "assert env.get_next_actor() == 'user'\n"
        "env.set_next_actor('agent')\n"
        "env.add_reply(env.get_next_actor() + ' ' + env.get_primary_agent().get_full_name())\n"
        "env.request_agent_input()\n",
    )
    store = Store()
    result = run_agent(agent, "hi", store=store)
    assert result.status == "requires_action", result.traceback
    assert result.messages[-1].text == "agent local/hand/0.1.0"
    run = store.get_run(result.run_id)
    assert run is not None and run.required_action == {"type": "agent_input"}
