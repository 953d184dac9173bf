"""The scrubber on the real stack: runs made on the scripted OpenAI server (tool steps and
sub-agents three levels deep), read back as a RunResult, a run id, a hub URL and a file.

The property the scrubber rests on: at every position k its view model is
``present`` of the reducer's fold of the first k events - whatever order the
positions are visited in (hypothesis draws the orders, so checkpoints, forward
folds and copies are all crossed). Widget traffic goes to recording comms.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import traitlets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nearnb.events import Event
from nearnb.reducer import RunState, reduce
from nearnb.result import RunResult
from nearnb.runs import run_agent
from nearnb.scrubbing import ScrubError, scrub, timeline_of
from nearnb.view.panel import block_markdown
from nearnb.view.present import RunInfo, present
from nearnb.view.scrubber import Scrubber, next_cut, shown
from nearnb.view.testing import click, recording_comms
from nearnb.view.timeline import Timeline
from tests.agent_helpers import STREAM_AGENT, TALKER_AGENT, TOOL_AGENT, make_agent
from tests.support.hub import running_hub
from tests.support.openai_server import Reply, ScriptedOpenAI

BOSS = (
    "with env.stream_reply() as w:\n"
    "    w.write('Starting. ')\n"
    "    w.write('Asking two helpers.')\n"
    "talk = env.run_agent('talker', query='talk')\n"
    "env.run_agent('tooler', query='add')\n"
    "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
)
LONG = "Para one is here.\n\n" * 160  # ~3,000 chars: cut into frozen blocks


@pytest.fixture
def agents(tmp_path: Path) -> Path:
    folder = tmp_path / "agents"
    make_agent(folder / "leaf", STREAM_AGENT)
    make_agent(folder / "talker", TALKER_AGENT)
    make_agent(folder / "tooler", TOOL_AGENT)
    make_agent(folder / "boss", BOSS)
    return folder


def boss_run(srv: ScriptedOpenAI, agents: Path) -> RunResult:
    """A real run: a streamed writer, two children (one with its own child), a tool step."""
    srv.script(Reply.text("Talk", "ing ", "here."))  # talker
    srv.script(Reply.text("Le", "af."))  # leaf
    srv.script(Reply.tool_call("add", {"a": 2, "b": 3}, text=["Adding."]))  # tooler
    srv.script(Reply.text(*[LONG[i : i + 7] for i in range(0, len(LONG), 7)], "Done."))  # boss
    result = run_agent(agents / "boss", "go")
    assert result.status == "completed", result.traceback
    return result


@pytest.fixture
def result(srv: ScriptedOpenAI, agents: Path) -> RunResult:
    return boss_run(srv, agents)


def fold_of(events: list[Event], run_id: str, k: int) -> RunState:
    """The reducer's fold of ``run_id``'s events among the first ``k`` (from zero)."""
    return reduce(e for e in events[:k] if e.run_id == run_id)


def assert_shows(now: dict[str, Any], vm: Any) -> None:
    """What a view shows (``shown``) is what the view model says, block by block."""
    assert now["counter"] == f"<b>{vm.counter.number}</b> {vm.counter.rest}"
    assert len(now["transcript"]) == len(vm.blocks)
    for entry, block in zip(now["transcript"], vm.blocks, strict=True):
        if entry.startswith("child:"):
            assert block.child is not None and entry == f"child:{block.child.run_id}"
        else:
            assert entry == block_markdown(block)
    if vm.live is None:
        assert now["live"] == ""
    else:
        *frozen, tail = now["live"].split("|")
        assert vm.live.text.endswith(tail)
        at = 0
        for piece in frozen:  # each frozen block is the text's next paragraph(s), in order
            at = vm.live.text.index(piece, at) + len(piece)
        assert at <= len(vm.live.text) - len(tail)


def descendants(result: RunResult) -> Iterator[RunResult]:
    for child in result.children:
        yield child
        yield from descendants(child)


# ----------------------------------------------------------- the fold property


def test_every_position_is_the_fold_of_its_first_k_events(result: RunResult) -> None:
    timeline = timeline_of(result, every=16)
    events = timeline.events
    children = list(descendants(result))
    assert len(children) == 3 and len(events) == len(result.events) + sum(
        len(c.events) for c in children
    )
    kinds = {e.event for e in events}
    assert {"thread.run.step.delta", "thread.run.step.completed", "thread.message.delta"} <= kinds
    for k in range(len(events) + 1):  # every k, in order (the forward path)
        assert timeline.view_at(k) == present(fold_of(events, result.run_id, k), timeline.info)
    for child in children:
        info = timeline.child_info[child.run_id]
        child_info = RunInfo(info.agent_name, "", info.show_streaming_message)
        for k in range(0, len(events) + 1, 5):
            want = fold_of(events, child.run_id, k)
            got = timeline.child_view_at(k, child.run_id)
            assert got == (present(want, child_info) if want.events else None)


def test_any_order_of_seeks_gives_the_fold(result: RunResult) -> None:
    timeline = timeline_of(result, every=8)
    events = timeline.events
    end = len(events)

    with recording_comms():
        scrubber = Scrubber(timeline)

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(st.integers(0, end), min_size=1, max_size=25))
        def seeks(positions: list[int]) -> None:
            for k in positions:
                want = present(fold_of(events, result.run_id, k), timeline.info)
                assert timeline.view_at(k) == want
                tree = timeline.tree_at(k)
                for run_id, state in tree.runs.items():
                    assert state.events == fold_of(events, run_id, k).events
                scrubber.position = k  # and the widget shows that view model
                assert_shows(shown(scrubber.view), want)

        seeks()


def test_checkpoints_are_not_shared_with_what_a_seek_folds(result: RunResult) -> None:
    """A checkpoint is a deep copy: folding on from it never changes it."""
    timeline = timeline_of(result, every=4)
    before = timeline.view_at(9)
    timeline.view_at(len(timeline))  # folds far past the checkpoint at 8
    timeline.view_at(10)
    assert timeline.view_at(9) == before
    kept = timeline.tree_at(9)
    timeline.view_at(len(timeline))
    assert present(kept.root, timeline.info) == before  # a tree handed out is the caller's own


# ------------------------------------------------------------------ the widget


def test_setting_position_from_code_changes_what_the_widget_shows(result: RunResult) -> None:
    with recording_comms() as wire:
        scrubber = scrub(result)
        end = len(scrubber.timeline)
        assert scrubber.position == end and scrubber.slider.value == end
        final = shown(scrubber.view)
        assert 'data-status="completed"' in final["header"] and final["live"] == ""
        assert final["transcript"][0] == "Starting. Asking two helpers."
        assert any("Done." in md for md in final["transcript"])
        wire.clear()

        # a position in the middle of the boss's long streamed answer
        events = scrubber.timeline.events
        mid = (
            max(
                i
                for i, e in enumerate(events, 1)
                if e.run_id == result.run_id and e.event == "thread.message.delta"
            )
            - 20
        )
        scrubber.position = mid
        vm = scrubber.view_at(mid)
        now = shown(scrubber.view)
        assert scrubber.slider.value == mid  # the slider follows the trait
        assert now["counter"] == f"<b>{vm.counter.number}</b> {vm.counter.rest}"
        assert 'data-status="in_progress"' in now["header"]
        assert_shows(now, vm)
        assert vm.live is not None and now["live"].count("|") >= 1  # frozen blocks + tail
        assert wire.count("update") > 0  # it was sent, not only changed in the kernel
        sent = wire.bytes

        # one event on: only the tail and the counters travel, not the whole text
        wire.clear()
        scrubber.position = mid + 1
        assert wire.bytes < sent and wire.bytes < len(vm.live.text)
        scrubber.close()


def test_a_position_looks_the_same_whatever_came_before(result: RunResult) -> None:
    """Rendering is a function of the position: a fresh scrubber set to k and one that
    wandered there show the same thing (children, tool steps and live text included)."""
    with recording_comms():
        wanderer = scrub(result, every=8)
        end = len(wanderer.timeline)
        for k in (end // 2, 3, end - 1, end // 3, end // 2 + 7, 0, end // 2 + 1):
            wanderer.position = k
            fresh = Scrubber(Timeline(_root_events(result), _child_events(result)))
            fresh.position = k
            assert shown(wanderer.view) == shown(fresh.view), k
            vm = wanderer.view_at(k)
            assert shown(wanderer.view)["counter"].startswith(f"<b>{vm.counter.number}</b>")
            fresh.close()
        # children at the end: each placed under its step, collapsed, with its own view
        wanderer.position = end
        final = shown(wanderer.view)
        talker, tooler = result.children
        assert f"child:{talker.run_id}" in final["transcript"]
        assert "Talking here." in final["children"][talker.run_id]["transcript"]
        leaf = talker.children[0]
        assert final["children"][talker.run_id]["children"][leaf.run_id]["transcript"] == ["Leaf."]
        assert any("add(" in md for md in final["children"][tooler.run_id]["transcript"])
        assert wanderer.view.children[talker.run_id].accordion.selected_index is None


def _root_events(result: RunResult) -> Any:
    from nearnb.view.timeline import RunEvents

    return RunEvents(result.run_id, result.events, result.agent)


def _child_events(result: RunResult) -> list[Any]:
    from nearnb.view.timeline import RunEvents

    return [RunEvents(c.run_id, c.events, c.agent) for c in descendants(result)]


# ---------------------------------------------------------------- the inputs


def same_run(a: Timeline, b: Timeline) -> None:
    """Two timelines of one run: the same events in the same order, the same views."""
    assert [(e.run_id, e.seq, e.event, e.at) for e in a.events] == [
        (e.run_id, e.seq, e.event, e.at) for e in b.events
    ]
    for k in (0, len(a) // 3, len(a) // 2, len(a)):
        assert a.view_at(k) == b.view_at(k)
        assert a.label(k) == b.label(k)


def test_a_run_id_a_hub_url_and_a_file_scrub_as_the_result_does(
    result: RunResult, tmp_path: Path
) -> None:
    base = timeline_of(result)
    assert set(base.child_info) == {c.run_id for c in descendants(result)}
    same_run(base, timeline_of(result.run_id))  # from the default store, children included

    with running_hub(token="scrub-token") as hub:
        root = f"{hub.url}/v1/threads/{result.thread_id}"
        for url in (
            f"{root}/runs/{result.run_id}",
            f"{root}/runs/{result.run_id}/export",
            f"{root}/stream/{result.run_id}?framing=near",
        ):
            same_run(base, timeline_of(url, token="scrub-token"))
        with pytest.raises(ScrubError, match=r"401 .*pass token="):
            timeline_of(f"{root}/runs/{result.run_id}")
        with pytest.raises(ScrubError, match="404 run not found on the hub"):
            timeline_of(f"{root}/runs/run_nope", token="scrub-token")

    path = result.save(tmp_path / "run.jsonl")
    alone = timeline_of(str(path))  # no child files beside it: the steps stay tool calls
    assert [e.seq for e in alone.events] == [e.seq for e in result.events]
    assert alone.child_info == {}
    assert alone.view_at(len(alone)) == present(reduce(result.events), alone.info)
    for child in descendants(result):
        child.save(tmp_path / f"{child.run_id}.jsonl")
    same_run(base, timeline_of(path))  # a Path, with the children's files beside it

    with recording_comms():
        for source in (result, result.run_id, path):
            scrubber = scrub(source)
            assert isinstance(scrubber, Scrubber) and scrubber.position == len(base)
            scrubber.close()


def unfinished(path: Path, tmp_path: Path) -> Path:
    """The recording without its run's end (as a crashed producer would leave it)."""
    lines = path.read_text().splitlines(keepends=True)
    ends = ('"event":"thread.run.completed"', '"event":"done"')
    out = tmp_path / "unfinished.jsonl"
    out.write_text("".join(line for line in lines if not any(e in line for e in ends)))
    return out


def test_bad_inputs_are_refused_naming_the_problem(result: RunResult, tmp_path: Path) -> None:
    path = result.save(tmp_path / "run.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    (tmp_path / "notes.jsonl").write_text("hello\n")
    (tmp_path / "broken.jsonl").write_text(
        "".join(lines[:2]) + '{"type":"event","seq":"x","event":"e","at":1,"data":{}}\n'
    )
    (tmp_path / "empty.jsonl").write_text(lines[0])
    free = running_port()
    cases: list[tuple[Any, str]] = [
        ("run_nope", "run not found: run_nope"),
        (tmp_path / "missing.jsonl", "no recorded-run file at .*missing.jsonl"),
        (str(tmp_path / "missing.jsonl"), "no recorded-run file at .*missing.jsonl"),
        (tmp_path / "notes.jsonl", "notes.jsonl is not a nearnb run recording"),
        (tmp_path / "broken.jsonl", "broken.jsonl line 3: 'event' is malformed"),
        (tmp_path / "empty.jsonl", "empty.jsonl has no events to scrub"),
        (unfinished(path, tmp_path), "has not finished .*'in_progress'.*nearnb.attach"),
        (42, "cannot scrub 42: expected a RunResult, a run id, a hub URL"),
        ("", "cannot scrub ''"),
        ("http://127.0.0.1:9/elsewhere", "is not a hub URL of a run"),
        (f"http://127.0.0.1:{free}/v1/threads/t/runs/r", "cannot reach the hub at"),
    ]
    for source, message in cases:
        with pytest.raises(ScrubError, match=message):
            scrub(source)


def running_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------- controls, fallbacks


def test_buttons_slider_and_frontend_updates_move_the_position(result: RunResult) -> None:
    with recording_comms():
        scrubber = scrub(result)
        end = len(scrubber.timeline)
        click(scrubber.back)
        assert scrubber.position == end - 1 and scrubber.slider.value == end - 1
        click(scrubber.forward)
        click(scrubber.forward)  # clamped at the end
        assert scrubber.position == end
        # what a drag sends: the frontend slider's new value, as a comm update
        scrubber.slider.comm.handle_msg(
            {"method": "update", "state": {"value": 5}, "buffer_paths": []}
        )
        assert scrubber.position == 5
        assert shown(scrubber.view)["counter"].startswith(
            f"<b>{scrubber.view_at(5).counter.number}</b>"
        )
        assert scrubber.timeline.label(5) in scrubber.label.value.replace("<code>", "").replace(
            "</code>", ""
        )
        scrubber.slider.value = 0  # the slider's left end: before the first event
        assert scrubber.position == 0 and "before the first event" in scrubber.label.value
        with pytest.raises(traitlets.TraitError, match=rf"position {end + 1} is outside 0..{end}"):
            scrubber.position = end + 1
        assert scrubber.position == 0
        play_link = scrubber._links[0]  # Play drives the slider in the browser
        assert (play_link.source, play_link.target) == (
            (scrubber.play, "value"),
            (scrubber.slider, "value"),
        )
        assert scrubber.play.max == end and scrubber.slider.max == end


def test_without_a_frontend_it_reads_as_text_and_markdown(result: RunResult) -> None:
    with recording_comms():
        scrubber = scrub(result)
    end = len(scrubber.timeline)
    text = repr(scrubber)
    assert text.startswith(f"scrub {end:,} / {end:,} · done · +")
    assert "boss · scripted::test-model · completed" in text and "Starting. Asking two" in text
    k = next(i for i, e in enumerate(scrubber.timeline.events, 1) if e.event.endswith(".delta"))
    scrubber.position = k + 1
    text = repr(scrubber)
    assert "running" in text and scrubber.view_at(k + 1).live.text in text
    bundle = scrubber._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == scrubber.model_id
    assert bundle["text/plain"] == text
    markdown = bundle["text/markdown"]
    assert markdown.startswith(f"**{scrubber.timeline.label(k + 1)}**") and "running" in markdown
    assert json.dumps(bundle)  # a displayable bundle


def test_next_cut_is_the_same_for_every_prefix() -> None:
    """The frozen blocks of a streamed text never move as it grows (nor as a seek goes back)."""
    text = ("word " * 90 + "\n\n") * 6 + "```\n" + "code\n" * 600 + "```\n" + "x\n" * 900
    cuts = [0]
    while (cut := next_cut(text, cuts[-1])) is not None:
        cuts.append(cut)
    assert len(cuts) > 6
    for length in range(0, len(text), 97):
        prefix, got = text[:length], [0]
        while (cut := next_cut(prefix, got[-1])) is not None:
            got.append(cut)
        assert got == [c for c in cuts if c <= length]
    inside = text.index("```\n") + 4, text.index("```\n", text.index("```\n") + 1)
    assert not any(inside[0] < c <= inside[1] for c in cuts)  # never inside a code fence


def test_in_a_real_kernel_the_saved_notebook_keeps_a_readable_position(
    result: RunResult, tmp_path: Path
) -> None:
    """nbclient (a kernel, no frontend): the cell's value is the widget plus Markdown and
    text of the position shown, so a reopened notebook without widget state still reads."""
    import nbformat
    from nbclient import NotebookClient

    path = result.save(tmp_path / "run.jsonl")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [
        nbformat.v4.new_code_cell(f"from nearnb.scrubbing import scrub\ns = scrub({str(path)!r})"),
        nbformat.v4.new_code_cell("s.position = 12\ns"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    (output,) = nb.cells[1].outputs
    data = output["data"]
    assert "application/vnd.jupyter.widget-view+json" in data
    timeline = timeline_of(path)
    assert data["text/markdown"].startswith(f"**{timeline.label(12)}**")
    assert data["text/plain"].startswith(f"scrub {timeline.label(12)}")
    assert "running" in data["text/plain"]
