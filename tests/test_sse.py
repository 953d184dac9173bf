"""The hub's SSE wire format: encoding, decoding, and reading frames back as events (no I/O)."""

from __future__ import annotations

import json

import pytest
from httpx_sse._decoders import SSEDecoder as HttpxSSEDecoder

from nearnb.events import Event, message_delta
from nearnb.hub.sse import (
    Frame,
    SSEDecoder,
    SSEProtocolError,
    encode_event,
    keepalive_comment,
    read_frame,
    retry_field,
)

DELTA = Event(
    seq=7,
    event="thread.message.delta",
    data=message_delta("msg_1", "héllo\u2028world\n"),
    run_id="run_1",
    thread_id="thread_1",
    at=1700000000.25,
)
DONE = Event(seq=9, event="done", data="[DONE]", run_id="run_1", thread_id="thread_1", at=1.5)


def decode(raw: bytes, chunk: int | None = None) -> list[Frame]:
    decoder = SSEDecoder()
    text = raw.decode()
    step = chunk or len(text) or 1
    frames: list[Frame] = []
    for i in range(0, len(text), step):
        frames += decoder.feed(text[i : i + step])
    return frames


def test_official_frame_has_id_event_data_and_round_trips() -> None:
    raw = encode_event(DELTA)
    lines = raw.decode().split("\n")
    assert lines[:2] == ["id: 7", "event: thread.message.delta"]
    assert raw.endswith(b"\n\n") and raw.count(b"\ndata: ") == 1
    (frame,) = decode(raw)
    decoded = read_frame(frame)
    assert (decoded.name, decoded.seq, decoded.at, decoded.framing) == (
        "thread.message.delta",
        7,
        1700000000.25,
        "official",
    )
    assert decoded.data == DELTA.data


def test_legacy_frame_is_near_envelope_without_event_line() -> None:
    raw = encode_event(DELTA, "near").decode()
    assert "event:" not in raw
    data_line = next(line for line in raw.split("\n") if line.startswith("data: "))
    assert json.loads(data_line[6:]) == {"event": "thread.message.delta", "data": DELTA.data}
    decoded = read_frame(decode(raw.encode())[0])
    assert (decoded.name, decoded.framing, decoded.data) == (
        "thread.message.delta",
        "near",
        DELTA.data,
    )


def test_done_frames_in_both_framings() -> None:
    assert b"event: done\nat: 1.5\ndata: [DONE]\n\n" in encode_event(DONE)
    legacy = encode_event(DONE, "near")
    assert b'data: {"event":"done","data":"[DONE]"}' in legacy
    for raw in (encode_event(DONE), legacy):
        decoded = read_frame(decode(raw)[0])
        assert (decoded.name, decoded.seq) == ("done", 9)


def test_third_party_decoders_read_our_frames_and_ignore_at() -> None:
    """httpx-sse (and so openai-python, a copy of it) sees exactly id/event/data."""
    raw = (retry_field() + encode_event(DELTA) + keepalive_comment() + encode_event(DONE)).decode()
    decoder = HttpxSSEDecoder()
    lines = raw.split("\n")[:-1]  # the text ends with a newline: no line after it
    events = [e for line in lines if (e := decoder.decode(line)) is not None]
    assert [(e.id, e.event, e.retry) for e in events] == [
        ("7", "thread.message.delta", 1000),
        ("9", "done", None),
    ]
    assert json.loads(events[0].data) == DELTA.data and events[1].data == "[DONE]"


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 50])
def test_decoder_handles_any_chunking_and_line_endings(chunk: int) -> None:
    raw = encode_event(DELTA) + encode_event(DONE)
    for variant in (raw, raw.replace(b"\n", b"\r\n"), raw.replace(b"\n", b"\r")):
        frames = decode(variant, chunk)
        assert [read_frame(f).name for f in frames] == ["thread.message.delta", "done"]
        assert read_frame(frames[0]).data == DELTA.data  # U+2028 is not a line break in SSE


def test_decoder_drops_comments_and_keeps_retry_and_bom() -> None:
    decoder = SSEDecoder()
    frames = decoder.feed("\ufeff: hello\nretry: 2500\n\nid: 3\nevent: error\ndata: {}\n\n")
    assert [(f.event, f.id) for f in frames] == [("error", "3")]
    assert decoder.retry == 2500 and decoder.last_id == "3"


def test_unterminated_frame_at_end_of_stream_is_not_dispatched() -> None:
    decoder = SSEDecoder()
    assert decoder.feed("id: 1\nevent: thread.run.created\ndata: {}") == []
    assert decoder.flush() == []


def test_multiline_data_is_joined() -> None:
    (frame,) = SSEDecoder().feed('event: error\ndata: {"message":\ndata: "x"}\n\n')
    assert read_frame(frame).data == {"message": "x"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("event: thread.message.delta\ndata: {not json\n\n", "not JSON"),
        ("event: thread.run.exploded\ndata: {}\n\n", "unknown event name 'thread.run.exploded'"),
        ('data: {"event": "nope.nope", "data": {}}\n\n', "unknown event name 'nope.nope'"),
        ('data: {"id": "x"}\n\n', "not NEAR's"),
        ("event: thread.message.delta\n\n", "event without data"),
        ("id: seven\nevent: thread.message.delta\ndata: {}\n\n", "not a sequence number"),
        ("event: thread.message.delta\ndata: [1, 2]\n\n", "data is not an object"),
        ("event: thread.message.delta\nat: soon\ndata: {}\n\n", "not a time"),
    ],
)
def test_bad_frames_raise_errors_that_quote_them(text: str, message: str) -> None:
    (frame,) = SSEDecoder().feed(text)
    with pytest.raises(SSEProtocolError, match=message.replace("(", r"\(").replace("[", r"\[")):
        read_frame(frame)


def test_frames_without_ids_have_no_seq() -> None:
    """A real NEAR hub sent no ids; the client numbers those frames itself."""
    (frame,) = SSEDecoder().feed('data: {"event":"thread.message.delta","data":{"delta":{}}}\n\n')
    assert read_frame(frame).seq is None


def test_a_stored_event_encodes_to_the_same_bytes_as_the_pushed_one() -> None:
    """The hub sends the store's JSON text as is; a pushed event must look identical."""
    from nearnb.hub.sse import FRAMINGS, encode_row
    from nearnb.store import Store

    store = Store()
    store.append_events([DELTA, DONE])
    rows = store.event_rows("run_1")
    assert [r[0] for r in rows] == [7, 9]
    for framing in FRAMINGS:
        assert encode_row(rows[0], framing) == encode_event(DELTA, framing)
        assert encode_row(rows[1], framing) == encode_event(DONE, framing)
    assert "\u2028" not in encode_event(DELTA).decode()  # escaped: one data line, any parser
