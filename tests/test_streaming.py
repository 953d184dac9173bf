"""StreamHandler: what NEAR's docs promised, against a real HTTP provider."""

from __future__ import annotations

import json
from pathlib import Path

from nearnb.runs import run_agent
from nearnb.store import Store
from tests.agent_helpers import make_agent
from tests.support.openai_server import Reply, ScriptedOpenAI


def names(result) -> list[str]:  # noqa: ANN001
    return [e.event for e in result.events]


def test_docs_example_iterate_model_dump_then_add_reply(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    """The docs' nested loop, chunk.model_dump(), then add_reply(stream)."""
    srv.script(["Know ", "thy", "self", "."])
    agent = make_agent(
        tmp_path / "docs",
        (
            "import json\n"
            "response_stream = env.completion([{'role': 'user', 'content': 'hi'}], stream=True)\n"
            "seen = []\n"
            "for event in response_stream:\n"
            "    for _idx, chunk in enumerate(response_stream):\n"
            "        seen.append(json.dumps(chunk.model_dump()))\n"
            "assert list(response_stream) == []  # exhausted: yields nothing\n"
            "env.add_reply(response_stream)\n"
            "env.write_file('seen.json', json.dumps(seen), logging=False)\n"
        ),
    )
    result = run_agent(agent, "hello")
    assert result.status == "completed", result.traceback
    assert [m.text for m in result.messages] == ["Know thyself."]
    seen = [
        json.loads(c)
        for c in json.loads((Store().thread_dir(result.thread_id) / "seen.json").read_text())
    ]
    assert seen and all(c["object"] == "chat.completion.chunk" for c in seen)


def test_event_order_for_one_streamed_reply(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.script(["a", "", "b", "c"])
    agent = make_agent(tmp_path / "one", "env.add_reply(env.completion([], stream=True))\n")
    result = run_agent(agent, "go")
    assert names(result) == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.delta",
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.completed",
        "done",
    ]
    assert [e.seq for e in result.events] == list(range(1, len(result.events) + 1))
    completed = result.events[-3].data
    assert completed["content"][0]["text"]["value"] == "abc" and completed["status"] == "completed"
    delta_ids = {e.data["id"] for e in result.events if e.event == "thread.message.delta"}
    assert delta_ids == {completed["id"]} and result.deltas == 3
    # The store's event log is exactly what was emitted: replay serves it.
    logged = Store().events(result.run_id)
    assert [(e.seq, e.event, e.data) for e in logged] == [
        (e.seq, e.event, e.data) for e in result.events
    ]


def test_partial_iteration_then_add_reply_stores_the_full_text(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(["one ", "two ", "three"])
    agent = make_agent(
        tmp_path / "partial",
        (
            "s = env.completion([], stream=True)\n"
            "first = next(iter(s))\n"
            "env.add_reply(s)\n"
            "assert str(s) == 'one two three'\n"
        ),
    )
    result = run_agent(agent, "go")
    assert result.status == "completed", result.traceback
    assert [m.text for m in result.messages] == ["one two three"]
    thread = Store().list_messages(result.thread_id)
    assert [(m.role, m.text) for m in thread] == [("user", "go"), ("assistant", "one two three")]


def test_socrates_then_plato_are_two_messages(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.script(["Know ", "thyself."], ["The ", "Forms."])
    code = (Path(__file__).parents[1] / "examples" / "streaming-example" / "agent.py").read_text()
    agent = make_agent(tmp_path / "streaming", code)
    result = run_agent(agent, "What is virtue?")
    assert [m.text for m in result.messages] == ["Know thyself.", "The Forms."]
    assert result.messages[0].id != result.messages[1].id and result.deltas == 4
    created = [e.data["id"] for e in result.events if e.event == "thread.message.created"]
    assert created == [m.id for m in result.messages]
    # Both personas were given the same history (the user's question).
    assert srv.requests[0].body["messages"][1:] == srv.requests[1].body["messages"][1:]


def test_intermediate_stream_is_hidden_and_unconsumed_stream_is_drained(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(["draft ", "notes"], ["final"], ["never ", "read"])
    agent = make_agent(
        tmp_path / "inter",
        (
            "stream = env.completion([], stream=True)\n"
            "draft = ''.join(c.choices[0].delta.content or '' for c in stream if c.choices)\n"
            "env.add_reply(env.completion([{'role': 'system', 'content': draft}], stream=True))\n"
            "env.completion([], stream=True)  # nobody consumes this one\n"
        ),
    )
    result = run_agent(agent, "q")
    assert result.status == "completed", result.traceback
    assert [m.text for m in result.messages] == ["final"]
    assert result.deltas == 5  # the unconsumed stream was drained at the end
    completed = [e.data for e in result.events if e.event == "thread.message.completed"]
    assert [
        (c["content"][0]["text"]["value"], c["metadata"].get("message_type")) for c in completed
    ] == [
        ("draft notes", "agent:intermediate"),
        ("final", None),
        ("never read", "agent:intermediate"),
    ]
    # Each message's completed event comes before the next message starts.
    order = [e.event for e in result.events if e.event.startswith("thread.message.c")]
    assert order == ["thread.message.created", "thread.message.completed"] * 3
    visible = [m.text for m in Store().list_messages(result.thread_id) if not m.hidden]
    assert visible == ["q", "final"]


def test_tool_call_deltas_are_accumulated(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.script(Reply.tool_call("get_time", {"tz": "UTC"}))
    agent = make_agent(
        tmp_path / "tc",
        (
            "s = env.completion([], stream=True)\n"
            "s.drain()\n"
            "call = s.tool_calls[0]\n"
            "env.add_reply(call['function']['name'] + ' ' + call['function']['arguments'])\n"
            "assert s.completion().choices[0].message.tool_calls[0].function.name == 'get_time'\n"
        ),
    )
    result = run_agent(agent, "time?")
    assert result.status == "completed", result.traceback
    name, args = result.messages[0].text.split(" ", 1)
    assert name == "get_time" and json.loads(args) == {"tz": "UTC"}


def test_per_call_parameters_override_metadata_defaults(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    """NEAR silently ignored per-call temperature/max_tokens; nearnb honours them."""
    srv.script(["x"], ["y"])
    agent = make_agent(
        tmp_path / "params",
        "env.completion([], temperature=0.1, max_tokens=5)\nenv.completion([])\n",
        defaults={"model_temperature": 0.7, "model_max_tokens": 111},
    )
    assert run_agent(agent, "go").status == "completed"
    first, second = (r.body for r in srv.requests)
    assert (first["temperature"], first["max_tokens"]) == (0.1, 5)
    assert (second["temperature"], second["max_tokens"]) == (0.7, 111)
    assert first["model"] == "test-model"
