"""present(state, info) -> ViewModel, and the media that map it (Markdown, text).

The view model is pure, so it is tested on hand-built events in a plain
process; the bundle test pins the exact Markdown a saved notebook keeps for a
run without tool steps (it must not change shape under nbval).
"""

from __future__ import annotations

import io
import subprocess
import sys

from nearnb.reducer import reduce
from nearnb.view.bundle import RunInfo, final_bundle
from nearnb.view.handle import HandleRenderer
from nearnb.view.mixes import TimedFactory
from nearnb.view.present import AnswerBlock, ToolBlock, present
from nearnb.view.sink import RecordingSink
from nearnb.view.terminal import TerminalRenderer
from nearnb.view.testing import EventFactory, ManualClock

INFO = RunInfo(agent_name="my_agent", model="requested::m")


def with_tools(*, finished: bool = True) -> TimedFactory:
    """An answer, a streamed tool step (completed with its output), an answer."""
    f = TimedFactory()
    f.start()
    f.streamed_message(["Let me ", "add."])
    f.step("thread.run.step.created", "step_1", "in_progress", [])
    f.step_delta("step_1", 0, name="add")
    f.step_delta("step_1", 0, arguments='{"a": 1, ')
    f.step_delta("step_1", 0, arguments='"b": 2}')
    if finished:
        call = {
            "id": "call_step_1",
            "type": "function",
            "function": {"name": "add", "arguments": '{"a": 1, "b": 2}', "output": "3"},
        }
        f.step("thread.run.step.completed", "step_1", "completed", [call])
        f.streamed_message(["It is ", "3."])
    return f


# ------------------------------------------------------------------ view model


def test_header_and_counter_keep_todays_wording() -> None:
    f = TimedFactory()
    f.start()
    msg_id, _ = f.message_created()
    for i in range(1234):
        f.at(1.0 + i / 1000).delta(msg_id, "abcd")
    vm = present(reduce(e for _, e in f.timed), RunInfo())
    assert (vm.header.agent, vm.header.model, vm.header.label) == (
        "agent",
        "local::smollm2",
        "running",
    )
    assert vm.counter.line == "1,234 deltas received · 4,936 chars · 1,000.8 deltas/s · 2.2 s"
    assert vm.counter.summary == "1,234 deltas · 4,936 chars · 2.2 s"
    assert present(reduce([]), INFO).header.model == "requested::m"  # until the run names it


def test_stop_shows_cancelling_until_the_run_ends() -> None:
    f = EventFactory()
    state = reduce(f.start())
    assert present(state, INFO, stop_requested=True).header.status == "cancelling"
    assert present(state, INFO, stop_requested=True).status == "in_progress"
    reduce(f.end("cancelled"), state)
    assert present(state, INFO, stop_requested=True).header.status == "cancelled"


def test_blocks_are_answers_and_tool_steps_in_the_order_they_finished() -> None:
    state = reduce(e for _, e in with_tools().timed)
    vm = present(state, INFO)
    assert [type(b).__name__ for b in vm.blocks] == ["AnswerBlock", "ToolBlock", "AnswerBlock"]
    tool = vm.blocks[1]
    assert isinstance(tool, ToolBlock) and tool.status == "completed"
    assert [(c.name, c.arguments, c.output) for c in tool.calls] == [
        ("add", '{"a": 1, "b": 2}', "3")
    ]
    later = present(state, INFO, since=2)  # a live view that shows two already
    assert later.blocks == vm.blocks[2:] and later.timeline_end == vm.timeline_end == 3


def test_a_running_step_is_live_not_a_block() -> None:
    state = reduce(e for _, e in with_tools(finished=False).timed)
    vm = present(state, INFO)
    assert [type(b).__name__ for b in vm.blocks] == ["AnswerBlock"]
    (step,) = vm.live_steps
    assert step.calls[0].arguments == '{"a": 1, "b": 2}' and step.calls[0].output is None


def test_the_live_message_follows_show_streaming_message_and_neras_rule() -> None:
    f = EventFactory()
    draft = [*f.start(), *f.streamed_message(["Notes"], message_type="agent:intermediate")]
    state = reduce(draft)
    live = present(state, INFO).live
    assert live is not None and live.text == "Notes" and live.hidden and not live.streaming
    notice_id, notice = f.message_created("system:notice")
    reduce([notice, f.message_done(notice_id, "n", message_type="system:notice")], state)
    assert present(state, INFO).live is not None  # a notice does not replace the draft
    msg_id, created = f.message_created()
    reduce([created, f.delta(msg_id, "Virtue")], state)
    live = present(state, INFO).live
    assert live is not None and live.text == "Virtue" and live.streaming and not live.hidden
    quiet = RunInfo(show_streaming_message=False)
    assert present(state, quiet).live is None  # only the counter moves
    reduce([f.message_done(msg_id, "Virtue."), *f.end()], state)
    assert present(state, INFO).live is None and present(state, INFO).answers[0].text == "Virtue."


def test_errors_carry_summary_and_traceback() -> None:
    f = EventFactory()
    start = f.start()
    failed = f.end(
        "failed",
        last_error={"code": "x", "message": "ValueError: one\nmore lines"},
        metadata={"nearnb.traceback": "Traceback ..."},
    )
    error = present(reduce([*start, *failed]), INFO).error
    assert error is not None
    assert (error.status, error.summary, error.traceback) == (
        "failed",
        "ValueError: one",
        "Traceback ...",
    )
    silent = present(reduce(EventFactory().end("failed")), INFO).error
    assert silent is not None and silent.summary == "run failed" and silent.message is None
    assert present(reduce(EventFactory().end()), INFO).error is None


def test_present_needs_no_ipython() -> None:
    code = (
        "import sys, nearnb.view.present, nearnb.view.bundle;"
        "assert not {'IPython', 'ipywidgets'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ the media


def test_bundle_markdown_is_unchanged_for_runs_without_tool_steps() -> None:
    """Pinned: the saved notebooks hold exactly this shape."""
    f = EventFactory()
    notice_id, notice = f.message_created("system:notice")
    events = [
        *f.start(),
        notice,
        f.message_done(notice_id, "using the embedded model", message_type="system:notice"),
        *f.streamed_message(["Know ", "thyself."]),
        *f.streamed_message(["draft"], message_type="agent:intermediate"),
        *f.streamed_message(["The ", "Forms."]),
        *f.end(),
    ]
    data, metadata = final_bundle(reduce(events), RunInfo(agent_name="my_agent"))
    badge = (
        '<span class="nearnb-badge nearnb-status-completed" data-status="completed" '
        'style="background:#16a34a;color:white;border-radius:0.6em;padding:0 0.5em;'
        'font-size:85%">completed</span>'
    )
    assert data["text/markdown"] == (
        rf"**my\_agent** · `local::smollm2` · {badge} · 5 deltas · 28 chars · 0.0 s"
        "\n\n> using the embedded model\n\nKnow thyself.\n\n---\n\nThe Forms."
    )
    assert data["text/plain"] == (
        "my_agent · local::smollm2 · completed · 5 deltas\n\n"
        "note: using the embedded model\n\nKnow thyself.\n\nThe Forms."
    )
    assert metadata == {
        "nearnb": {
            "thread_id": "thread_test",
            "run_id": "run_test",
            "status": "completed",
            "deltas": 5,
            "chars": 28,
            "agent": "my_agent",
            "model": "local::smollm2",
            "elapsed": 0.0,
            "answers": 2,
        }
    }


def test_bundle_shows_a_short_line_per_tool_call() -> None:
    data, metadata = final_bundle(reduce(e for _, e in with_tools().timed), INFO)
    md = data["text/markdown"]
    assert 'Let me add.\n\n🔧 `add({"a": 1, "b": 2})` → 3\n\nIt is 3.' in md
    assert "---" not in md  # a rule only between two consecutive answers
    assert 'Let me add.\n\ntool add({"a": 1, "b": 2}) -> 3\n\nIt is 3.' in data["text/plain"]
    assert metadata["nearnb"]["answers"] == 2


def test_a_cancelled_run_keeps_its_unfinished_tool_step_marked() -> None:
    f = with_tools(finished=False)
    f.end("cancelled")
    md = final_bundle(reduce(e for _, e in f.timed), INFO)[0]["text/markdown"]
    assert md.endswith('🔧 `add({"a": 1, "b": 2})` …')


def test_handle_view_shows_running_tool_steps_and_the_live_counter() -> None:
    clock, sink = ManualClock(), RecordingSink()
    view = HandleRenderer(INFO, sink=sink, clock=clock, autoflush=False)
    for _, event in with_tools(finished=False).timed:
        view(event)
    live = view.live_bundle()
    assert "🔧 `add(" in live["text/markdown"] and "deltas received" in live["text/plain"]
    assert 'tool add({"a": 1, "b": 2})' in live["text/plain"]


def test_terminal_prints_tool_calls_apart_from_the_answer() -> None:
    out, status = io.StringIO(), io.StringIO()
    view = TerminalRenderer(stream=out, status=status)
    for _, event in with_tools().timed:
        view(event)
    view.finish()
    assert out.getvalue() == "Let me add.\n\nIt is 3.\n\n"
    assert status.getvalue() == 'tool add({"a": 1, "b": 2}) -> 3\n'


def test_terminal_does_not_print_a_reply_to_another_thread() -> None:
    out = io.StringIO()
    view = TerminalRenderer(stream=out, status=None)
    f = EventFactory()
    msg_id, created = f.message_created()
    elsewhere = {**created.data, "thread_id": "thread_other"}
    view(f.event("thread.message.created", elsewhere))
    view(f.delta(msg_id, "not here"))
    view(
        f.event(
            "thread.message.completed",
            {**f.message_done(msg_id, "not here").data, "thread_id": "thread_other"},
        )
    )
    for event in f.streamed_message(["here"]):
        view(event)
    view.finish()
    assert out.getvalue() == "here\n\n"
    assert isinstance(present(view.state, INFO).blocks[0], AnswerBlock)
