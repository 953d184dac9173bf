"""The hub's SSE wire format: encoding, and reading frames back as events (no I/O).

Frames are decoded by httpx-sse's public API (``EventSource(response).iter_sse()``), as the
attach client does; :func:`read_frame` interprets what it yields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent

from nearnb.events import Event, message_delta
from nearnb.hub.sse import (
    SSEProtocolError,
    describe,
    encode_event,
    encode_row,
    keepalive_comment,
    read_frame,
    retry_field,
    with_timing,
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


def decode(raw: bytes, chunk: int | None = None) -> list[ServerSentEvent]:
    """Every event httpx-sse yields for ``raw``, fed in chunks of ``chunk`` bytes."""
    step = chunk or len(raw) or 1
    chunks: Iterable[bytes] = [raw[i : i + step] for i in range(0, len(raw), step)]
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=iter(chunks)
    )
    return list(EventSource(response).iter_sse())


def read_all(raw: bytes, chunk: int | None = None) -> list:
    """read_frame over a stream, as the attach client does (previous id, empty events skipped)."""
    out, previous = [], ""
    for sse in decode(raw, chunk):
        decoded = read_frame(sse, previous)
        previous = sse.id
        if decoded is not None:
            out.append(decoded)
    return out


def test_official_frame_is_id_event_data_only_and_round_trips() -> None:
    raw = encode_event(DELTA)
    lines = raw.decode().split("\n")
    assert lines[:2] == ["id: 7", "event: thread.message.delta"]
    assert [line.split(":")[0] for line in lines if line] == ["id", "event", "data"]
    assert raw.endswith(b"\n\n") and raw.count(b"\ndata: ") == 1
    (decoded,) = read_all(raw)
    assert (decoded.name, decoded.seq, decoded.at, decoded.framing) == (
        "thread.message.delta",
        7,
        None,  # no timing asked: no emit time on the wire
        "official",
    )
    assert decoded.data == DELTA.data


def test_default_data_is_exactly_the_openai_object_and_timing_adds_nearnb_at() -> None:
    (plain,) = decode(encode_event(DELTA))
    assert json.loads(plain.data) == DELTA.data and "nearnb_at" not in plain.data
    (timed,) = decode(encode_event(DELTA, timing=True))
    assert json.loads(timed.data) == {**DELTA.data, "nearnb_at": 1700000000.25}
    (decoded,) = read_all(encode_event(DELTA, timing=True))
    assert decoded.at == 1700000000.25
    assert decoded.data == DELTA.data  # nearnb_at popped: the stored object, nothing more


def test_timing_splice_keeps_valid_json_and_the_exact_float() -> None:
    at = 1718000000.1234567
    assert json.loads(with_timing("{}", at)) == {"nearnb_at": at}
    assert json.loads(with_timing('{"a":{"b":[1,{}]}}', at)) == {
        "a": {"b": [1, {}]},
        "nearnb_at": at,
    }
    assert with_timing('"[DONE]"', at) == '"[DONE]"' and with_timing("[1]", at) == "[1]"
    assert json.loads(with_timing('{"x":1}', at))["nearnb_at"] == at  # repr round-trips


def test_legacy_frame_is_near_envelope_without_event_line() -> None:
    raw = encode_event(DELTA, "near").decode()
    assert "event:" not in raw
    data_line = next(line for line in raw.split("\n") if line.startswith("data: "))
    assert json.loads(data_line[6:]) == {"event": "thread.message.delta", "data": DELTA.data}
    (decoded,) = read_all(raw.encode())
    assert (decoded.name, decoded.framing, decoded.data) == (
        "thread.message.delta",
        "near",
        DELTA.data,
    )
    timed = encode_event(DELTA, "near", timing=True).decode()
    envelope = json.loads(next(x for x in timed.split("\n") if x.startswith("data: "))[6:])
    assert set(envelope) == {"event", "data"}  # the time is in the event's object
    assert envelope["data"]["nearnb_at"] == 1700000000.25
    (decoded,) = read_all(timed.encode())
    assert (decoded.at, decoded.data) == (1700000000.25, DELTA.data)


def test_done_frames_in_both_framings() -> None:
    """``[DONE]`` by default; on a timed stream the done frame carries its time instead."""
    assert encode_event(DONE) == b"id: 9\nevent: done\ndata: [DONE]\n\n"
    legacy = encode_event(DONE, "near")
    assert legacy == b'id: 9\ndata: {"event":"done","data":"[DONE]"}\n\n'
    for raw in (encode_event(DONE), legacy):
        (decoded,) = read_all(raw)
        assert (decoded.name, decoded.seq, decoded.at, decoded.data) == ("done", 9, None, "[DONE]")
    timed = encode_event(DONE, timing=True)
    assert timed == b'id: 9\nevent: done\ndata: {"nearnb_at":1.5}\n\n'
    timed_legacy = encode_event(DONE, "near", timing=True)
    assert timed_legacy == b'id: 9\ndata: {"event":"done","data":{"nearnb_at":1.5}}\n\n'
    for raw in (timed, timed_legacy):
        (decoded,) = read_all(raw)
        assert (decoded.name, decoded.seq, decoded.at, decoded.data) == ("done", 9, 1.5, "[DONE]")


def test_third_party_decoders_read_our_frames() -> None:
    """httpx-sse (and so openai-python, a copy of it) sees exactly id/event/data/retry."""
    raw = retry_field() + encode_event(DELTA) + keepalive_comment() + encode_event(DONE)
    events = decode(raw)
    assert [(e.id, e.event, e.retry) for e in events] == [
        ("7", "thread.message.delta", 1000),
        ("9", "done", None),
    ]
    assert json.loads(events[0].data) == DELTA.data and events[1].data == "[DONE]"


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 50])
def test_any_chunking_and_line_endings(chunk: int) -> None:
    raw = encode_event(DELTA, timing=True) + encode_event(DONE)
    for variant in (raw, raw.replace(b"\n", b"\r\n"), raw.replace(b"\n", b"\r")):
        decoded = read_all(variant, chunk)
        assert [d.name for d in decoded] == ["thread.message.delta", "done"]
        assert decoded[0].data == DELTA.data  # U+2028 is not a line break in SSE
        assert decoded[0].at == DELTA.at


def test_comments_and_id_or_retry_only_frames_are_skipped() -> None:
    """httpx-sse dispatches id-/retry-only frames and any blank line once an id was seen
    (with empty data); they carry nothing and must not read as malformed."""
    raw = b": hello\nretry: 2500\n\nid: 3\n\n: ping\n\nid: 4\nevent: error\ndata: {}\n\n"
    events = decode(raw)
    assert [(e.event, e.data, e.id, e.retry) for e in events] == [
        ("message", "", "", 2500),
        ("message", "", "3", None),
        ("message", "", "3", None),  # the blank line after ": ping", with the inherited id
        ("error", "{}", "4", None),
    ]
    assert [(d.name, d.seq) for d in read_all(raw)] == [("error", 4)]


def test_unterminated_frame_at_end_of_stream_is_not_dispatched() -> None:
    assert decode(b"id: 1\nevent: thread.run.created\ndata: {}") == []


def test_multiline_data_is_joined() -> None:
    (decoded,) = read_all(b'event: error\ndata: {"message":\ndata: "x"}\n\n')
    assert decoded.data == {"message": "x"}


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
        ('event: thread.message.delta\ndata: {"nearnb_at": "soon"}\n\n', "not a time"),
        ('event: done\ndata: {"nearnb_at": true}\n\n', "not a time"),
        ("event: done\ndata: {oops\n\n", "not JSON"),
    ],
)
def test_bad_frames_raise_errors_that_quote_them(text: str, message: str) -> None:
    (sse,) = decode(text.encode())
    with pytest.raises(SSEProtocolError, match=message.replace("(", r"\(").replace("[", r"\[")):
        read_frame(sse)
    with pytest.raises(SSEProtocolError) as info:
        read_frame(sse)
    assert str(info.value).endswith(describe(sse))  # the message quotes the frame


def test_event_message_without_data_is_indistinguishable_from_an_empty_frame() -> None:
    """httpx-sse reports a missing ``event:`` as "message", so ``event: message`` with no data
    cannot be told from an id-only frame: it is skipped, not reported (a known limitation)."""
    (sse,) = decode(b"id: 1\nevent: message\n\n")
    assert read_frame(sse) is None


def test_a_frame_without_its_own_id_in_a_numbered_stream_is_an_error() -> None:
    """httpx-sse reports the last id seen, not the frame's own; a repeated id on one connection
    means the frame had none, and guessing its number could drop or misnumber it."""
    raw = encode_event(DELTA) + b"event: thread.message.delta\ndata: {}\n\n"
    with pytest.raises(SSEProtocolError, match="no id of its own after id 7"):
        read_all(raw)


def test_frames_without_ids_have_no_seq() -> None:
    """A real NEAR hub sent no ids; the client numbers those frames itself."""
    (decoded,) = read_all(b'data: {"event":"thread.message.delta","data":{"delta":{}}}\n\n')
    assert decoded.seq is None and decoded.at is None


def test_a_stored_event_encodes_to_the_same_bytes_as_the_pushed_one() -> None:
    """The hub sends the store's JSON text as is; a pushed event must look identical."""
    from nearnb.hub.sse import FRAMINGS
    from nearnb.store import Store

    store = Store()
    store.append_events([DELTA, DONE])
    rows = store.event_rows("run_1")
    assert [r[0] for r in rows] == [7, 9]
    for framing in FRAMINGS:
        for timing in (False, True):
            assert encode_row(rows[0], framing, timing) == encode_event(DELTA, framing, timing)
            assert encode_row(rows[1], framing, timing) == encode_event(DONE, framing, timing)
    assert "\u2028" not in encode_event(DELTA).decode()  # escaped: one data line, any parser
