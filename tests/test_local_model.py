"""The embedded provider on the real SmolLM2 GGUF (no mocks, no golden text: output differs
between llama.cpp builds, so only shape, non-emptiness and in-process repeatability are
asserted)."""

from __future__ import annotations

import threading
import time

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from nearnb.providers import ProviderError, resolve
from nearnb.providers.local import LocalProvider, load, model_file, unavailable_reason

pytestmark = pytest.mark.local_model

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a short poem about the sea."},
]


def streamed_text(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_installed() -> None:
    assert unavailable_reason() is None
    assert model_file().name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_stream_yields_openai_chunks() -> None:
    chunks = list(LocalProvider().stream(MESSAGES, model="smollm2", temperature=0, max_tokens=24))
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert streamed_text(chunks).strip()
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert {c.model for c in chunks} == {"smollm2"}  # not the GGUF path
    assert chunks[1].model_dump()["object"] == "chat.completion.chunk"


def test_temperature_zero_repeats_within_the_process() -> None:
    local = LocalProvider()
    first = streamed_text(list(local.stream(MESSAGES, model="", temperature=0, max_tokens=32)))
    second = streamed_text(list(local.stream(MESSAGES, model="", temperature=0, max_tokens=32)))
    third = local.complete(MESSAGES, model="", temperature=0, max_tokens=32)
    assert first and first == second == third.choices[0].message.content


def test_complete_returns_chat_completion() -> None:
    result = LocalProvider().complete(
        [{"role": "user", "content": "What is the capital of France?"}],
        model="smollm2",
        temperature=0,
        max_tokens=16,
    )
    assert isinstance(result, ChatCompletion)
    assert result.model == "smollm2"
    assert result.choices[0].message.role == "assistant"
    assert result.choices[0].message.content
    assert result.choices[0].finish_reason in ("stop", "length")


def test_max_tokens_bounds_the_answer() -> None:
    result = LocalProvider().complete(MESSAGES, model="", temperature=0, max_tokens=5)
    assert result.usage is not None and result.usage.completion_tokens <= 5
    assert result.choices[0].finish_reason == "length"


def test_closing_a_stream_stops_generation() -> None:
    local = LocalProvider()
    stream = local.stream(MESSAGES, model="", temperature=0, max_tokens=48)
    received = [next(stream) for _ in range(3)]
    stream.close()
    assert list(stream) == []
    assert len(received) == 3
    # The model is free again: another request starts at once instead of waiting.
    started = time.monotonic()
    assert local.complete(MESSAGES, model="", max_tokens=2).choices
    assert time.monotonic() - started < 5


def test_close_from_another_thread() -> None:
    stream = LocalProvider().stream(MESSAGES, model="", temperature=0, max_tokens=48)
    next(stream)
    closer = threading.Thread(target=stream.close)
    closer.start()
    closer.join()
    assert sum(1 for _ in stream) <= 1  # at most the token being computed


def test_same_thread_reentry_is_refused_not_deadlocked() -> None:
    local = LocalProvider()
    stream = local.stream(MESSAGES, model="", max_tokens=8)
    next(stream)
    with pytest.raises(ProviderError, match="busy"):
        local.complete(MESSAGES, model="", max_tokens=2)
    stream.close()


def test_messages_with_none_and_parts_content() -> None:
    messages = [
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": "Say hi."},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": "Again."},
    ]
    result = LocalProvider().complete(messages, model="", temperature=0, max_tokens=4)
    assert result.choices[0].message.content is not None


def test_tools_are_accepted() -> None:
    tools = [{"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}]
    result = LocalProvider().complete(MESSAGES, model="", tools=tools, max_tokens=4)
    assert result.choices


def test_model_loads_once_per_process() -> None:
    assert load()[0] is load()[0]


def test_fallback_resolves_to_a_working_local_model() -> None:
    resolved = resolve("fireworks::llama-v3p3-70b-instruct")
    assert resolved.notice and resolved.label == "local::smollm2"
    chunks = list(resolved.provider.stream(MESSAGES, model=resolved.model, max_tokens=8))
    assert streamed_text(chunks)
