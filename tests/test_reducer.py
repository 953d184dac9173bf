"""The pure reducer: events in, view state out."""

from __future__ import annotations

from nearnb.events import Event, message_delta, text_content
from nearnb.reducer import RunState, reduce


def ev(seq: int, name: str, data: object, at: float | None = None) -> Event:
    return Event(
        seq=seq,
        event=name,
        data=data,
        run_id="run_x",
        thread_id="thread_x",
        at=at if at is not None else float(seq),
    )


def msg(mid: str, text: str, status: str = "completed", **meta: str) -> dict:
    return {
        "id": mid,
        "object": "thread.message",
        "created_at": 1,
        "thread_id": "thread_x",
        "role": "assistant",
        "status": status,
        "content": text_content(text) if text else [],
        "metadata": meta,
    }


def socrates_then_plato() -> list[Event]:
    events = [
        ev(1, "thread.run.created", {"id": "run_x", "status": "queued", "model": "m"}),
        ev(2, "thread.run.in_progress", {"id": "run_x", "status": "in_progress"}),
        ev(3, "thread.message.created", msg("msg_a", "", "in_progress")),
    ]
    seq = 4
    for chunk in ["Know ", "thy", "self."]:
        events.append(ev(seq, "thread.message.delta", message_delta("msg_a", chunk)))
        seq += 1
    events.append(ev(seq, "thread.message.completed", msg("msg_a", "Know thyself.")))
    events.append(ev(seq + 1, "thread.message.created", msg("msg_b", "", "in_progress")))
    events.append(ev(seq + 2, "thread.message.delta", message_delta("msg_b", "Ideas.")))
    events.append(ev(seq + 3, "thread.message.completed", msg("msg_b", "Ideas.")))
    events.append(ev(seq + 4, "thread.run.completed", {"id": "run_x", "status": "completed"}))
    events.append(ev(seq + 5, "done", "[DONE]"))
    return events


def test_two_messages_counters_and_status() -> None:
    state = reduce(socrates_then_plato())
    assert [m.text for m in state.answers] == ["Know thyself.", "Ideas."]
    assert state.deltas == 4 and state.chars == len("Know thyself.Ideas.")
    assert state.status == "completed" and state.terminal and state.done
    assert state.streaming is None and state.model == "m"


def test_streaming_text_is_replaced_by_the_next_message() -> None:
    events = socrates_then_plato()
    state = RunState()
    for event in events[:5]:
        state.apply(event)
    assert state.streaming is not None and state.streaming.text == "Know thy"
    for event in events[5:9]:
        state.apply(event)
    assert state.streaming is not None and state.streaming.id == "msg_b"
    assert state.streaming.text == "Ideas."


def test_replayed_events_are_applied_once() -> None:
    events = socrates_then_plato()
    state = reduce(events)
    assert reduce(events[3:7], state).deltas == 4  # a reconnect resent 4 events
    assert [m.text for m in state.answers] == ["Know thyself.", "Ideas."]


def test_intermediate_and_notice_messages_are_not_answers() -> None:
    events = [
        ev(
            1,
            "thread.message.completed",
            msg("msg_n", "Using the embedded model.", message_type="system:notice"),
        ),
        ev(2, "thread.message.delta", message_delta("msg_i", "draft")),
        ev(3, "thread.message.completed", msg("msg_i", "draft", message_type="agent:intermediate")),
    ]
    state = reduce(events)
    assert state.answers == [] and state.notices == ["Using the embedded model."]
    assert state.deltas == 1


def test_near_legacy_payloads_fold() -> None:
    """NEAR's hub: deltas with null id, no created, completed without a Message,
    run events nesting the Run under ``delta`` with status always 'queued'."""
    events = [
        ev(
            1,
            "thread.message.delta",
            {
                "id": None,
                "object": "thread.message.delta",
                "delta": {"content": [{"index": 0, "type": "text", "text": {"value": "Hi"}}]},
            },
        ),
        ev(
            2,
            "thread.message.delta",
            {
                "id": None,
                "object": "thread.message.delta",
                "delta": {"content": [{"index": 0, "type": "text", "text": {"value": " there"}}]},
            },
        ),
        ev(
            3,
            "thread.message.completed",
            {"id": None, "object": "thread.message.completed", "delta": ""},
        ),
        ev(
            4,
            "thread.run.completed",
            {
                "id": None,
                "object": "thread.run.completed",
                "delta": {"status": "queued", "model": "fw"},
            },
        ),
    ]
    state = reduce(events)
    assert [m.text for m in state.answers] == ["Hi there"]
    assert state.status == "completed" and state.model == "fw"


def test_failure_carries_error_and_traceback_and_incomplete_message() -> None:
    events = [
        ev(1, "thread.message.created", msg("msg_a", "", "in_progress")),
        ev(2, "thread.message.delta", message_delta("msg_a", "partial")),
        ev(
            3,
            "thread.message.incomplete",
            {
                **msg("msg_a", "partial", "incomplete"),
                "incomplete_details": {"reason": "run_failed"},
            },
        ),
        ev(
            4,
            "thread.run.failed",
            {
                "id": "run_x",
                "status": "failed",
                "last_error": {"code": "server_error", "message": "boom"},
                "metadata": {"nearnb.traceback": "Traceback ..."},
            },
        ),
    ]
    state = reduce(events)
    assert state.status == "failed" and state.error == "boom" and state.traceback == "Traceback ..."
    assert (
        state.answers[0].status == "incomplete"
        and state.answers[0].incomplete_reason == "run_failed"
    )
    assert state.answers[0].text == "partial"


def test_tool_calls_and_rates() -> None:
    step = {
        "id": "step_1",
        "status": "in_progress",
        "step_details": {
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": "{}", "output": None},
                }
            ],
        },
    }
    done = {**step, "status": "completed"}
    done["step_details"] = {
        "type": "tool_calls",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "add", "arguments": "{}", "output": "3"},
            }
        ],
    }
    state = reduce(
        [
            ev(1, "thread.run.step.created", step),
            ev(2, "thread.run.step.completed", done),
            ev(3, "thread.message.delta", message_delta("m", "a"), at=10.0),
            ev(4, "thread.message.delta", message_delta("m", "b"), at=12.0),
        ]
    )
    call = state.tool_calls["call_1"]
    assert (call.name, call.output, call.step_status) == ("add", "3", "completed")
    assert state.deltas_per_second() == 1.0 and state.elapsed == 11.0


def test_long_stream_accumulates_in_linear_time() -> None:
    events = [ev(i + 1, "thread.message.delta", message_delta("m", "x")) for i in range(20000)]
    state = RunState()
    for event in events:
        state.apply(event)
        _ = state.streaming.text if event.seq % 1000 == 0 else None
    assert state.streaming is not None and len(state.streaming.text) == 20000


# ------------------------------------------------------------------ tool steps


def step_object(status: str, calls: list[dict], step_id: str = "step_1") -> dict:
    return {
        "id": step_id,
        "object": "thread.run.step",
        "type": "tool_calls",
        "status": status,
        "step_details": {"type": "tool_calls", "tool_calls": calls},
    }


def call(name: str, arguments: str, output: str | None = None, call_id: str = "call_1") -> dict:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments, "output": output},
    }


def step_delta(index: int, step_id: str = "step_1", **fragment: object) -> dict:
    return {
        "id": step_id,
        "object": "thread.run.step.delta",
        "delta": {
            "step_details": {"type": "tool_calls", "tool_calls": [{"index": index, **fragment}]}
        },
    }


def streamed_tool_step() -> list[Event]:
    """OpenAI's order: created (no calls yet), in_progress, name/arguments
    fragments (two calls), completed with the outputs."""
    return [
        ev(1, "thread.run.created", {"id": "run_x", "status": "queued"}),
        ev(2, "thread.run.step.created", step_object("in_progress", [])),
        ev(3, "thread.run.step.in_progress", step_object("in_progress", [])),
        ev(
            4,
            "thread.run.step.delta",
            step_delta(0, id="call_1", type="function", function={"name": "ad"}),
        ),
        ev(5, "thread.run.step.delta", step_delta(0, function={"name": "d", "arguments": '{"a"'})),
        ev(6, "thread.run.step.delta", step_delta(0, function={"arguments": ": 1}"})),
        ev(
            7,
            "thread.run.step.delta",
            step_delta(1, id="call_2", function={"name": "neg", "arguments": "{}"}),
        ),
        ev(
            8,
            "thread.run.step.completed",
            step_object(
                "completed", [call("add", '{"a": 1}', "1"), call("neg", "{}", "-0", "call_2")]
            ),
        ),
        ev(9, "thread.message.created", msg("msg_a", "", "in_progress")),
        ev(10, "thread.message.delta", message_delta("msg_a", "One.")),
        ev(11, "thread.message.completed", msg("msg_a", "One.")),
    ]


def test_streamed_tool_calls_accumulate_apart_from_the_answer() -> None:
    events = streamed_tool_step()
    state = reduce(events[:7])
    (step,) = state.steps
    assert step.status == "in_progress" and not step.ended
    assert [(c.id, c.name, c.arguments, c.output) for c in step.calls] == [
        ("call_1", "add", '{"a": 1}', None),
        ("call_2", "neg", "{}", None),
    ]
    assert state.timeline == [] and state.deltas == 0  # tool fragments are not answer deltas
    reduce(events[7:], state)
    assert step.status == "completed" and [c.output for c in step.calls] == ["1", "-0"]
    assert [type(item).__name__ for item in state.timeline] == ["StepState", "MessageState"]
    assert [m.text for m in state.answers] == ["One."] and state.chars == 4
    assert state.tool_calls["call_2"].step_status == "completed"


def test_tool_steps_are_idempotent_when_resent() -> None:
    events = streamed_tool_step()
    once = reduce(events)
    twice = reduce(events)
    reduce(events[2:9], twice)  # a resumed stream resends events already applied
    assert [(c.name, c.arguments, c.output) for c in twice.steps[0].calls] == [
        (c.name, c.arguments, c.output) for c in once.steps[0].calls
    ]
    assert len(twice.timeline) == len(once.timeline) == 2


def test_whole_step_objects_replace_and_never_reopen() -> None:
    """Unnumbered events (seq 0) are not deduplicated, so whole objects must
    be safe to apply twice, and a late in_progress must not reopen a step."""
    done = step_object("completed", [call("add", "{}", "3")])
    state = reduce(
        [
            ev(0, "thread.run.step.completed", done),
            ev(0, "thread.run.step.completed", done),
            ev(0, "thread.run.step.in_progress", step_object("in_progress", [call("add", "{}")])),
        ]
    )
    (step,) = state.steps
    assert step.status == "completed" and step.calls[0].output == "3"
    assert step.calls[0].arguments == "{}" and len(state.timeline) == 1


def test_a_failed_step_keeps_its_error_and_message_steps_are_ignored() -> None:
    failed = {**step_object("failed", [call("add", "{}")]), "last_error": {"message": "boom"}}
    creation = {
        "id": "step_m",
        "type": "message_creation",
        "step_details": {"type": "message_creation", "message_creation": {"message_id": "m"}},
    }
    state = reduce(
        [ev(1, "thread.run.step.completed", creation), ev(2, "thread.run.step.failed", failed)]
    )
    (step,) = state.steps
    assert step.status == "failed" and step.last_error == "boom"


# --------------------------------------------------------------- other threads


def test_messages_of_another_thread_are_counted_but_not_shown() -> None:
    """An agent may reply to another thread; that reply is not this run's answer."""
    other = {**msg("msg_o", "", "in_progress"), "thread_id": "thread_other"}
    events = [
        ev(1, "thread.message.created", other),
        ev(2, "thread.message.delta", message_delta("msg_o", "elsewhere")),
        ev(
            3,
            "thread.message.completed",
            {**msg("msg_o", "elsewhere"), "thread_id": "thread_other"},
        ),
        ev(4, "thread.message.created", msg("msg_a", "", "in_progress")),
        ev(5, "thread.message.delta", message_delta("msg_a", "here")),
    ]
    state = reduce(events[:2])
    assert state.streaming is None
    reduce(events[2:], state)
    assert state.streaming is not None and state.streaming.text == "here"
    reduce([ev(6, "thread.message.completed", msg("msg_a", "here"))], state)
    assert [m.text for m in state.answers] == ["here"] and state.timeline == state.messages
    assert state.foreign_messages == 1 and state.deltas == 2


def test_a_foreign_message_whose_deltas_came_first_is_dropped_on_completion() -> None:
    state = reduce(
        [
            ev(1, "thread.message.delta", message_delta("msg_o", "elsewhere")),
            ev(2, "thread.message.completed", {**msg("msg_o", "elsewhere"), "thread_id": "t2"}),
        ]
    )
    assert state.streaming is None and state.messages == [] and state.answers == []
