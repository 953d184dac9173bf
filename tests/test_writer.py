"""Agent-written deltas: ``env.stream_reply()`` and ``env.add_reply(iterable)``."""

from __future__ import annotations

from pathlib import Path

from nearnb.runs import run_agent
from nearnb.store import Store
from tests.agent_helpers import make_agent
from tests.support.openai_server import ScriptedOpenAI


def _names(result) -> list[str]:  # noqa: ANN001
    return [e.event for e in result.events if e.event.startswith("thread.message.")]


def test_stream_reply_writes_one_message_as_deltas(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    agent = make_agent(
        tmp_path / "w",
        "with env.stream_reply() as w:\n"
        "    for piece in ['Search', '', ' results', ' arriving']:\n"
        "        w.write(piece)\n"
        "env.add_reply(str(w.deltas))\n",
    )
    result = run_agent(agent, "go")
    assert result.status == "completed", result.traceback
    assert [m.text for m in result.messages] == ["Search results arriving", "3"]
    assert result.deltas == 3  # counted like a model's deltas; the empty write is none
    assert _names(result)[:6] == [
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.delta",
        "thread.message.delta",
        "thread.message.completed",
    ]


def test_add_reply_streams_an_iterator_and_a_list(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    agent = make_agent(
        tmp_path / "it",
        "env.add_reply(f'step {i}. ' for i in range(3))\n"
        "env.add_reply(['a', 'b'])\n"
        "env.add_reply({'not': 'streamed'})\n",
    )
    result = run_agent(agent, "go")
    assert result.status == "completed", result.traceback
    assert [m.text for m in result.messages] == [
        "step 0. step 1. step 2. ",
        "ab",
        "{'not': 'streamed'}",
    ]
    assert result.deltas == 5


def test_an_exception_inside_the_with_keeps_the_partial_text_incomplete(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    agent = make_agent(
        tmp_path / "x",
        "with env.stream_reply(message_type='progress') as w:\n"
        "    w.write('half ')\n"
        "    w.write('way')\n"
        "    raise RuntimeError('tool died')\n",
    )
    store = Store()
    result = run_agent(agent, "go", store=store)
    assert result.status == "failed"
    (stored,) = store.list_messages(result.thread_id, run_id=result.run_id)
    assert stored.status == "incomplete" and stored.text == "half way"
    assert stored.incomplete_details is not None
    assert stored.incomplete_details.reason == "run_failed"


def test_a_writer_left_open_completes_when_the_run_ends_well(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    agent = make_agent(
        tmp_path / "open",
        "w = env.stream_reply()\nw.write('left ')\nw.write('open')\n",
    )
    result = run_agent(agent, "go")
    assert result.status == "completed", result.traceback
    assert [m.text for m in result.messages] == ["left open"]
    assert result.messages[0].status == "completed"


def test_show_streaming_message_false_still_counts_written_deltas(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    from nearnb.view import open_view
    from nearnb.view.sink import RecordingSink

    agent = make_agent(
        tmp_path / "quiet",
        "env.add_reply(iter(['one ', 'two']))\n",
        show_streaming_message=False,
    )
    sink = RecordingSink()
    view = open_view("handle", agent_name="quiet", show_streaming_message=False, sink=sink)
    result = run_agent(agent, "go", on_event=view)
    view.finish(result)
    assert result.deltas == 2
    (final, _), *_ = sink.final
    assert "one two" in final["text/markdown"]
    assert "2 deltas" in final["text/plain"] or "2 deltas" in final["text/markdown"]
