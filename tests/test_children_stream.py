"""Sub-agents on the real stack: three levels of runs, a hub subscriber that follows them,
openai-python on a parent's stream, and ``nearnb.attach`` into the nested view.

Every model reply comes from the scripted OpenAI server over HTTP; hubs are uvicorn on
127.0.0.1; streams are read with httpx-sse and with openai-python's own helpers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse
from openai import AssistantEventHandler, OpenAI
from openai.types.beta.threads import Message, Text, TextDelta
from openai.types.beta.threads.runs import RunStep

import nearnb
from nearnb.hub.server import HubServer
from nearnb.runs import run_agent
from nearnb.store import Store
from nearnb.view import RunInfo
from nearnb.view.sink import RecordingSink
from nearnb.view.testing import recording_comms
from nearnb.view.widget import WidgetRenderer
from tests.agent_helpers import STREAM_AGENT, TALKER_AGENT, TOOL_AGENT, make_agent
from tests.support.hub import running_hub
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.support.waiting import wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOKEN = "t0ken-for-children"
BOSS = (
    "with env.stream_reply() as w:\n"
    "    w.write('Starting. ')\n"
    "    w.write('Asking two helpers.')\n"
    "talk = env.run_agent('talker', query='talk')\n"
    "env.run_agent('tooler', query='add')\n"
    "env.add_reply('talker said: ' + env.list_messages(thread_id=talk)[-1]['content'])\n"
)


def script_tree(srv: ScriptedOpenAI, delay: float = 0.0) -> None:
    """Replies in the order the runs ask: talker, leaf, tooler."""
    srv.script(Reply.text("Talk", "ing ", "here.", delay=delay))
    srv.script(Reply.text("Le", "af.", delay=delay))
    srv.script(Reply.tool_call("add", {"a": 2, "b": 3}, text=["Adding."]))


@pytest.fixture
def agents(tmp_path: Path) -> Path:
    folder = tmp_path / "agents"
    make_agent(folder / "leaf", STREAM_AGENT)
    make_agent(folder / "talker", TALKER_AGENT)
    make_agent(folder / "tooler", TOOL_AGENT)
    make_agent(folder / "boss", BOSS)
    return folder


@pytest.fixture
def hub(agents: Path) -> Iterator[HubServer]:
    with running_hub(agents_dir=agents, token=TOKEN, keepalive=0.05) as server:
        yield server


def answers(store: Store, thread_id: str) -> list[str]:
    return [m.text for m in store.list_messages(thread_id) if m.role == "assistant"]


# ---------------------------------------------------------- three levels deep


def test_nested_runs_three_levels_deep(srv: ScriptedOpenAI, agents: Path) -> None:
    script_tree(srv)
    store = Store()
    result = run_agent(agents / "boss", "go", store=store)
    assert result.status == "completed", result.traceback
    talker, tooler = result.children
    (leaf,) = talker.children
    assert (talker.agent, tooler.agent, leaf.agent) == ("talker", "tooler", "leaf")
    assert [c.status for c in (talker, tooler, leaf)] == ["completed"] * 3
    assert (talker.text, leaf.text, tooler.children) == ("Talking here.", "Leaf.", [])
    assert [m.text for m in result.messages] == [
        "Starting. Asking two helpers.",
        "talker said: Talking here.",
    ]
    # parentage is stored, and every run's log is whole in the store, in order
    for parent, child in ((result, talker), (result, tooler), (talker, leaf)):
        run = store.get_run(child.run_id)
        assert run is not None and run.metadata["nearnb.parent_run_id"] == parent.run_id
    for run in (result, talker, tooler, leaf):
        stored = store.events(run.run_id)
        assert [(e.seq, e.event) for e in stored] == [(e.seq, e.event) for e in run.events]
        assert stored[-1].event == "done" and [e.seq for e in stored] == list(
            range(1, len(stored) + 1)
        )
    # each step of a parent names its child and ends with the child's answer
    steps = [e.data for e in result.events if e.event == "thread.run.step.completed"]
    assert [s["metadata"]["nearnb.child_run_id"] for s in steps] == [talker.run_id, tooler.run_id]
    outputs = [s["step_details"]["tool_calls"][0]["function"]["output"] for s in steps]
    assert outputs[0] == "Talking here."
    # the tooler's tool call is a step of its own in its stream, apart from its answer
    (tool_step,) = [e.data for e in tooler.events if e.event == "thread.run.step.completed"]
    (call,) = tool_step["step_details"]["tool_calls"]
    assert (call["function"]["name"], call["function"]["output"]) == ("add", "5")
    assert tooler.text == "Adding."  # the tool's output is in the step, not an answer


# ------------------------------------------------------- a hub subscriber


def follow(client: httpx.Client, thread_id: str, run_id: str, seen: dict, tree: dict) -> None:
    """Read one run's stream; follow every child a step names, each on its own thread.
    ``seen[run_id]``: (the deltas joined per message, the completed messages)."""
    threads: list[threading.Thread] = []
    deltas: dict[str, str] = {}
    completed: list[dict] = []
    url = f"/v1/threads/{thread_id}/stream/{run_id}"
    with connect_sse(client, "GET", url) as source:
        for sse in source.iter_sse():
            if sse.event == "done":
                break
            data = json.loads(sse.data)
            if sse.event == "thread.message.delta":
                text = "".join(c["text"]["value"] for c in data["delta"]["content"])
                deltas[data["id"]] = deltas.get(data["id"], "") + text
            elif sse.event == "thread.message.completed":
                completed.append(data)
            elif sse.event == "thread.run.step.created":
                meta = data.get("metadata") or {}
                if "nearnb.child_run_id" in meta:
                    child = (meta["nearnb.child_thread_id"], meta["nearnb.child_run_id"])
                    tree.setdefault(run_id, []).append(child[1])
                    thread = threading.Thread(target=follow, args=(client, *child, seen, tree))
                    threads.append(thread)
                    thread.start()
    for thread in threads:
        thread.join(30)
    seen[run_id] = (deltas, completed)


def test_a_hub_subscriber_reconstructs_every_childs_text(
    srv: ScriptedOpenAI, hub: HubServer
) -> None:
    script_tree(srv, delay=0.01)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=hub.url, headers=headers, timeout=30) as client:
        tid = client.post("/v1/threads", json={}).json()["id"]
        client.post(f"/v1/threads/{tid}/messages", json={"role": "user", "content": "go"})
        run = client.post(f"/v1/threads/{tid}/runs", json={"assistant_id": "boss"}).json()
        seen: dict[str, Any] = {}
        tree: dict[str, list[str]] = {}
        follow(client, tid, run["id"], seen, tree)
    store = Store()
    talker, tooler = tree[run["id"]]
    (leaf,) = tree[talker]
    assert set(seen) == {run["id"], talker, tooler, leaf}
    texts = {}
    for run_id, (deltas, completed) in seen.items():
        stored = store.get_run(run_id)
        assert stored is not None and stored.status == "completed"
        # the run's answers: completed messages of its own thread that are not tool outputs
        mine = [
            m
            for m in completed
            if m["thread_id"] == stored.thread_id and "tool_call_id" not in m["metadata"]
        ]
        texts[run_id] = [m["content"][0]["text"]["value"] for m in mine]
        for message in mine:  # a streamed message's deltas add up to its stored text
            if message["id"] in deltas:
                assert deltas[message["id"]] == message["content"][0]["text"]["value"]
        kept = {m.id: m.text for m in store.list_messages(stored.thread_id)}
        assert all(kept[m["id"]] == m["content"][0]["text"]["value"] for m in mine)
    assert texts[talker] == ["Talking here."] and texts[leaf] == ["Leaf."]
    assert texts[tooler] == ["Adding."]
    assert texts[run["id"]] == ["Starting. Asking two helpers.", "talker said: Talking here."]
    assert seen[leaf][0] and seen[talker][0]  # those two streamed as deltas


# ----------------------------------------------------------- openai-python


class Handler(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.done: list[str] = []
        self.calls: list[tuple[str, str | None]] = []
        self.text = ""

    def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self.text += delta.value or ""

    def on_message_done(self, message: Message) -> None:
        self.done.append("".join(c.text.value for c in message.content if c.type == "text"))

    def on_run_step_done(self, run_step: RunStep) -> None:
        details = run_step.step_details
        if details.type == "tool_calls":
            for call in details.tool_calls:
                if call.type == "function":
                    self.calls.append((call.function.name, call.function.output))


def test_assistant_event_handler_on_a_parents_stream(srv: ScriptedOpenAI, hub: HubServer) -> None:
    script_tree(srv, delay=0.01)
    client = OpenAI(base_url=hub.url + "/v1", api_key=TOKEN, max_retries=0)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    handler = Handler()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id="boss", event_handler=handler
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "completed"
    stored = answers(Store(), thread.id)
    assert handler.done == stored == ["Starting. Asking two helpers.", "talker said: Talking here."]
    assert handler.text == "Starting. Asking two helpers."  # the one streamed answer
    assert handler.calls == [("run_agent", "Talking here."), ("run_agent", "Adding.")]


# ------------------------------------------------------------------ attach


def test_attach_follows_children_into_the_nested_view(srv: ScriptedOpenAI, hub: HubServer) -> None:
    script_tree(srv, delay=0.01)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=hub.url, headers=headers, timeout=30) as client:
        tid = client.post("/v1/threads", json={}).json()["id"]
        client.post(f"/v1/threads/{tid}/messages", json={"role": "user", "content": "go"})
        run = client.post(f"/v1/threads/{tid}/runs", json={"assistant_id": "boss"}).json()
    sink = RecordingSink()
    with recording_comms() as wire:
        view = WidgetRenderer(RunInfo(agent_name="boss"), sink=sink)
        url = f"{hub.url}/v1/threads/{tid}/stream/{run['id']}"
        result = nearnb.attach(url, token=TOKEN, display=view)
        deadline = time.monotonic() + 10
        while view.cleanup_wait is not None and time.monotonic() < deadline:
            time.sleep(0.02)  # the widgets are closed at the message budget's pace
    assert result.status == "completed"
    talker, tooler = result.children
    (leaf,) = talker.children
    store = Store()
    for child in (talker, tooler, leaf):
        stored = store.get_run(child.run_id)
        assert stored is not None and child.status == stored.status == "completed"
        assert [e.seq for e in child.events] == [e.seq for e in store.events(child.run_id)]
    assert (talker.text, leaf.text, tooler.text) == ("Talking here.", "Leaf.", "Adding.")
    ((data, metadata),) = sink.final
    md = data["text/markdown"]
    assert "> **↳ talker**" in md and "> > **↳ leaf**" in md and "> **↳ tooler**" in md
    assert "> Talking here." in md and "> > Leaf." in md and "🔧 `add(" in md
    assert [c["run_id"] for c in metadata["nearnb"]["children"]] == [talker.run_id, tooler.run_id]
    opened = {cid for kind, cid, _ in wire.messages if kind == "open"}
    assert opened == {cid for kind, cid, _ in wire.messages if kind == "close"}


def test_attach_with_display_none_still_returns_the_tree(
    srv: ScriptedOpenAI, hub: HubServer
) -> None:
    script_tree(srv)
    client = OpenAI(base_url=hub.url + "/v1", api_key=TOKEN, max_retries=0)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id="boss")
    assert run.status == "completed"
    result: Any = nearnb.attach(
        hub.url, thread_id=thread.id, run_id=run.id, token=TOKEN, display="none"
    )
    assert [c.agent for c in result.children] == ["local/talker/0.1.0", "local/tooler/0.1.0"]
    assert result.children[0].children[0].text == "Leaf."


# ---------------------------------------------------------------- the example


def test_the_orchestrator_example(srv: ScriptedOpenAI) -> None:
    """examples/orchestrator on the scripted server: progress deltas, a streaming child,
    a child whose tool call (written as text, as the embedded model does) is a step."""
    from tests.conftest import EXAMPLES

    srv.script(["Stars ", "burn ", "hydrogen."])
    srv.script(['<tool_call>{"name": "add", "arguments": {"a": 19, "b": 23}}</tool_call>'])
    result = run_agent(EXAMPLES / "orchestrator", "Why do stars shine?", provider="scripted")
    assert result.status == "completed", result.traceback
    storyteller, calculator = result.children
    assert (storyteller.agent, storyteller.text, storyteller.deltas) == (
        "storyteller",
        "Stars burn hydrogen.",
        3,
    )
    assert calculator.text == 'add({"a": 19, "b": 23}) = 42'
    (step,) = [e.data for e in calculator.events if e.event == "thread.run.step.completed"]
    assert step["step_details"]["tool_calls"][0]["function"]["output"] == "42"
    assert [m.text for m in result.messages] == [
        "Plan: the storyteller answers in words, the calculator adds with a tool.",
        "Asking the storyteller…",
        "Asking the calculator…",
        "Storyteller: Stars burn hydrogen.\n\nCalculator: " + calculator.text,
    ]
    assert result.deltas == 9  # every one written by the agent, none by a model


@pytest.mark.parametrize("cancel", [None, False], ids=["stop-cancels", "cancel-false"])
def test_an_attached_childs_stop_acts_on_that_child_only(
    srv: ScriptedOpenAI, hub: HubServer, cancel: bool | None
) -> None:
    """Stop on an attached child cancels that child's run (by default) or only stops
    watching it (``cancel=False``); either way the parent is followed to its end."""
    gate = threading.Event()
    srv.script(Reply.text("Talk", "ing ", "here.", gate=gate))
    if cancel is False:  # only a talker that goes on asks its own child (the leaf)
        srv.script(Reply.text("Le", "af."))
    srv.script(Reply.tool_call("add", {"a": 2, "b": 3}, text=["Adding."]))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=hub.url, headers=headers, timeout=30) as client:
        tid = client.post("/v1/threads", json={}).json()["id"]
        client.post(f"/v1/threads/{tid}/messages", json={"role": "user", "content": "go"})
        run = client.post(f"/v1/threads/{tid}/runs", json={"assistant_id": "boss"}).json()
    done: list[Any] = []
    with recording_comms():
        view = WidgetRenderer(RunInfo(agent_name="boss"), sink=RecordingSink())
        url = f"{hub.url}/v1/threads/{tid}/stream/{run['id']}"
        watcher = threading.Thread(
            target=lambda: done.append(nearnb.attach(url, token=TOKEN, display=view, cancel=cancel))
        )
        watcher.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not view.tree.runs:
            time.sleep(0.02)
        (talker_id,) = view.tree.runs
        while time.monotonic() < deadline and not view.can_stop(talker_id):
            time.sleep(0.02)
        view.stop_run(talker_id)  # what the child's Stop button does
        if cancel is None:  # the child is still held by the gate when its cancel lands
            wait_until(
                lambda: Store().get_run(talker_id).status == "cancelled",
                "the child's run cancelled through the hub",
            )
        gate.set()
        watcher.join(60)
    (result,) = done
    assert result.status == "completed"  # the parent was watched to its end
    talker, tooler = result.children
    if cancel is None:  # the Stop reached the hub, which cancelled the child's run
        assert talker.status == "cancelled"
        assert Store().get_run(talker.run_id).status == "cancelled"
    else:
        assert talker.status != "completed"  # no longer watched: it ended unseen
        assert Store().get_run(talker.run_id).status == "completed"  # the run went on
    assert tooler.status == "completed" and tooler.text == "Adding."
