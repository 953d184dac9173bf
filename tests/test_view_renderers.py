"""Handle, plain and terminal renderers, and the public API on real runs.

Real runs use the scripted OpenAI-compatible server over HTTP (no mocks);
the widget view's wire traffic goes to recording comms.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from nearnb import api
from nearnb.runs import start_run
from nearnb.view import open_view
from nearnb.view.bundle import RunInfo
from nearnb.view.handle import TAIL_CHARS, HandleRenderer
from nearnb.view.plain import PlainRenderer
from nearnb.view.sink import RecordingSink
from nearnb.view.terminal import TerminalRenderer
from nearnb.view.testing import EventFactory, ManualClock, recording_comms
from tests.agent_helpers import make_agent
from tests.support.openai_server import Reply, ScriptedOpenAI

TWO_REPLIES = (
    "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
    "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
)


def sample_run(factory: EventFactory) -> list:
    return [
        *factory.start(),
        *factory.streamed_message(["Socrates ", "asks."]),
        *factory.streamed_message(["Plato ", "writes."]),
        *factory.end(),
    ]


# ---------------------------------------------------------------------- handle


def test_handle_view_updates_in_place_and_ends_static() -> None:
    clock, sink = ManualClock(), RecordingSink()
    view = HandleRenderer(RunInfo(agent_name="a"), sink=sink, clock=clock, autoflush=False)
    factory = EventFactory(clock=clock)
    msg_id, created = factory.message_created()
    for event in [*factory.start(), created]:
        view(event)
    for i in range(100):  # 100 deltas within 0.1 s: coalesced
        clock.now = i / 1000
        view(factory.delta(msg_id, "x" * 50))
    updates = [c for c in sink.calls if c[0] == "update"]
    assert len(updates) <= 4
    live = view.live_bundle()["text/markdown"]
    assert "…" + "x" * TAIL_CHARS in live and "x" * (TAIL_CHARS + 1) not in live  # bounded tail
    for event in [factory.message_done(msg_id, "done text"), *factory.end()]:
        view(event)
    view.finish()
    assert {c[3] for c in sink.calls} == {view.display_id}  # one output, updated in place
    ((data, metadata),) = sink.final
    assert "done text" in data["text/markdown"] and metadata["nearnb"]["status"] == "completed"


# ----------------------------------------------------------------------- plain


def test_plain_view_shows_the_result_once_at_the_end() -> None:
    sink = RecordingSink()
    view = PlainRenderer(RunInfo(agent_name="a"), sink=sink)
    factory = EventFactory()
    events = sample_run(factory)
    for event in events:
        view(event)
    assert sink.calls == []
    view.finish()
    view.finish()  # idempotent
    ((kind, data, metadata, display_id),) = sink.calls
    assert kind == "show" and display_id is None
    assert "Socrates asks." in data["text/markdown"] and "Plato writes." in data["text/plain"]


def test_plain_view_with_placeholder_replaces_it_by_id() -> None:
    sink = RecordingSink()
    view = PlainRenderer(RunInfo(agent_name="a"), sink=sink, placeholder=True)
    for event in sample_run(EventFactory()):
        view(event)
    view.finish()
    assert [c[0] for c in sink.calls] == ["show", "update"]
    assert "running" in sink.calls[0][1]["text/plain"]
    assert "Plato writes." in sink.final[0][0]["text/plain"]


# -------------------------------------------------------------------- terminal


def test_terminal_prints_deltas_as_they_arrive() -> None:
    out, status = io.StringIO(), io.StringIO()
    view = TerminalRenderer(stream=out, status=status, summary=True)
    factory = EventFactory()
    msg_id, created = factory.message_created()
    view(created)
    view(factory.delta(msg_id, "Hel"))
    assert out.getvalue() == "Hel"  # not buffered until the end
    view(factory.delta(msg_id, "lo"))
    view(factory.message_done(msg_id, "Hello"))
    for event in factory.end():
        view(event)
    view.finish()
    assert out.getvalue() == "Hello\n\n"
    assert "[completed · 2 deltas" in status.getvalue()


def test_terminal_shows_final_messages_of_agents_that_do_not_stream() -> None:
    """NEAR's CLI printed nothing here; nearnb prints the answer."""
    out = io.StringIO()
    view = TerminalRenderer(stream=out, status=None)
    factory = EventFactory()
    msg_id, created = factory.message_created()
    for event in [created, factory.message_done(msg_id, "A complete answer."), *factory.end()]:
        view(event)
    view.finish()
    assert out.getvalue() == "A complete answer.\n\n"


def test_terminal_without_live_text_prints_only_answers() -> None:
    out, status = io.StringIO(), io.StringIO()
    view = TerminalRenderer(stream=out, status=status, show_streaming_message=False)
    factory = EventFactory()
    notice_id, notice = factory.message_created("system:notice")
    events = [
        notice,
        factory.message_done(notice_id, "embedded model", message_type="system:notice"),
        *factory.streamed_message(["dra", "ft"], message_type="agent:intermediate"),
        *factory.streamed_message(["ans", "wer"]),
    ]
    for event in events:
        view(event)
    view.finish()
    assert out.getvalue() == "answer\n\n"
    assert status.getvalue() == "note: embedded model\n"


# ------------------------------------------------------------ API on real runs


def test_run_agent_renders_a_real_run_in_the_widget_view(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(Reply.text(*["Socrates "] * 30, delay=0.002), Reply.text("Plato", " answers."))
    agent = make_agent(tmp_path / "two", TWO_REPLIES)
    sink = RecordingSink()
    with recording_comms() as wire:
        # a recording sink is a view option, so wire the run as api.render does
        handle = start_run(agent, "Hi")
        view = open_view("widget", agent_name=handle.agent.name, sink=sink, on_stop=handle.cancel)
        handle.subscribe(view, replay=True)
        result = handle.wait()
        view.finish(result)
    assert result.status == "completed" and result.deltas == 32
    ((data, metadata),) = sink.final
    assert "Socrates " * 29 in data["text/markdown"] and "Plato answers." in data["text/markdown"]
    assert metadata["nearnb"]["deltas"] == 32 and metadata["nearnb"]["run_id"] == result.run_id
    assert wire.count("update") > 3


def test_run_agent_plain_prints_the_result_outside_ipython(
    srv: ScriptedOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srv.script(["Know ", "thyself."], ["The ", "Forms."])
    agent = make_agent(tmp_path / "two", TWO_REPLIES)
    result = api.run_agent(agent, "Hi", display="plain")
    assert result.status == "completed" and result.text == "Know thyself.\n\nThe Forms."
    printed = capsys.readouterr().out
    assert "two · scripted::test-model · completed · 4 deltas" in printed
    assert printed.index("Know thyself.") < printed.index("The Forms.")


def test_run_agent_rejects_a_bad_display_before_starting(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    agent = make_agent(tmp_path / "two", TWO_REPLIES)
    with pytest.raises(ValueError, match="display='fancy'"):
        api.run_agent(agent, "Hi", display="fancy")
    assert srv.requests == []


def test_run_agent_without_waiting_finishes_the_view_itself(
    srv: ScriptedOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srv.script(Reply.text("slow ", "answer", delay=0.05), ["second"])
    agent = make_agent(tmp_path / "two", TWO_REPLIES)
    handle = api.run_agent(agent, "Hi", display="plain", wait=False)
    assert not handle.done
    result = handle.wait()
    assert result.status == "completed"
    for _ in range(100):
        if "second" in capsys.readouterr().out:
            break
        threading.Event().wait(0.02)
    else:
        pytest.fail("the view did not finish by itself")


def test_render_replays_a_list_of_events(capsys: pytest.CaptureFixture[str]) -> None:
    state = api.render(sample_run(EventFactory()), display="plain", agent_name="replayed")
    assert state.status == "completed" and state.deltas == 4
    assert "replayed · local::smollm2 · completed · 4 deltas" in capsys.readouterr().out


def test_a_failing_agent_is_shown_not_raised(
    srv: ScriptedOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = make_agent(tmp_path / "bad", "raise RuntimeError('agent broke')\n")
    result = api.run_agent(agent, "Hi", display="plain")
    assert result.status == "failed"
    assert "error: RuntimeError: agent broke" in capsys.readouterr().out
