"""Packing the chunk texts of a recorded stream: lossless for any chunks, small for real ones."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from nearnb.wirepack import pack, unpack


def _chunk(content: str | None, *, chunk_id: str = "chatcmpl-1", role: bool = False) -> str:
    delta: dict[str, object] = {"role": "assistant"} if role else {}
    delta["content"] = content
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
    return json.dumps({"id": chunk_id, "object": "chat.completion.chunk", "choices": [choice]})


other = st.sampled_from(
    [
        '{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[]}',
        '{"id":"x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}',
        '{"choices":[{"index":0,"delta":{"content":"a","refusal":null}}]}',
    ]
)
chunk = st.one_of(
    st.builds(_chunk, st.text()),
    st.builds(_chunk, st.none()),
    st.builds(_chunk, st.text(), chunk_id=st.sampled_from(["chatcmpl-1", "chatcmpl-2"])),
    st.builds(_chunk, st.text(max_size=3), role=st.just(True)),
    other,
)


@given(st.lists(chunk, max_size=40))
def test_unpacking_gives_back_every_chunk(texts: list[str]) -> None:
    assert unpack(json.loads(pack(texts))) == [json.loads(t) for t in texts]


def test_a_real_stream_keeps_its_shape_once() -> None:
    texts = [_chunk("", role=True)] + [_chunk(f"w{i} ") for i in range(1000)]
    packed = pack(texts)
    assert len(packed) < len(",".join(texts)) / 10
    stored = json.loads(packed)
    assert stored["chunks"][1:4] == ["w0 ", "w1 ", "w2 "]  # the content literals, nothing else
    assert unpack(stored) == [json.loads(t) for t in texts]


def test_chunks_with_no_common_shape_stay_a_plain_list() -> None:
    texts = ['{"a":1}', '{"b":"content"}']
    assert json.loads(pack(texts)) == [{"a": 1}, {"b": "content"}]
    assert pack([]) == "[]"
