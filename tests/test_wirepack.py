"""Packing the chunk texts of a recorded stream: lossless for any chunks, small for real ones."""

from __future__ import annotations

import json
import re

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


# A content chunk's text split around its content literal, as pack will find it.
PREFIX, SUFFIX = _chunk("x").split('"x"')
#: Middles that are not one JSON string literal, though each starts and ends with a quote:
#: a whole stretch of them must not pass for literals (the first two together read as
#: two literals across the comma between them).
not_literals = st.sampled_from(
    ['"x\\"', '","y"', '"a", "role": "b"', '"line\nbreak"', '"a"\n"b"', '"']
)
#: Literals as a provider may write them: escapes json.dumps would not choose.
raw_literals = st.sampled_from(['"\\u00e9"', '"\\/"', '"caf\u00e9"', '"tab\\t"', '""'])


def reference_pack(texts: list[str], packed: str) -> str:
    """What pack gives, one regex match per chunk (the plain way), with the shape it chose."""
    decode = json.JSONDecoder().raw_decode
    prefix, at = decode(packed, len('{"prefix":'))
    suffix, _ = decode(packed, at + len(',"suffix":'))
    string = r'"(?:[^"\\]|\\.)*"'
    whole = re.compile(f"{re.escape(prefix)}({string}){re.escape(suffix)}", re.DOTALL)
    parts = [m[1] if (m := whole.fullmatch(t)) is not None else t for t in texts]
    return (
        f'{{"prefix":{json.dumps(prefix)},"suffix":{json.dumps(suffix)},'
        f'"chunks":[{",".join(parts)}]}}'
    )


@given(
    st.lists(chunk, max_size=3),
    st.lists(
        st.one_of(
            st.builds(_chunk, st.text()),
            raw_literals.map(lambda lit: PREFIX + lit + SUFFIX),
            not_literals.map(lambda mid: PREFIX + mid + SUFFIX),
        ),
        min_size=2,
        max_size=60,
    ),
    st.lists(chunk, max_size=3),
)
def test_a_stream_is_packed_byte_for_byte_as_one_match_per_chunk_would(
    head: list[str], body: list[str], tail: list[str]
) -> None:
    texts = [_chunk("a"), _chunk("b"), *head, *body, *tail]  # the shape is the content chunk's
    packed = pack(texts)
    assert packed.startswith('{"prefix":')
    assert packed == reference_pack(texts, packed)
    if all(_is_json(t) for t in texts):
        assert unpack(json.loads(packed)) == [json.loads(t) for t in texts]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
