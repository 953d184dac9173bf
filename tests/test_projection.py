"""The store is a projection of the events: its rows equal a pure fold of the run's log.

Hypothesis writes agent scripts (streamed and whole replies, partly iterated
streams, intermediate streams, streamed tool calls, tool steps, a reply to
another thread, and an ending that completes, fails or is interrupted), runs
each as a real agent against the scripted OpenAI server on 127.0.0.1, and
checks what the REST API would answer (the run and message rows) against
:func:`nearnb.projection.project` of the run's stored event log — and that
the stored log is exactly the log the run emitted.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nearnb.events import Message, Run, new_id, now, text_content
from nearnb.projection import Rows, project
from nearnb.runs import run_agent
from nearnb.store import BaseStore
from tests.agent_helpers import make_agent
from tests.support.openai_server import Reply, ScriptedOpenAI

_counter = itertools.count()

words = st.lists(st.sampled_from(["a", "bc", "def ", "é", "\n", "ok"]), min_size=1, max_size=5)
step = st.one_of(
    st.tuples(st.just("stream_reply"), words),
    st.tuples(st.just("partial_then_reply"), words, st.integers(0, 3)),
    st.tuples(st.just("whole_reply"), st.text(min_size=0, max_size=12)),
    st.tuples(st.just("intermediate"), words),
    st.tuples(st.just("stream_tool_call"), st.sampled_from(["get_time", "lookup"])),
    st.tuples(st.just("tool_step"), st.sampled_from(["UTC", "CET"])),
    st.tuples(st.just("other_thread"), st.text(min_size=1, max_size=8)),
)
ending = st.sampled_from(["return", "raise", "interrupt_mid_stream"])

TOOL_PRELUDE = (
    "def clock(tz: str) -> str:\n"
    '    """The time in a zone.\n\n    Args:\n        tz: the zone\n    """\n'
    "    return 'noon ' + tz\n"
    "env.get_tool_registry().register_tool(clock)\n"
    "MSGS = [{'role': 'user', 'content': 'hi'}]\n"
)


def _agent_code(steps: list[tuple], end: str, srv: ScriptedOpenAI, other_thread: str) -> str:
    """Agent source for ``steps``, scripting the server replies they consume, in order."""
    lines = [TOOL_PRELUDE]
    for item in steps:
        kind = item[0]
        if kind == "stream_reply":
            srv.script(Reply.text(*item[1]))
            lines.append("env.add_reply(env.completion(MSGS, stream=True))")
        elif kind == "partial_then_reply":
            srv.script(Reply.text(*item[1]))
            lines.append(
                "h = env.completion(MSGS, stream=True)\n"
                f"for _i, _c in zip(range({item[2]}), h):\n    pass\n"
                "env.add_reply(h)"
            )
        elif kind == "whole_reply":
            lines.append(f"env.add_reply({item[1]!r})")
        elif kind == "intermediate":
            srv.script(Reply.text(*item[1]))
            lines.append("env.completion(MSGS, stream=True).drain()")
        elif kind == "stream_tool_call":
            srv.script(Reply.tool_call(item[1], {"q": "x"}, text=["calling"]))
            lines.append("env.completion(MSGS, stream=True, tools=[]).drain()")
        elif kind == "tool_step":
            srv.script(Reply.tool_call("clock", {"tz": item[1]}))
            lines.append("env.completion_and_run_tools(list(MSGS))")
        elif kind == "other_thread":
            lines.append(f"env.add_reply({item[1]!r}, thread_id={other_thread!r})")
    if end == "raise":
        lines.append("raise RuntimeError('the agent gave up')")
    elif end == "interrupt_mid_stream":
        srv.script(Reply.text("par", "tial", "never"))
        lines.append(
            "h = env.completion(MSGS, stream=True)\n"
            "next(h); next(h); next(h)\n"
            "raise KeyboardInterrupt"
        )
    return "\n".join(lines) + "\n"


def _rows_of(store: BaseStore, run_id: str, thread_ids: list[str]) -> Rows:
    """What the REST API serves for the run: its run object and the messages it wrote."""
    rows = Rows()
    run = store.get_run(run_id)
    assert run is not None
    rows.runs[run.id] = run
    for thread_id in thread_ids:
        for message in store.list_messages(thread_id, run_id=run_id):
            rows.messages[message.id] = message
    return rows


def _dump(rows: Rows) -> dict:
    """Runs by id; messages per thread in thread order (order across threads means nothing)."""
    threads: dict[str, list[dict]] = {}
    for message in rows.messages.values():
        threads.setdefault(message.thread_id, []).append(message.model_dump(mode="json"))
    return {
        "runs": {k: v.model_dump(mode="json") for k, v in rows.runs.items()},
        "threads": threads,
    }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, max_size=5), end=ending)
def test_rest_objects_equal_a_fold_of_the_event_log(
    srv: ScriptedOpenAI, store: BaseStore, tmp_path: Path, steps: list[tuple], end: str
) -> None:
    """On each store backend (``store``): both must hold what the log folds to."""
    other = store.create_thread()
    assert srv.pending == 0, "a previous example left scripted replies"
    code = _agent_code(steps, end, srv, other.id)
    agent = make_agent(tmp_path / f"gen{next(_counter)}", code)
    result = run_agent(agent, "go", store=store)

    expected_status = {"return": "completed", "raise": "failed"}.get(end, "cancelled")
    assert result.status == expected_status, (code, result.traceback)
    logged = store.events(result.run_id)
    assert [(e.seq, e.event, json.dumps(e.data)) for e in logged] == [
        (e.seq, e.event, json.dumps(e.data)) for e in result.events
    ], "the stored log differs from the emitted one"
    folded = project(logged)
    assert _dump(_rows_of(store, result.run_id, [result.thread_id, other.id])) == _dump(folded)
    if end == "interrupt_mid_stream":
        last = list(folded.messages.values())[-1]
        assert last.status == "incomplete" and last.text == "partial"


def test_projection_folds_the_newest_state_per_object() -> None:
    """A pure check of the fold itself, with no run: last write wins, order is first-seen."""
    from nearnb.events import Event

    run = Run(id=new_id("run"), created_at=now(), thread_id="thread_x", assistant_id="a")
    first = Message(
        id=new_id("msg"),
        created_at=now(),
        thread_id="thread_x",
        role="assistant",
        content=text_content("one"),
    )
    second = first.model_copy(update={"id": new_id("msg")})
    events = [
        ("thread.run.created", run.model_dump(mode="json")),
        ("thread.message.created", {**first.model_dump(mode="json"), "content": []}),
        ("thread.message.completed", first.model_dump(mode="json")),
        ("thread.message.delta", {"id": second.id, "delta": {}}),
        ("thread.message.incomplete", second.model_dump(mode="json")),
        ("thread.run.step.created", {"id": "step_1"}),
        ("thread.run.completed", {**run.model_dump(mode="json"), "status": "completed"}),
        ("done", "[DONE]"),
    ]
    rows = project(
        Event.model_construct(seq=i, event=n, data=d, run_id=run.id, thread_id=run.thread_id)
        for i, (n, d) in enumerate(events, 1)
    )
    assert [r.status for r in rows.runs.values()] == ["completed"]
    assert list(rows.messages) == [first.id, second.id]
