"""The pure chunk accumulator: openai chunks in, Assistants events out, no I/O."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionChunk

from nearnb.accumulator import ChunkAccumulator, Origin
from nearnb.compactdelta import CompactDelta

ORIGIN = Origin(thread_id="thread_t", run_id="run_r", assistant_id="local/a/0.1")


def chunk(
    content: str | None = None,
    *,
    tool: dict[str, Any] | None = None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
) -> ChatCompletionChunk:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if tool is not None:
        delta["tool_calls"] = [tool]
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            "usage": usage,
        }
    )


def make() -> ChunkAccumulator:
    counter = itertools.count(1)
    return ChunkAccumulator(ORIGIN, ids=lambda prefix: f"{prefix}_{next(counter)}", clock=lambda: 7)


def test_text_chunks_open_a_message_then_one_delta_each() -> None:
    acc = make()
    assert acc.feed(chunk(None)) == []  # the role chunk implies nothing
    first = acc.feed(chunk("Hel"))
    assert [name for name, _ in first] == [
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
    ]
    created = first[0][1]
    assert created["id"] == acc.message_id == "msg_1"
    assert (created["thread_id"], created["run_id"], created["status"]) == (
        "thread_t",
        "run_r",
        "in_progress",
    )
    assert acc.feed(chunk("")) == []  # an empty piece is not a delta
    assert [n for n, _ in acc.feed(chunk("lo", finish="stop"))] == ["thread.message.delta"]
    assert acc.text == "Hello" and acc.deltas == 2 and acc.finish_reason == "stop"
    assert acc.message("completed").content[0].text.value == "Hello"
    assert acc.finish_step() == []  # no tool calls, no step


def test_streamed_tool_calls_become_a_step_apart_from_the_answer() -> None:
    acc = make()
    pairs = acc.feed(
        chunk(tool={"index": 0, "id": "call_a", "type": "function", "function": {"name": "get"}})
    )
    assert [n for n, _ in pairs] == ["thread.run.step.created", "thread.run.step.delta"]
    step = pairs[0][1]
    assert step["type"] == "tool_calls" and step["status"] == "in_progress"
    assert step["id"] == "step_2"  # msg_1 was taken by the message id
    delta = pairs[1][1]
    assert delta["object"] == "thread.run.step.delta" and delta["id"] == step["id"]
    fragment = delta["delta"]["step_details"]["tool_calls"][0]
    assert fragment == {"index": 0, "type": "function", "id": "call_a", "function": {"name": "get"}}
    for piece in ('{"q"', ': "x"}'):
        ((name, data),) = acc.feed(chunk(tool={"index": 0, "function": {"arguments": piece}}))
        assert name == "thread.run.step.delta"
        assert data["delta"]["step_details"]["tool_calls"][0]["function"] == {"arguments": piece}
    assert not acc.created  # no text: no message at all
    assert acc.tool_calls == [
        {"id": "call_a", "type": "function", "function": {"name": "get", "arguments": '{"q": "x"}'}}
    ]
    ((name, done),) = acc.finish_step()
    assert name == "thread.run.step.completed" and done["status"] == "completed"
    call = done["step_details"]["tool_calls"][0]
    assert call["function"] == {"name": "get", "arguments": '{"q": "x"}', "output": None}
    assert acc.finish_step() == []  # closed once


def test_an_aborted_stream_cancels_its_step() -> None:
    acc = make()
    acc.feed(chunk(tool={"index": 0, "id": "c", "function": {"name": "f", "arguments": "{"}}))
    ((name, data),) = acc.finish_step("cancelled")
    assert name == "thread.run.step.cancelled" and data["cancelled_at"] == 7


def test_usage_and_ids_are_kept_from_any_chunk() -> None:
    acc = make()
    acc.feed(chunk("a"))
    final = chunk(None, usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})
    final.choices = []
    assert acc.feed(final) == []
    assert acc.usage.total_tokens == 3 and acc.completion_id == "chatcmpl-1" and acc.chunks == 2


CHUNKS = st.one_of(
    st.builds(chunk, st.one_of(st.none(), st.text(max_size=4))),
    st.builds(chunk, st.text(min_size=1, max_size=4), finish=st.just("stop")),
    st.builds(
        chunk,
        st.none(),
        usage=st.just({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}),
    ),
    st.builds(
        chunk,
        st.one_of(st.none(), st.text(min_size=1, max_size=4)),
        tool=st.builds(
            lambda i, args: {"index": i, "id": f"call_{i}", "function": {"arguments": args}},
            st.integers(0, 1),
            st.text(max_size=4),
        ),
    ),
)


@given(st.lists(CHUNKS, max_size=30))
def test_the_text_only_fast_path_folds_and_emits_what_feed_does(chunks: list) -> None:
    """``feed_text`` (StreamHandler.drain's fast path) is ``feed`` for the chunks it takes."""
    eager, fast = make(), make()
    eager_pairs, fast_pairs = [], []
    for c in chunks:
        eager_pairs += eager.feed(c)
        text = fast.feed_text(c)
        if text is None:
            fast_pairs += fast.feed(c)
        else:
            fast_pairs.append(("thread.message.delta", CompactDelta(fast.message_id, text)))
    assert fast_pairs == eager_pairs
    state = lambda a: (  # noqa: E731
        a.text,
        a.chunks,
        a.deltas,
        a.tool_calls,
        a.finish_reason,
        a.usage,
        a.completion_id,
    )
    assert state(fast) == state(eager)


def test_the_fast_path_takes_plain_text_of_an_open_message_only() -> None:
    acc = make()
    assert acc.feed_text(chunk("a")) is None  # opens the message: feed's business
    acc.feed(chunk("a"))
    assert acc.feed_text(chunk("b")) == "b"
    assert acc.feed_text(chunk("c", finish="stop")) is None
    assert (
        acc.feed_text(
            chunk("", usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2})
        )
        is None
    )
    assert acc.feed_text(chunk("")) is None
    assert (acc.text, acc.deltas, acc.chunks) == ("ab", 2, 2)
