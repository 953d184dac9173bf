"""The event model: ids, names, OpenAI shapes."""

from __future__ import annotations

import re

import pytest

from nearnb.events import (
    EVENT_NAMES,
    TERMINAL_EVENTS,
    Event,
    Message,
    MessageDeltaEvent,
    Run,
    RunStep,
    delta_text,
    message_delta,
    new_id,
    text_content,
)


def test_ids_have_prefix_and_96_random_bits() -> None:
    ids = {new_id("msg") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"msg_[0-9a-f]{24}", i) for i in ids)
    with pytest.raises(ValueError, match="unknown id prefix"):
        new_id("foo")


def test_every_openai_assistants_event_name_is_known() -> None:
    run = "created queued in_progress requires_action completed incomplete failed cancelling"
    steps = "created in_progress delta completed failed cancelled expired"
    messages = "created in_progress delta completed incomplete"
    expected = {
        *(f"thread.run.{s}" for s in [*run.split(), "cancelled", "expired"]),
        *(f"thread.run.step.{s}" for s in steps.split()),
        *(f"thread.message.{s}" for s in messages.split()),
        "thread.created",
        "error",
        "done",
    }
    assert expected == EVENT_NAMES
    assert (
        "thread.run.completed" in TERMINAL_EVENTS
        and "thread.run.in_progress" not in TERMINAL_EVENTS
    )


def test_message_delta_payload_is_a_valid_openai_delta_event() -> None:
    data = message_delta("msg_1", "Hel")
    parsed = MessageDeltaEvent.model_validate(data)
    assert parsed.text == "Hel" and delta_text(data) == "Hel"
    event = Event(seq=3, event="thread.message.delta", data=data, run_id="run_1", thread_id="t")
    assert isinstance(event.parsed(), MessageDeltaEvent)
    assert not event.is_terminal


def test_openai_sdk_types_accept_our_objects() -> None:
    """Field names match the OpenAI API: openai-python parses our JSON."""
    from openai.types.beta.threads import Message as OAMessage
    from openai.types.beta.threads import MessageDeltaEvent as OADelta
    from openai.types.beta.threads import Run as OARun
    from openai.types.beta.threads.runs import RunStep as OAStep

    msg = Message(
        id="msg_1", created_at=1, thread_id="thread_1", role="assistant", content=text_content("hi")
    )
    assert OAMessage.model_validate(msg.model_dump(mode="json")).content[0].text.value == "hi"
    run = Run(id="run_1", created_at=1, thread_id="thread_1", assistant_id="a", status="completed")
    assert OARun.model_validate(run.model_dump(mode="json")).status == "completed"
    step = RunStep(
        id="step_1",
        created_at=1,
        run_id="run_1",
        thread_id="thread_1",
        assistant_id="a",
        type="tool_calls",
        step_details={
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "f", "arguments": "{}", "output": "1"},
                }
            ],
        },
    )
    assert OAStep.model_validate(step.model_dump(mode="json")).step_details.type == "tool_calls"
    assert OADelta.model_validate(message_delta("msg_1", "x")).delta.content[0].text.value == "x"


def test_hidden_message_types_follow_near() -> None:
    def msg(mtype: str | None) -> Message:
        return Message(
            id="m",
            created_at=1,
            thread_id="t",
            role="assistant",
            metadata={"message_type": mtype} if mtype else {},
        )

    assert msg("system:log").hidden and msg("agent:intermediate").hidden
    assert not msg(None).hidden and not msg("user:note").hidden
