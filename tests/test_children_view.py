"""The nested view: sub-agent runs shown live under the parent's steps, in every renderer.

Widget traffic goes to recording comms (nearnb.view.testing) and is counted
exactly; event mixes are played on a manual clock (nearnb.view.mixes.play), so
the rate assertions hold without sleeps. The real-run tests use the scripted
OpenAI server and ``env.run_agent``.
"""

from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from nearnb import api
from nearnb.runs import start_run
from nearnb.view import RunInfo, open_view
from nearnb.view.bundle import final_bundle
from nearnb.view.handle import HandleRenderer
from nearnb.view.mixes import TimedFactory, child_step, merged, play, sub_agents
from nearnb.view.panel import ChildPanel
from nearnb.view.sink import RecordingSink
from nearnb.view.testing import ManualClock, busiest_second, click, recording_comms
from nearnb.view.tree import RunTree
from nearnb.view.widget import CHILD_PANEL_OPENS, WidgetRenderer
from tests.agent_helpers import make_agent
from tests.support.openai_server import Reply, ScriptedOpenAI

INFO = RunInfo(agent_name="boss", model="local::smollm2")
CHILDREN = ("run_talker", "run_tooler", "run_grandchild")


def make_view(clock: ManualClock, sink: RecordingSink, stops: list[str] | None = None) -> Any:
    view = WidgetRenderer(
        INFO, sink=sink, clock=clock, autoflush=False, on_stop=lambda: stops.append("root")
    )
    for run_id in CHILDREN:
        view.follow_child(
            run_id,
            stop=lambda run_id=run_id: (stops if stops is not None else []).append(run_id),
            agent_name=run_id.removeprefix("run_"),
        )
    return view


def counts(wire: Any, comm_id: str) -> list[int]:
    values = [s["value"] for s in wire.updates(comm_id) if "value" in s]
    return [int(re.search(r"<b>([\d,]+)</b>", v).group(1).replace(",", "")) for v in values]


def tree_of(runs: dict[str, list]) -> RunTree:
    """Every run's events folded; children named by the steps' metadata."""
    tree = RunTree()
    for _, event in merged(runs):
        tree.apply(event)
    return tree


# ------------------------------------------------------------------ the bound


def test_two_streaming_children_stay_within_one_rate_bound() -> None:
    """Two children (one with a grandchild) streaming at 1,000 deltas/s each, all at
    once: one throttle for the cell, <= 20 refreshes and <= 100 comm messages in any
    second, each child with its own counter moving to its own total."""
    runs = sub_agents()
    clock, sink = ManualClock(), RecordingSink()
    with recording_comms(clock) as wire:
        view = make_view(clock, sink)
        played = play(view, clock, merged(runs), finish=False)
        panels = {p.run_id: p for p in view.panels if isinstance(p, ChildPanel)}
        counters = {rid: counts(wire, panels[rid].counter.comm.comm_id) for rid in CHILDREN}
        tails = {rid: wire.updates(panels[rid]._slot.tail.comm.comm_id) for rid in CHILDREN}
        view.finish()
        while view.cleanup_wait is not None:
            clock.now += view.cleanup_wait + 1e-9
            view.tick()
    assert busiest_second(played.refreshes) <= 20
    assert busiest_second(wire.times) <= 100  # opens, updates and closes of the whole tree
    assert view.kit.sent == wire.count()
    # Three panels opening in one instant take ~60 of the window's 100 messages, so
    # the text may wait for the window once (< 1 s); never longer.
    assert played.latency <= 1.0
    for run_id in CHILDREN:
        assert counters[run_id] == sorted(counters[run_id]) and counters[run_id][-1] == 1500
        assert len(counters[run_id]) >= 5  # it moved live, not only at the end
        assert any("Virtue" in state.get("value", "") for state in tails[run_id])
    opened = {cid for kind, cid, _ in wire.messages if kind == "open"}
    assert opened == {cid for kind, cid, _ in wire.messages if kind == "close"}
    ((data, metadata),) = sink.final
    assert (data, metadata) == final_bundle(view.state, INFO, tree=view.tree)


def test_a_childs_panel_costs_what_the_budget_sets_aside() -> None:
    clock = ManualClock()
    with recording_comms(clock) as wire:
        view = make_view(clock, RecordingSink())
        runs = sub_agents(deltas=4)
        play(view, clock, merged(runs), finish=False)
        opens_per_panel = [
            sum(1 for w in p.kit.created if w in _panel_widgets(p))
            for p in view.panels
            if isinstance(p, ChildPanel)
        ]
        view.finish()
    assert len(opens_per_panel) == 3 and max(opens_per_panel) <= CHILD_PANEL_OPENS
    assert wire.count("open") >= sum(opens_per_panel)


def _panel_widgets(panel: ChildPanel) -> list[Any]:
    own = [
        panel.header,
        panel.notices,
        panel.counter,
        panel.stop_button,
        panel.transcript,
        panel.live,
        panel.tools,
        panel.error,
        panel.root,
        panel.accordion,
    ]
    return own + [w.layout for w in own if w.layout is not panel.kit.layout]


# --------------------------------------------------------------- the layout


def test_children_nest_under_their_steps_and_collapse_when_done() -> None:
    clock = ManualClock()
    with recording_comms(clock):
        view = make_view(clock, RecordingSink())
        timed = merged(sub_agents(deltas=400))
        half = len(timed) // 2
        play(view, clock, timed[:half], finish=False)
        talker, tooler, grand = (view.child_panel(rid) for rid in CHILDREN)
        # running: open, in the parent's box of running sub-agents (the grandchild in talker's)
        assert view.panel.running is not None
        assert view.panel.running.children == (talker.accordion, tooler.accordion)
        assert talker.running.children == (grand.accordion,)
        assert talker.accordion.selected_index == 0
        assert talker.accordion.titles == ("↳ talker · running",)
        assert "run_agent" not in view.tools.value  # the panel stands for the step
        play(view, clock, timed[half:], finish=False)
        assert view.panel.running.children == ()
        # ended: in the transcript at the step's place, collapsed to one line
        transcript = _leaves(view.transcript)
        assert transcript.index(talker.accordion) < transcript.index(tooler.accordion)
        assert grand.accordion in _leaves(talker.transcript)
        for panel in (talker, tooler, grand):
            assert panel.accordion.selected_index is None
            title = panel.accordion.titles[0]
            assert title.startswith(f"↳ {panel.name} · completed · 400 deltas · ")
            assert "— Virtue is knowledge" in title
            assert panel.stop_button.layout.display == "none"
        view.finish()


def _leaves(box: Any) -> list[Any]:
    """The children of an AppendTree's root, flattened through its inner boxes."""
    out = []
    for child in box.children:
        inner = getattr(child, "children", None)
        if inner is not None and not hasattr(child, "titles") and child._dom_classes == ():
            out += _leaves(child)
        else:
            out.append(child)
    return out


def test_a_childs_stop_cancels_that_child_only() -> None:
    clock, stops = ManualClock(), []
    with recording_comms(clock):
        view = make_view(clock, RecordingSink(), stops)
        timed = merged(sub_agents(deltas=400))
        play(view, clock, timed[: len(timed) // 3], finish=False)
        tooler = view.child_panel("run_tooler")
        assert tooler is not None and not tooler.stop_button.disabled
        click(tooler.stop_button)
        click(tooler.stop_button)  # a second click is a no-op
        assert stops == ["run_tooler"]
        assert tooler.stop_button.description == "Stopping…"
        assert 'data-status="cancelling"' in tooler.header.value
        assert 'data-status="cancelling"' not in view.header.value
        assert not view.stop_button.disabled
        click(view.stop_button)
        assert stops == ["run_tooler", "root"]
        view.finish()


def test_a_child_that_hides_its_streaming_message_shows_only_its_counter() -> None:
    clock = ManualClock()
    with recording_comms(clock) as wire:
        view = make_view(clock, RecordingSink())
        view.follow_child("run_tooler", agent_name="tooler", show_streaming_message=False)
        timed = merged(sub_agents(deltas=300))
        play(view, clock, timed[: len(timed) // 2], finish=False)
        tooler, talker = view.child_panel("run_tooler"), view.child_panel("run_talker")
        assert tooler.live.children == () and talker.live.children != ()
        assert len(counts(wire, tooler.counter.comm.comm_id)) >= 2
        view.finish()


# -------------------------------------------------------- the other renderers


def test_the_saved_markdown_quotes_each_child_under_its_step() -> None:
    runs = sub_agents(deltas=3)
    tree = tree_of(runs)
    data, metadata = final_bundle(tree.root, INFO, tree=tree)
    md = data["text/markdown"]
    assert md.index("Asking two helpers.") < md.index("> **↳ talker**")
    assert md.index("> **↳ talker**") < md.index("> > **↳ grandchild**")
    assert md.index("> > **↳ grandchild**") < md.index("> **↳ tooler**")
    assert md.index("> **↳ tooler**") < md.index("Both answered.")
    assert "> > Virt" in md and "run_agent(" not in md
    assert "> ↳ talker · local::smollm2 · completed · 3 deltas" in data["text/plain"]
    (talker, tooler) = metadata["nearnb"]["children"]
    assert (talker["run_id"], talker["status"], talker["deltas"]) == ("run_talker", "completed", 3)
    assert talker["children"][0]["run_id"] == "run_grandchild" and "children" not in tooler


def test_a_step_whose_child_was_not_followed_stays_a_tool_line() -> None:
    parent, kid = TimedFactory(run_id="run_p"), TimedFactory(run_id="run_k")
    kid.agent = "helper"  # type: ignore[attr-defined]
    parent.start()
    child_step(parent, kid, "created")
    child_step(parent, kid, "completed", "the child's answer")
    parent.end()
    tree = RunTree()
    for _, event in parent.timed:
        tree.apply(event)
    md = final_bundle(tree.root, INFO, tree=tree)[0]["text/markdown"]
    assert "🔧 `run_agent(" in md and "→ the child's answer" in md


def test_handle_view_shows_children_live_and_quoted() -> None:
    clock, sink = ManualClock(), RecordingSink()
    view = HandleRenderer(INFO, sink=sink, clock=clock, autoflush=False)
    view.follow_child("run_talker", agent_name="talker")
    timed = merged(sub_agents(deltas=200))
    play(view, clock, timed[: len(timed) // 2], finish=False)
    live = sink.calls[-1][1]["text/markdown"]
    assert "> **↳ talker** · `local::smollm2` · " in live and "deltas received" in live
    assert "> > **↳ grandchild**" in live
    play(view, clock, timed[len(timed) // 2 :])
    ((data, _),) = sink.final
    assert data == final_bundle(view.state, INFO, tree=view.tree)[0]


# ------------------------------------------------------------------ real runs

LEAF = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
MIDDLE = LEAF + "env.run_agent('leaf', query='deeper')\n"
BOSS = (
    "env.add_reply('Asking the helper.')\n"
    "tid = env.run_agent('helper', query='please')\n"
    "env.add_reply('Done: ' + env.list_messages(thread_id=tid)[-1]['content'])\n"
)


def agents(tmp_path: Path, boss: str = BOSS, middle: str = MIDDLE) -> Path:
    make_agent(tmp_path / "leaf", LEAF)
    make_agent(tmp_path / "helper", middle)
    return make_agent(tmp_path / "boss", boss)


def test_a_real_run_renders_its_children_nested(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.script(Reply.text(*["help "] * 20, delay=0.01), Reply.text(*["leaf "] * 10, delay=0.02))
    sink = RecordingSink()
    with recording_comms() as wire:
        handle = start_run(agents(tmp_path), "Hi")
        result = api.render(handle, display="widget", sink=sink)
    assert result.status == "completed", result.traceback
    (helper,) = result.children
    (leaf,) = helper.children
    assert (helper.deltas, leaf.deltas) == (20, 10)
    ((data, metadata),) = sink.final
    md = data["text/markdown"]
    assert "> **↳ helper**" in md and "> " + "help " * 19 in md
    assert "> > **↳ leaf**" in md and "> > " + "leaf " * 9 in md
    tree = metadata["nearnb"]["children"]
    assert tree[0]["run_id"] == helper.run_id and tree[0]["deltas"] == 20
    assert tree[0]["children"][0]["run_id"] == leaf.run_id
    titles = [d["state"]["titles"] for k, _, d in wire.messages if "titles" in d.get("state", {})]
    assert ("↳ helper · running",) in titles and any(t[0].startswith("↳ leaf") for t in titles)


def test_stopping_a_real_child_lets_the_parent_go_on(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    gate = threading.Event()
    srv.script(Reply.text(*["slow "] * 40, gate=gate))
    boss = agents(tmp_path, middle=LEAF)
    sink, stops = RecordingSink(), []
    with recording_comms():
        handle = start_run(boss, "Hi")
        view = open_view(
            "widget", agent_name="boss", sink=sink, on_stop=lambda: stops.append("root")
        )
        handle.subscribe(api.Follow(handle, view, []), replay=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (handle.children and view.tree.runs):
            time.sleep(0.01)
        (child,) = handle.children
        view.tick()
        while time.monotonic() < deadline and view.child_panel(child.run_id) is None:
            time.sleep(0.02)
            view.tick()
        click(view.child_panel(child.run_id).stop_button)
        gate.set()
        result = handle.wait()
        view.finish(result)
    assert stops == []  # the root's Stop was not used
    assert result.status == "completed" and result.children[0].status == "cancelled"
    assert result.messages[-1].text.startswith("Done: ")
    ((data, _),) = sink.final
    assert "> **↳ helper**" in data["text/markdown"] and "cancelled" in data["text/markdown"]


@pytest.mark.parametrize("display", ["handle", "plain", "terminal"])
def test_other_displays_follow_real_children(
    display: str, srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(["help ", "given"], ["leaf ", "given"])
    sink, stream, status = RecordingSink(), io.StringIO(), io.StringIO()
    options: dict[str, Any] = (
        {"stream": stream, "status": status} if display == "terminal" else {"sink": sink}
    )
    handle = start_run(agents(tmp_path), "Hi")
    shown = api.render(handle, display=display, **options)
    assert shown.status == "completed", shown.traceback
    assert shown.children[0].children[0].text == "leaf given"
    if display == "terminal":
        assert stream.getvalue() == "Asking the helper.\n\nDone: help given\n\n"
        text = status.getvalue()
        assert "↳ helper" in text and "  │ ↳ leaf" in text and "  │   │ leaf given" in text
    else:
        ((data, _),) = sink.final
        assert "> > leaf given" in data["text/markdown"]


def test_a_streamed_tool_call_shows_apart_as_it_arrives(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    """Item 5 on a real run: a streamed completion's tool call reaches the view's tool
    area fragment by fragment, apart from the answer; with show_streaming_message off
    the text is hidden but the counter still moves."""
    srv.script(
        Reply.tool_call(
            "add", ['{"a": ', "19, ", '"b": 23}'], text=["Let ", "me ", "add."], delay=0.05
        )
    )
    code = (
        "tools = [{'type': 'function', 'function': {'name': 'add', 'parameters': {}}}]\n"
        "stream = env.completion(env.list_messages(), stream=True, tools=tools)\n"
        "env.add_reply(stream)\n"
    )
    agent = make_agent(tmp_path / "caller", code, show_streaming_message=False)
    sink = RecordingSink()
    with recording_comms() as wire:
        handle = start_run(agent, "Hi")
        result = api.render(handle, display="widget", sink=sink, interval=0.05)
        view_tools = [
            s["value"] for s in wire.updates() if "nearnb-tools" in str(s.get("value", ""))
        ]
        tails = [s["value"] for s in wire.updates() if "Let me" in str(s.get("value", ""))]
    assert result.status == "completed", result.traceback
    step_deltas = [e for e in result.events if e.event == "thread.run.step.delta"]
    assert len(step_deltas) >= 3  # name, then the arguments piece by piece
    assert any("add(" in v and "…" in v for v in view_tools)  # shown while it streamed
    assert tails == []  # no live text: the flag is off
    assert result.deltas == 3
    ((data, _),) = sink.final
    assert '🔧 `add({"a": 19, "b": 23})`' in data["text/markdown"]
