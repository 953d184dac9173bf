"""The attach client against real servers: a real hub, and a deliberately broken one.

Every failure must read clearly and keep what arrived (``AttachError.result``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from nearnb.events import Event, message_delta
from nearnb.hub.client import (
    AttachError,
    ConnectionLost,
    RunNotFound,
    StreamProtocolError,
    Unauthorized,
    attach,
    attach_async,
    stream_url,
)
from nearnb.hub.server import HubServer
from nearnb.hub.sse import encode_event
from nearnb.reducer import reduce
from tests.support.hub import CuttingProxy, FakeRun, HubProcess, running_hub, serve_app
from tests.support.waiting import wait_until


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with running_hub() as server:
        yield server


def assert_complete(result, run: FakeRun) -> None:  # noqa: ANN001
    assert result.status == "completed"
    assert [e.seq for e in result.events] == list(range(1, run.total + 1))
    assert result.deltas == run.deltas
    assert result.text == run.text
    assert (result.thread_id, result.run_id) == (run.thread_id, run.run_id)


class Recorder:
    """A renderer as nearnb.view makes them: called per event, then finish(result)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.finished = None

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def finish(self, result) -> None:  # noqa: ANN001
        self.finished = result


# ----------------------------------------------------------------- happy paths


def test_attach_follows_a_live_run_and_renders_every_event(hub: HubServer) -> None:
    run = FakeRun(100, interval=0.005).start()
    recorder = Recorder()
    result = attach(hub.url + run.stream_path(), display=recorder)
    assert_complete(result, run)
    assert [e.seq for e in recorder.events] == [e.seq for e in result.events]
    assert recorder.finished is result


def test_attach_with_base_url_and_ids_and_legacy_framing(hub: HubServer) -> None:
    run = FakeRun(20).complete()
    stored = [e.at for e in run.store.events(run.run_id)]
    result = attach(hub.url, thread_id=run.thread_id, run_id=run.run_id, display="none")
    assert_complete(result, run)
    assert [e.at for e in result.events] == stored
    result = attach(hub.url + run.stream_path() + "?framing=near", display="none")
    assert_complete(result, run)
    assert [e.at for e in result.events] == stored  # timing=1 added, framing kept


def test_replay_speed(hub: HubServer) -> None:
    run = FakeRun(40, interval=0.02).complete()  # ~0.8 s of original timing
    stored = run.store.events(run.run_id)
    span = stored[-1].at - stored[0].at
    assert span > 0.7
    timings = {}
    for speed in (None, 4.0, 1.0):
        started = time.monotonic()
        result = attach(hub.url + run.stream_path(), speed=speed, display="none")
        timings[speed] = time.monotonic() - started
        assert_complete(result, run)
        # the original emit times survive the wire (``nearnb_at``, asked with ?timing=1),
        # and the data is the stored object without them
        assert [e.at for e in result.events] == [e.at for e in stored]
        assert reduce(result.events).elapsed == span
        assert [e.data for e in result.events] == [e.data for e in stored]
    assert timings[None] < span / 4
    assert span / 4 * 0.9 <= timings[4.0] < span / 4 + 0.3
    assert span * 0.9 <= timings[1.0] < span + 0.4


def test_attach_async(hub: HubServer) -> None:
    run = FakeRun(50, interval=0.002).start()
    result = asyncio.run(attach_async(hub.url + run.stream_path(), display="none"))
    assert_complete(result, run)


def test_stream_url_forms() -> None:
    full = "http://h:1/v1/threads/thread_a/stream/run_b"
    assert stream_url(full) == (full, "thread_a", "run_b")
    assert stream_url("http://h:1", "thread_a", "run_b")[0] == full
    assert stream_url("http://h:1/v1/", "thread_a", "run_b")[0] == full
    with pytest.raises(ValueError, match="thread_id= and run_id="):
        stream_url("http://h:1")
    with pytest.raises(ValueError, match="not thread_x"):
        stream_url(full, thread_id="thread_x")


# -------------------------------------------------------------- reconnecting


def test_cut_connection_resumes_with_last_event_id_every_delta_once(hub: HubServer) -> None:
    run = FakeRun(300, interval=0.005).start()
    recorder = Recorder()
    with CuttingProxy(hub.port) as proxy:

        def cut_later() -> None:
            wait_until(lambda: run.emitted >= 100, "the run has emitted 100 events")
            proxy.cut()

        threading.Thread(target=cut_later, daemon=True).start()
        result = attach(proxy.url + run.stream_path(), display=recorder)
    assert_complete(result, run)
    assert [e.seq for e in recorder.events] == list(range(1, run.total + 1))  # shown once each
    assert len(proxy.requests) == 2
    resumed_from = int(proxy.requests[1].split("Last-Event-ID: ")[1].split("\r\n")[0])
    assert 0 < resumed_from < run.total


def test_attach_survives_the_hub_being_restarted() -> None:
    run = FakeRun(200, interval=0.01).start()
    with HubProcess() as process:

        def restart() -> None:
            wait_until(lambda: run.emitted >= 60, "the run has emitted 60 events")
            process.stop(kill=True)
            # Part of the scenario, not a wait for something: the hub stays down for a while,
            # so the client's reconnect attempts meet a closed port before the new hub is up.
            time.sleep(0.3)
            process.start()

        restarter = threading.Thread(target=restart)
        restarter.start()
        result = attach(process.url + run.stream_path(), display="none")
        restarter.join()
    assert_complete(result, run)


# ---------------------------------------------------------------- bad servers

GOOD = [
    Event(
        seq=1,
        event="thread.run.created",
        data={"id": "run_b", "status": "queued", "assistant_id": "local/x/1", "model": "m"},
        run_id="run_b",
        thread_id="thread_a",
    ),
    Event(
        seq=2,
        event="thread.message.delta",
        data=message_delta("msg_1", "kept "),
        run_id="run_b",
        thread_id="thread_a",
    ),
]
GOOD_BYTES = b"".join(encode_event(e) for e in GOOD)
DONE_BYTES = encode_event(
    Event(seq=3, event="done", data="[DONE]", run_id="run_b", thread_id="thread_a")
)
BAD_TAILS = {
    "malformed": b"event: thread.message.delta\n\n",
    "nonjson": b"id: 3\nevent: thread.message.delta\ndata: {oops\n\n",
    "unknown": b'id: 3\nevent: thread.run.exploded\ndata: {"id": "run_b"}\n\n',
    "badid": b"id: three\nevent: thread.message.delta\ndata: {}\n\n",
    "noid": b"event: thread.message.delta\ndata: {}\n\n",  # httpx-sse repeats id 2 for it
}


QUERIES: dict[str, list[str]] = {}  # the query strings each kind of stream was asked with


def broken_hub() -> Starlette:
    calls: dict[str, int] = {}

    async def stream(request: Request) -> Response:
        kind = request.path_params["rid"]
        calls[kind] = calls.get(kind, 0) + 1
        QUERIES.setdefault(kind, []).append(request.url.query)
        sse = "text/event-stream"
        if kind in BAD_TAILS:
            return Response(GOOD_BYTES + BAD_TAILS[kind], media_type=sse)
        if kind == "wrongtype":
            return JSONResponse({"object": "thread.run", "status": "completed"})
        if kind == "auth":
            return JSONResponse({"error": {"message": "bad token"}}, status_code=401)
        if kind == "missing":
            return JSONResponse({"error": {"message": "no such run"}}, status_code=404)
        if kind == "crash":
            return JSONResponse({"error": {"message": "database on fire"}}, status_code=500)
        if kind == "dies":  # events, then the stream ends without done; then 500s
            if calls[kind] == 1:
                return Response(GOOD_BYTES, media_type=sse)
            assert request.headers["last-event-id"] == "2"
            return Response("upstream gone", status_code=503)
        if kind == "pings":  # sse-starlette's ": ping\n\n" and an id-only frame: nothing to apply
            first, second = (encode_event(e) for e in GOOD)
            body = first + b": ping\n\n" + second + b"id: 2\n\n: ping\n\n" + DONE_BYTES
            return Response(body, media_type=sse)
        if kind == "untimed":  # a hub that ignores ?timing=1: standard frames, 0.1 s apart

            async def frames() -> AsyncIterator[bytes]:
                for frame in (*(encode_event(e) for e in GOOD), DONE_BYTES):
                    yield frame
                    await asyncio.sleep(0.1)  # the pacing under test: real gaps between frames

            return StreamingResponse(frames(), media_type=sse)
        if kind == "near":  # NEAR's real hub: no ids, no done, never closes the stream

            async def body() -> AsyncIterator[bytes]:
                for e in GOOD:
                    yield f"data: {json.dumps({'event': e.event, 'data': e.data})}\n\n".encode()
                done = {"event": "thread.run.completed", "data": {"delta": {"status": "queued"}}}
                yield f"data: {json.dumps(done)}\n\n".encode()
                await asyncio.sleep(3600)  # what is tested: a stream that never ends

            return StreamingResponse(body(), media_type=sse)
        return Response(status_code=418)

    return Starlette(routes=[Route("/v1/threads/{tid}/stream/{rid}", stream)])


@pytest.fixture(scope="module")
def broken() -> Iterator[str]:
    with serve_app(broken_hub()) as url:
        yield url


def attach_broken(base: str, kind: str, **kwargs) -> None:  # noqa: ANN003
    kwargs.setdefault("display", "none")
    attach(f"{base}/v1/threads/thread_a/stream/{kind}", **kwargs)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("malformed", "event without data"),
        ("nonjson", "not JSON"),
        ("unknown", "unknown event name 'thread.run.exploded'"),
        ("badid", "not a sequence number"),
        ("noid", "no id of its own after id 2"),
    ],
)
def test_bad_frames_fail_clearly_and_keep_what_arrived(
    broken: str, kind: str, message: str
) -> None:
    recorder = Recorder()
    with pytest.raises(StreamProtocolError, match=message) as info:
        attach_broken(broken, kind, display=recorder)
    result = info.value.result
    assert [e.seq for e in result.events] == [1, 2] and result.text == "" and result.deltas == 1
    assert message in result.error
    assert recorder.finished is result  # the view shows what arrived, and the error


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("wrongtype", StreamProtocolError, "content type 'application/json'"),
        ("auth", Unauthorized, "unauthorized: bad token"),
        ("missing", RunNotFound, "run not found: missing (no such run)"),
    ],
)
def test_http_errors_are_named_before_any_parsing_and_not_retried(
    broken: str, kind: str, error: type[AttachError], message: str
) -> None:
    started = time.monotonic()
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        attach_broken(broken, kind)
    assert time.monotonic() - started < 0.5  # no retry
    assert info.value.result.events == []


def test_server_errors_are_retried_then_reported(broken: str) -> None:
    with pytest.raises(ConnectionLost, match="hub error 500: database on fire"):
        attach_broken(broken, "crash", max_retries=1)


def test_stream_dying_keeps_the_events_that_arrived(broken: str) -> None:
    with pytest.raises(ConnectionLost, match="hub error 503: upstream gone") as info:
        attach_broken(broken, "dies", max_retries=1)
    assert [e.seq for e in info.value.result.events] == [1, 2]
    assert info.value.result.deltas == 1


def test_near_hub_without_ids_or_done_ends_at_its_terminal_event(broken: str) -> None:
    started = time.monotonic()
    result = attach(f"{broken}/v1/threads/thread_a/stream/near", display="none")
    assert time.monotonic() - started < 2
    assert result.status == "completed" and result.deltas == 1
    assert [e.event for e in result.events][-1] == "thread.run.completed"


def test_empty_dispatches_are_skipped_not_malformed(broken: str) -> None:
    """httpx-sse yields an empty event for an id-only frame and for every blank line once an id
    was seen (e.g. sse-starlette's default keepalive); they are nothing to apply."""
    result = attach(f"{broken}/v1/threads/thread_a/stream/pings", display="none")
    assert [e.seq for e in result.events] == [1, 2, 3] and result.deltas == 1


@pytest.mark.parametrize("speed", [None, 1.0])
def test_a_hub_without_timing_still_replays_at_receipt_times(
    broken: str, speed: float | None
) -> None:
    """``timing=1`` is asked for (other parameters kept); a hub that ignores it sends no
    emit times, and the events get their receipt times instead."""
    QUERIES.pop("untimed", None)
    started = time.time()
    result = attach(
        f"{broken}/v1/threads/thread_a/stream/untimed?framing=near", speed=speed, display="none"
    )
    ended = time.time()
    assert QUERIES["untimed"] == ["framing=near&timing=1"]
    assert [e.event for e in result.events] == [
        "thread.run.created",
        "thread.message.delta",
        "done",
    ]
    assert [e.data for e in result.events[:2]] == [e.data for e in GOOD]
    ats = [e.at for e in result.events]
    assert started <= ats[0] <= ats[1] <= ats[2] <= ended
    assert ended - started < 2  # paced as the frames arrive (~0.3 s), never by a bogus clock


def test_real_hub_401_and_404() -> None:
    run = FakeRun(1).complete()
    with running_hub(token="tok-123456") as server:
        with pytest.raises(Unauthorized, match="unauthorized"):
            attach(server.url + run.stream_path(), display="none")
        with pytest.raises(RunNotFound, match="run not found: run_nope"):
            attach(server.url, thread_id=run.thread_id, run_id="run_nope", token="tok-123456")
        result = attach(server.url + run.stream_path(), token="tok-123456", display="none")
        assert result.status == "completed"


def test_attach_renders_through_the_same_view_as_the_stored_run(hub: HubServer) -> None:
    """A replayed run leaves the same static bundle as the run's own events rendered locally."""
    from nearnb.runs import RunResult
    from nearnb.view import open_view
    from nearnb.view.sink import RecordingSink

    run = FakeRun(30).complete()
    local_sink, attached_sink = RecordingSink(), RecordingSink()
    events = run.store.events(run.run_id)
    local = open_view("plain", agent_name="fake", model="fake-model", sink=local_sink)
    for event in events:
        local(event)
    local.finish(RunResult.from_state(reduce(events), events))
    view = open_view("plain", agent_name="fake", model="fake-model", sink=attached_sink)
    result = attach(hub.url + run.stream_path(), display=view)
    assert result.text == run.text
    assert attached_sink.final == local_sink.final
    assert run.text.strip() in attached_sink.final[0][0]["text/plain"]


def test_with_cancel_false_the_views_stop_stops_watching_not_the_run(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nearnb.view

    run = FakeRun(200, interval=0.01).start()
    recorder = Recorder()

    def open_view(display, *, on_stop, **info):  # noqa: ANN001, ANN003
        def click_after_20(event: Event) -> None:
            recorder(event)
            if len(recorder.events) == 20:
                threading.Thread(target=on_stop).start()  # a click arrives on another thread

        click_after_20.finish = recorder.finish  # type: ignore[attr-defined]
        return click_after_20

    monkeypatch.setattr(nearnb.view, "open_view", open_view)
    started = time.monotonic()
    result = attach(hub.url + run.stream_path(), display="widget", cancel=False)
    assert time.monotonic() - started < 1.5  # the run itself takes 2 s
    assert 20 <= len(result.events) < run.total and result.status == "in_progress"
    assert recorder.finished is result and result.error is None
    run.wait()  # the run was not affected
    assert run.emitted == run.total
