"""Tools NEAR's way, on the real stack: agents run by ``run_agent`` against the scripted
OpenAI server; the thread, the events and the requests the server got are checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nearnb.events import Event, Message
from nearnb.runs import run_agent
from nearnb.store import Store
from tests.agent_helpers import make_agent
from tests.support.openai_server import Reply, ScriptedOpenAI

TOOLS = '''
def add(a: int, b: int) -> int:
    """Add two numbers.
    a: the first number
    b: the second number
    """
    return a + b

def explode() -> str:
    """Always fails."""
    raise RuntimeError("bad tool")

def forget(key: str) -> None:
    """Forget a key.

    Args:
        key: what to forget
    """

reg = env.get_tool_registry()
for tool in (add, explode, forget):
    reg.register_tool(tool)
'''


def thread_of(result: Any) -> list[Message]:
    return Store().list_messages(result.thread_id)


def step_events(events: list[Event]) -> list[Event]:
    return [e for e in events if e.event.startswith("thread.run.step.")]


def outputs_of(event: Event) -> list[tuple[str, str]]:
    calls = event.data["step_details"]["tool_calls"]
    return [(c["function"]["name"], c["function"]["output"]) for c in calls]


def test_tool_outputs_and_errors_are_written_to_the_thread_as_near_did(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(
        Reply.tool_call(
            "add",
            {"a": 2, "b": 3},
            text=["Let me check."],
            call_id="call_add",
            more=[("explode", {}), ("forget", {"key": "k"})],
        ),
        Reply.text("It is 5."),
    )
    code = TOOLS + (
        "messages = [{'role': 'system', 'content': 'Use tools.'}] + env.list_messages()\n"
        "env.completion_and_run_tools(messages, tools=reg.get_all_tool_definitions())\n"
        "seen = env.list_messages()\n"
        "env.add_reply(env.completion(messages))\n"
        "assert [(m['role'], m['content']) for m in seen] == [\n"
        "    ('user', 'go'), ('assistant', 'Let me check.'), ('assistant', '5'),\n"
        "    ('assistant', 'Error: RuntimeError: bad tool')], seen\n"
        "assert [m['role'] for m in messages] == ['system', 'user', 'assistant', 'tool',\n"
        "    'tool', 'tool'], messages\n"
    )
    result = run_agent(make_agent(tmp_path / "tools", code), "go")
    assert result.status == "completed", result.traceback

    # the thread: the answer's text, then one message per tool that said something
    thread = thread_of(result)
    assert [(m.role, m.text) for m in thread] == [
        ("user", "go"),
        ("assistant", "Let me check."),
        ("assistant", "5"),
        ("assistant", "Error: RuntimeError: bad tool"),
        ("assistant", "It is 5."),
    ]
    call_ids = [m.metadata.get("tool_call_id") for m in thread]
    assert call_ids[:2] == [None, None] and call_ids[2] == "call_add"
    assert call_ids[3] is not None and call_ids[3] != "call_add"
    assert [m.metadata.get("name") for m in thread[2:4]] == ["add", "explode"]
    # tool outputs are in the thread for the agent, but they are not answers
    assert [m.text for m in result.messages] == ["Let me check.", "It is 5."]

    # the events: the text, one tool step with every output (forget's too), the outputs
    steps = step_events(result.events)
    assert [e.event for e in steps] == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.completed",
    ]
    assert outputs_of(steps[-1]) == [
        ("add", "5"),
        ("explode", "Error: RuntimeError: bad tool"),
        ("forget", "null"),
    ]
    completed = [
        e.data["content"][0]["text"]["value"] if e.event.startswith("thread.message") else e.event
        for e in result.events
        if e.event in ("thread.message.completed", "thread.run.step.completed")
    ]
    assert completed == [
        "Let me check.",
        "thread.run.step.completed",
        "5",
        "Error: RuntimeError: bad tool",
        "It is 5.",
    ]

    # the requests: NEAR-style docstrings described the tools; no llama prompt for this model
    first, second = (r.body for r in srv.requests)
    add_spec = next(t for t in first["tools"] if t["function"]["name"] == "add")
    assert add_spec["function"]["description"] == "Add two numbers."
    assert add_spec["function"]["parameters"]["properties"]["a"] == {
        "type": "integer",
        "description": "the first number",
    }
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages][0] == "call_add"
    assert [m["content"] for m in tool_messages] == ["5", "Error: RuntimeError: bad tool", "null"]
    assistant = second["messages"][2]
    assert assistant["content"] == "Let me check."
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["add", "explode", "forget"]


def test_llama_models_get_nears_tool_prompt_and_their_text_calls_run(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(
        Reply.text("no tools needed"),
        Reply.text('<function=add>{"a": 2, "b": 3}</function>'),
        Reply.text('Adding.\n<function=add>{"a": 1, "b": 1}'),
    )
    code = TOOLS + (
        "messages = [{'role': 'user', 'content': 'add'}]\n"
        "env.completion_and_run_tools(messages)\n"  # the agent's default model: test-model
        "env.completion_and_run_tools(messages, model='llama-3.2-1b-instruct')\n"
        "assert all(m['role'] != 'system' for m in messages), messages\n"
        "calls = env.completion_and_get_tools_calls(messages, model='llama-3.2-1b-instruct')\n"
        "assert calls.message == 'Adding.', calls\n"
        "assert calls.tool_calls[0].function.name == 'add'\n"
        "assert calls.tool_calls[0]['function']['arguments'] == '{\"a\": 1, \"b\": 1}'\n"
    )
    result = run_agent(make_agent(tmp_path / "llama", code), "go")
    assert result.status == "completed", result.traceback

    plain, llama, got_calls = (r.body for r in srv.requests)
    assert all(m["role"] != "system" for m in plain["messages"]) and plain["tools"]
    prompt = llama["messages"][-1]
    assert prompt["role"] == "system" and "<function=example_function_name>" in prompt["content"]
    assert json.dumps(llama["tools"]) in prompt["content"]
    assert "tools" not in got_calls  # completion_and_get_tools_calls sends only what it is given

    thread = thread_of(result)
    assert [(m.text, m.metadata.get("name")) for m in thread] == [
        ("go", None),
        ("no tools needed", None),
        ("5", "add"),  # the call-only text left nothing to say: no empty message
    ]
    assert thread[2].metadata["tool_call_id"].startswith("call_")
    (step,) = [e for e in step_events(result.events) if e.event.endswith("completed")]
    assert outputs_of(step) == [("add", "5")]


def test_without_add_responses_to_messages_tools_run_but_write_nothing(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(Reply.tool_call("add", {"a": 4, "b": 4}, text=["Sure."]))
    code = TOOLS + (
        "messages = [{'role': 'user', 'content': 'add'}]\n"
        "text = env.completion_and_run_tools(messages, add_responses_to_messages=False)\n"
        "assert text == 'Sure.' and len(messages) == 1, messages\n"
    )
    result = run_agent(make_agent(tmp_path / "quiet", code), "go")
    assert result.status == "completed", result.traceback
    assert [m.text for m in thread_of(result)] == ["go"]
    (step,) = [e for e in step_events(result.events) if e.event.endswith("completed")]
    assert outputs_of(step) == [("add", "8")]


def test_nears_standard_tools_on_request(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.script(Reply.tool_call("write_file", {"filename": "note.txt", "content": "hi"}))
    code = (
        "env.register_standard_tools()\n"
        "names = sorted(env.get_tool_registry().get_all_tools())\n"
        "assert {'list_files', 'read_file', 'request_user_input', 'write_file'} <= set(names)\n"
        "env.completion_and_run_tools([{'role': 'user', 'content': 'write'}])\n"
        "assert env.read_file('note.txt') == 'hi'\n"
        "assert env.get_tool_registry(new=True).get_all_tools() == {}\n"
    )
    store = Store()
    result = run_agent(make_agent(tmp_path / "std", code), "go", store=store)
    assert result.status == "completed", result.traceback
    assert (store.thread_dir(result.thread_id) / "note.txt").read_text() == "hi"
    sent = {t["function"]["name"]: t["function"] for t in srv.requests[0].body["tools"]}
    assert set(sent["write_file"]["parameters"]["required"]) == {"filename", "content"}


PUBLIC_AGENT = '''
from nearai.agents.environment import Environment


class Agent:
    """A note keeper, written the way public NEAR agents are: bound methods as tools."""

    def __init__(self, env: Environment):
        self.env = env
        self.notes = {}
        self.registry = env.get_tool_registry(new=True)
        for tool in (self.save_note, self.read_note):
            self.registry.register_tool(tool)

    def save_note(self, title: str, body: str) -> str:
        """Save a note under a title.
        title: the note's title
        body: the text of the note
        """
        self.notes[title] = body
        return f"Saved {title}"

    def read_note(self, title: str) -> dict:
        """Read a saved note.
        title: the note's title
        """
        return {"title": title, "body": self.notes[title]}

    def run(self):
        prompt = {"role": "system", "content": "You keep notes for the user."}
        tools = self.registry.get_all_tool_definitions()
        for _ in range(3):
            messages = [prompt] + self.env.list_messages()
            reply = self.env.completion_and_run_tools(messages, tools=tools)
            if reply and "<done>" in reply:
                break


if globals().get("env", None):
    Agent(globals().get("env")).run()
'''


def test_a_public_style_agent_with_bound_method_tools(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.script(
        Reply.tool_call("save_note", {"title": "milk", "body": "buy 2"}),
        Reply.tool_call("read_note", {"title": "milk"}),
        Reply.text("Your note says: buy 2 <done>"),
    )
    result = run_agent(make_agent(tmp_path / "notes", PUBLIC_AGENT), "remember milk")
    assert result.status == "completed", result.traceback

    first = srv.requests[0].body
    sent = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert set(sent) == {"save_note", "read_note"}
    assert sent["save_note"]["description"] == "Save a note under a title."
    assert sent["save_note"]["parameters"]["properties"]["body"] == {
        "type": "string",
        "description": "the text of the note",
    }
    assert "self" not in sent["read_note"]["parameters"]["properties"]
    # each turn re-read the thread: NEAR agents saw tool outputs as assistant messages
    third = srv.requests[2].body["messages"]
    assert [(m["role"], m["content"]) for m in third[1:]] == [
        ("user", "remember milk"),
        ("assistant", "Saved milk"),
        ("assistant", '{"title": "milk", "body": "buy 2"}'),
    ]
    assert [m.text for m in thread_of(result)][-1] == "Your note says: buy 2 <done>"
    steps = [e for e in step_events(result.events) if e.event.endswith("completed")]
    assert [outputs_of(e) for e in steps] == [
        [("save_note", "Saved milk")],
        [("read_note", '{"title": "milk", "body": "buy 2"}')],
    ]


def test_a_streamed_tool_call_and_its_output_are_one_step(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    """The step that streamed the call's name and arguments also gets the tool's output."""
    srv.script(Reply.tool_call("add", {"a": 2, "b": 3}, call_id="call_s"), Reply.text("5 it is"))
    code = TOOLS + (
        "env.completions_and_run_tools([{'role': 'user', 'content': 'add'}], stream=True)\n"
        "h = env.completion([{'role': 'user', 'content': 'add'}], stream=True)\n"
        "env.add_reply(h)\n"
    )
    result = run_agent(make_agent(tmp_path / "streamed", code), "go")
    assert result.status == "completed", result.traceback
    steps = step_events(result.events)
    names = [e.event for e in steps]
    assert names[0] == "thread.run.step.created" and names[-1] == "thread.run.step.completed"
    assert "thread.run.step.delta" in names
    assert {e.data["id"] for e in steps} == {steps[0].data["id"]}, "one step, not two"
    (call,) = steps[-1].data["step_details"]["tool_calls"]
    assert call["id"] == "call_s" and call["function"]["name"] == "add"
    assert call["function"]["output"] == "5"


def test_a_streamed_tool_call_nobody_runs_completes_without_output(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(Reply.tool_call("add", {"a": 1, "b": 1}, call_id="call_n"))
    code = "env.completion([{'role': 'user', 'content': 'x'}], stream=True).drain()\n"
    result = run_agent(make_agent(tmp_path / "unrun", code), "go")
    assert result.status == "completed", result.traceback
    last = step_events(result.events)[-1]
    assert last.event == "thread.run.step.completed"
    assert last.data["step_details"]["tool_calls"][0]["function"]["output"] is None
