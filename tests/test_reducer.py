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
