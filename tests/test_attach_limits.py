"""attach against hostile servers: bounded memory and time; every failure keeps what arrived.

The servers are real sockets on 127.0.0.1 (:mod:`tests.support.hostile_sse`), writing exactly
the bytes each test wants: an endless line, endless ``data:`` lines, a gzip bomb, a byte every
few tenths of a second, keepalives only, a 5,000-digit id, 204s. Limits and timeouts are set
small so every test is quick; the sync and async clients are both run.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from httpx_sse import ServerSentEvent

from nearnb.events import Message, Run, now, text_content
from nearnb.hub.client import (
    ConnectionLost,
    IdleTimeout,
    RunNotFound,
    StreamProtocolError,
    StreamTooLarge,
    attach,
    attach_async,
)
from nearnb.hub.session import MAX_DELAY, Session
from nearnb.hub.sse import SSEProtocolError, encode_event, read_frame
from nearnb.store import Store
from tests.support.hostile_sse import (
    COMPLETED,
    GOOD_BYTES,
    HANDLERS,
    Conn,
    HostileServer,
    KiB,
    MiB,
    Request,
    ends_then_204,
    event,
)
from tests.support.hub import running_hub

TOKEN = "hostile-test-token-0123456789"


def assert_kept(result: Any, seqs: tuple[int, ...] = (1, 2, 3)) -> None:
    """The error's result holds the events that arrived before it, and says what went wrong."""
    assert tuple(e.seq for e in result.events) == seqs
    assert result.deltas == 1 and result.status == "in_progress"
    assert result.error


@pytest.fixture(scope="module")
def hub_runs() -> Iterator[tuple[str, dict[str, str]]]:
    """A real hub (with a token) holding three runs whose streams the hostile server fakes:
    one expired (as a hub ends a run whose process died), one still in progress, one whose
    thread is elsewhere (the hub answers 404). Yields the hub URL and {kind: thread id}."""
    store = Store()
    threads: dict[str, str] = {}
    for kind, status in (("expired", "expired"), ("alive", "in_progress"), ("gone", "expired")):
        thread = store.create_thread()
        threads[kind] = thread.id
        last_error = {"code": "server_error", "message": "the process running this run died"}
        store.save_run(
            Run(
                id=f"run_resume_{kind}",
                created_at=now(),
                thread_id=thread.id if kind != "gone" else store.create_thread().id,
                assistant_id="local/x/1",
                status=status,  # type: ignore[arg-type]
                model="m",
                last_error=last_error if status == "expired" else None,
                metadata={"nearnb.traceback": "Traceback: died"} if status == "expired" else {},
            )
        )
    with running_hub(token=TOKEN) as hub:
        yield hub.url, threads


@pytest.fixture(scope="module")
def server(hub_runs: tuple[str, dict[str, str]]) -> Iterator[HostileServer]:
    resumes = {f"run_resume_{kind}": ends_then_204 for kind in hub_runs[1]}
    handlers = {**HANDLERS, **resumes, "run_big": big_answer}
    with HostileServer(handlers, upstream=hub_runs[0]) as hostile:
        for mode in ("sync", "async"):  # imports and first-use caches stay out of the peaks
            attach_in(mode, url(hostile, "run_enc_gzip"))
        yield hostile


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def attach_in(mode: str, url: str, **kwargs: Any) -> Any:
    """``attach`` or ``attach_async`` (on a fresh loop), never retrying unless asked."""
    kwargs.setdefault("display", "none")
    kwargs.setdefault("max_retries", 0)
    if mode == "sync":
        return attach(url, **kwargs)
    return asyncio.run(attach_async(url, **kwargs))


def url(server: HostileServer, kind: str, thread: str = "thread_a") -> str:
    return f"{server.url}/v1/threads/{thread}/stream/{kind}"


def peak_while(call: Any) -> tuple[Any, int]:
    """Run ``call``; return what it raised (or returned) and the peak of traced allocations."""
    tracemalloc.start()
    try:
        try:
            outcome = call()
        except Exception as exc:  # noqa: BLE001 - the caller asserts on it
            outcome = exc
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------- memory


@pytest.mark.parametrize(
    ("kind", "limit"),
    [
        ("run_huge", "max_line_bytes"),
        ("run_endless", "max_event_bytes"),
        ("run_bomb_line", "max_line_bytes"),  # 64 MB inflated from 65 kB
        ("run_bomb_lines", "max_event_bytes"),
    ],
)
def test_lines_events_and_gzip_bombs_are_bounded(
    server: HostileServer, mode: str, kind: str, limit: str
) -> None:
    error, peak = peak_while(
        lambda: attach_in(mode, url(server, kind), max_line_bytes=MiB, max_event_bytes=2 * MiB)
    )
    assert isinstance(error, StreamTooLarge), error
    assert error.limit == limit and f"{limit}=" in str(error)
    assert error.size > (MiB if limit == "max_line_bytes" else 2 * MiB)
    # httpx-sse alone peaks near 200 MiB on the 64 MB line bomb (httpx inflates each read whole)
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert_kept(error.result)
    assert limit in error.result.error


def big_answer(request: Request, conn: Conn) -> None:
    """A legitimate run whose answer is 3 MB: its message.completed is one 3 MB line."""
    text = "w " * (1536 * KiB)
    message = Message(
        id="msg_1",
        created_at=now(),
        thread_id="thread_a",
        role="assistant",
        status="completed",
        content=text_content(text),
    ).model_dump(mode="json")
    closing = [
        event(4, "thread.message.completed", message),
        event(5, COMPLETED.event, COMPLETED.data),
        event(6, "done", "[DONE]"),
    ]
    conn.head()
    conn.send(GOOD_BYTES + b"".join(encode_event(e) for e in closing))


def test_default_limits_take_a_3_mb_answer_and_refuse_a_line_over_4_mib(
    server: HostileServer,
) -> None:
    result = attach_in("sync", url(server, "run_big"))
    assert result.status == "completed" and len(result.text) == 3 * MiB
    with pytest.raises(StreamTooLarge, match="max_line_bytes=4,194,304") as info:
        attach_in("sync", url(server, "run_huge"))
    assert 4 * MiB < info.value.size <= 4 * MiB + 64 * KiB
    assert_kept(info.value.result)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw"])
def test_a_compressed_stream_is_read_whole(server: HostileServer, mode: str, encoding: str) -> None:
    """Bounded inflation loses nothing: gzip, zlib-wrapped and raw deflate, cut anywhere."""
    result = attach_in(mode, url(server, f"run_enc_{encoding}"))
    assert [e.seq for e in result.events] == [1, 2, 3, 4, 5, 6]
    assert result.status == "completed" and result.deltas == 2
    assert result.events[3].data["delta"]["content"][0]["text"]["value"] == "h\u00e9llo \u2713"
    assert server.of(f"run_enc_{encoding}")[-1].headers["accept-encoding"] == "gzip, deflate"


def test_an_encoding_attach_did_not_ask_for_is_refused(server: HostileServer, mode: str) -> None:
    with pytest.raises(StreamProtocolError, match="content encoding 'br'") as info:
        attach_in(mode, url(server, "run_br"))
    assert info.value.result.events == []


# --------------------------------------------------------------------- time


@pytest.mark.parametrize("kind", ["run_trickle", "run_keepalive", "run_silent", "run_replays"])
def test_no_new_event_for_idle_timeout_ends_the_connection(
    server: HostileServer, mode: str, kind: str
) -> None:
    """Bytes trickling in, keepalives, silence and replayed old events all leave the client
    idle; it ends soon after ``idle_timeout`` (at the next arrival, at most one read late)."""
    started = time.monotonic()
    with pytest.raises(IdleTimeout, match=r"idle_timeout=0\.3") as info:
        attach_in(mode, url(server, kind), idle_timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 1.5
    assert isinstance(info.value, ConnectionLost)
    assert_kept(info.value.result)


def test_an_idle_connection_is_retried_with_last_event_id(server: HostileServer) -> None:
    before = len(server.of("run_keepalive"))
    started = time.monotonic()
    with pytest.raises(IdleTimeout) as info:
        attach_in("sync", url(server, "run_keepalive"), idle_timeout=0.3, max_retries=1)
    assert 0.6 <= time.monotonic() - started < 2.5  # two idle connections and a 20 ms backoff
    requests = server.of("run_keepalive")[before:]
    assert len(requests) == 2 and requests[1].headers["last-event-id"] == "3"
    assert_kept(info.value.result)


def test_a_slow_run_with_real_events_is_not_idle(server: HostileServer, mode: str) -> None:
    result = attach_in(mode, url(server, "run_slow"), idle_timeout=0.5)  # 1.2 s in all
    assert result.status == "completed" and result.deltas == 9
    assert [e.seq for e in result.events] == list(range(1, 14))


def test_idle_timeout_none_waits(server: HostileServer) -> None:
    """``idle_timeout=None`` is the old behaviour: only the read timeout ends a silent link."""
    with pytest.raises(ConnectionLost, match="ReadTimeout") as info:
        attach_in("sync", url(server, "run_silent"), idle_timeout=None, read_timeout=0.4)
    assert not isinstance(info.value, IdleTimeout)
    assert_kept(info.value.result)


# --------------------------------------------------------------- bad frames


def test_a_5000_digit_id_is_a_protocol_error_keeping_what_arrived(
    server: HostileServer, mode: str
) -> None:
    with pytest.raises(StreamProtocolError, match="id of 5,000 digits") as info:
        attach_in(mode, url(server, "run_longid"))
    assert len(str(info.value)) < 400  # the message quotes the frame, cut short
    assert_kept(info.value.result)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("run_nested", "frame data is not JSON"),
        ("run_corrupt", "corrupt gzip body"),
        ("run_shape", "malformed thread.message.completed event 4: TypeError"),
    ],
)
def test_undecodable_bytes_are_protocol_errors_keeping_what_arrived(
    server: HostileServer, mode: str, kind: str, message: str
) -> None:
    with pytest.raises(StreamProtocolError, match=message) as info:
        attach_in(mode, url(server, kind))
    assert_kept(info.value.result)


@pytest.mark.parametrize("at", ["1e999", "NaN", "1" + "0" * 400])
def test_an_emit_time_that_is_not_a_finite_number_is_malformed(at: str) -> None:
    sse = ServerSentEvent(event="thread.message.delta", data=f'{{"nearnb_at": {at}}}', id="1")
    with pytest.raises(SSEProtocolError, match="is not a time"):
        read_frame(sse)


def test_a_huge_retry_field_is_capped() -> None:
    """``retry: 1000...0`` (4,000 digits) parses as an int; the backoff must not overflow."""
    session = Session(
        "http://h/v1/threads/t/stream/r",
        "t",
        "r",
        token=None,
        speed=None,
        display="none",
        show_streaming_message=True,
        max_retries=1,
    )
    session.receive(ServerSentEvent(retry=10**4000))
    assert session.backoff(ConnectionLost("lost")) <= MAX_DELAY * 1.2


# ---------------------------------------------------------------------- 204


def test_204_on_the_first_request_is_no_such_run(server: HostileServer, mode: str) -> None:
    started = time.monotonic()
    with pytest.raises(RunNotFound, match="the hub has no events for this run") as info:
        attach_in(mode, url(server, "run_204"), max_retries=3)
    assert time.monotonic() - started < 0.75  # final: a retry would wait 0.8 s or more
    assert info.value.status == 204 and info.value.result.events == []


def test_204_on_resume_without_the_runs_end_reports_the_hubs_run(
    server: HostileServer, hub_runs: tuple[str, dict[str, str]], mode: str
) -> None:
    """The stream ended before the run's end and the resume got 204: the run object says
    how the run really ended (fetched with the same token), and the events that came stay."""
    thread = hub_runs[1]["expired"]
    result = attach_in(mode, url(server, "run_resume_expired", thread), token=TOKEN, max_retries=1)
    assert result.status == "expired"
    assert result.error == "the process running this run died"
    assert result.traceback == "Traceback: died"
    assert [e.seq for e in result.events] == [1, 2, 3] and result.deltas == 1
    asked = [r for r in server.requests if r.path.endswith("/runs/run_resume_expired")]
    assert asked and asked[-1].path == f"/v1/threads/{thread}/runs/run_resume_expired"
    assert asked[-1].headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("kind", "message"),
    [("alive", "says 'in_progress'"), ("gone", "answered 404: run not found")],
)
def test_204_on_resume_with_the_run_not_ended_is_an_error(
    server: HostileServer, hub_runs: tuple[str, dict[str, str]], mode: str, kind: str, message: str
) -> None:
    thread = hub_runs[1][kind]
    with pytest.raises(StreamProtocolError, match="ended \\(204\\) before the run's end") as info:
        attach_in(mode, url(server, f"run_resume_{kind}", thread), token=TOKEN, max_retries=1)
    assert message in str(info.value)
    assert_kept(info.value.result)


def test_204_on_resume_after_the_terminal_event_needs_no_question(server: HostileServer) -> None:
    before = len(server.requests)
    result = attach_in("sync", url(server, "run_done_lost"), max_retries=1)
    assert result.status == "completed" and [e.seq for e in result.events] == [1, 2, 3, 4]
    assert not [r for r in server.requests[before:] if "/runs/" in r.path]


def test_error_bodies_are_read_capped(server: HostileServer, mode: str) -> None:
    """The body of an error status is read for its message only: 64 KiB at most, inflated in
    bounded steps, so a 500 carrying a gzip bomb costs nothing."""
    error, peak = peak_while(lambda: attach_in(mode, url(server, "run_500")))
    assert isinstance(error, ConnectionLost) and "hub error 500: " in str(error), error
    assert peak < 2 * MiB, f"peak {peak / MiB:.1f} MiB"
    with pytest.raises(RunNotFound, match="no such hostile route"):  # a short body, read whole
        attach_in(mode, url(server, "run_unknown"))
