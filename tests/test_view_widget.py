"""The widget view, driven by hand-built events through recording comms.

No kernel, no browser: widgets get :class:`~nearnb.view.testing.RecordingComm`
(the pattern of ipywidgets' own tests), so what would go over the wire is
asserted exactly, and the throttle runs on a fake clock.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from nearnb.view import RunInfo
from nearnb.view.sink import RecordingSink
from nearnb.view.testing import (
    EventFactory,
    ManualClock,
    WireLog,
    busiest_second,
    click,
    feed_paced,
    recording_comms,
)
from nearnb.view.widget import (
    WIDGET_VIEW_MIME,
    AppendTree,
    WidgetRenderer,
    route_clicks_to_frontend_subshell,
)
from nearnb.view.widget_kit import WidgetKit

PARAGRAPH = "Virtue is knowledge, said Socrates, and nobody errs willingly. " * 8


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def wire(clock: ManualClock) -> Iterator[WireLog]:
    with recording_comms(clock) as log:
        yield log


def make_view(
    clock: ManualClock, *, show: bool = True, on_stop: Any = None, sink: RecordingSink | None = None
) -> WidgetRenderer:
    info = RunInfo(
        agent_name="streaming-example", model="local::smollm2", show_streaming_message=show
    )
    return WidgetRenderer(
        info, sink=sink or RecordingSink(), clock=clock, autoflush=False, on_stop=on_stop
    )


def chunks_of(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def long_answer(n_deltas: int) -> list[str]:
    """``n_deltas`` 4-char chunks of Markdown paragraphs."""
    text, i = "", 0
    while len(text) < n_deltas * 4:
        i += 1
        text += f"Paragraph {i}. " + PARAGRAPH + "\n\n"
    return chunks_of(text)[:n_deltas]


def feed(
    view: WidgetRenderer, clock: ManualClock, events: Any, *, rate: float = 1000.0
) -> list[float]:
    """Feed events at ``rate`` deltas/s; the refresh times."""
    return feed_paced(view, clock, events, rate=rate)


def counter_values(wire: WireLog, counter_id: str) -> list[int]:
    """Every delta count the counter widget was sent, in order."""
    values = [s["value"] for s in wire.updates(counter_id) if "value" in s]
    return [int(re.search(r"<b>([\d,]+)</b>", v).group(1).replace(",", "")) for v in values]


def markdown_children(wire: WireLog) -> list[str]:
    """The Markdown of every static child created, in order."""
    return [
        output["data"]["text/markdown"]
        for kind, _, data in wire.messages
        if kind == "open"
        for output in data["state"].get("outputs", [])
    ]


# ----------------------------------------------------------------- rate, bytes


def test_update_rate_is_bounded_whatever_the_delta_rate(clock: ManualClock, wire: WireLog) -> None:
    view = make_view(clock)
    factory = EventFactory(clock=clock)
    events = [*factory.start(), *factory.streamed_message(long_answer(5000)), *factory.end()]
    flushes = feed(view, clock, events, rate=2000.0)
    view.finish()
    assert busiest_second(flushes) <= 20
    assert len(flushes) >= 30  # and it does refresh while streaming (~15/s over 2.5 s)


def test_bytes_grow_linearly_for_a_20000_delta_stream(clock: ManualClock, wire: WireLog) -> None:
    """O(n): twice the stream costs about twice the bytes (a naive view: 4x)."""
    sent = {}
    for n in (10_000, 20_000):
        clock.now = 0.0
        wire.clear()
        view = make_view(clock)
        factory = EventFactory(clock=clock)
        chunks = long_answer(n)
        events = [*factory.start(), *factory.streamed_message(chunks), *factory.end()]
        feed(view, clock, events, rate=5000.0)
        view.finish()
        sent[n] = (wire.bytes, len("".join(chunks)))
    bytes_20k, text_20k = sent[20_000]
    assert bytes_20k / sent[10_000][0] < 2.3
    assert bytes_20k < 3 * text_20k


def test_final_counter_equals_the_true_delta_count(clock: ManualClock, wire: WireLog) -> None:
    sink = RecordingSink()
    view = make_view(clock, sink=sink)
    counter_id = view.counter.comm.comm_id
    factory = EventFactory(clock=clock)
    events = [*factory.start(), *factory.streamed_message(long_answer(20_000)), *factory.end()]
    feed(view, clock, events, rate=10_000.0)
    view.finish()
    values = counter_values(wire, counter_id)
    assert values[-1] == 20_000
    assert values == sorted(values)  # it only climbs
    assert len(set(values)) > 3
    ((_, metadata),) = sink.final
    assert metadata["nearnb"]["deltas"] == 20_000


# ----------------------------------------------------- what is shown, and when


def test_streaming_text_is_shown_live(clock: ManualClock, wire: WireLog) -> None:
    view = make_view(clock, show=True)
    factory = EventFactory(clock=clock)
    msg_id, created = factory.message_created()
    feed(view, clock, [*factory.start(), created, factory.delta(msg_id, "Know <thyself>")])
    assert view._live is not None
    assert view._live.tail.value == "Know &lt;thyself&gt;"


def test_only_the_counter_moves_when_show_streaming_message_is_false(
    clock: ManualClock, wire: WireLog
) -> None:
    sink = RecordingSink()
    view = make_view(clock, show=False, sink=sink)
    counter_id = view.counter.comm.comm_id
    factory = EventFactory(clock=clock)
    msg_id, created = factory.message_created()
    words = ["private ", "draft ", "words"]
    feed(
        view,
        clock,
        [*factory.start(), created, *(factory.delta(msg_id, w) for w in words)],
        rate=5.0,
    )
    assert "draft" not in json.dumps(wire.messages)
    assert counter_values(wire, counter_id)[-1] == 3
    feed(view, clock, [factory.message_done(msg_id, "".join(words)), *factory.end()])
    assert markdown_children(wire) == ["private draft words"]  # complete, as Markdown
    view.finish()
    assert "private draft words" in sink.final[0][0]["text/markdown"]


def test_streaming_text_is_replaced_when_the_next_message_starts(
    clock: ManualClock, wire: WireLog
) -> None:
    """An intermediate (hidden) streamed message stays visible until the next
    message starts, then gives way; answers stay in the transcript."""
    view = make_view(clock)
    factory = EventFactory(clock=clock)
    feed(
        view,
        clock,
        [
            *factory.start(),
            *factory.streamed_message(["Notes: ", "be brief"], message_type="agent:intermediate"),
        ],
    )
    assert "Notes: be brief" in view._live.tail.value
    draft_box = view._live.box
    msg_id, created = factory.message_created()
    feed(view, clock, [created, factory.delta(msg_id, "Virtue is")])
    assert draft_box.comm is None  # the draft's widgets are closed
    assert view.live.children == (view._live.box,)
    assert view._live.tail.value == "Virtue is"
    feed(
        view,
        clock,
        [
            factory.message_done(msg_id, "Virtue is knowledge."),
            *factory.streamed_message(["Plato ", "agrees."]),
        ],
    )
    assert view.live.children == ()
    assert len(view.transcript.children) == 2
    assert markdown_children(wire) == ["Virtue is knowledge.", "Plato agrees."]


def test_completed_paragraphs_become_static_markdown_children(
    clock: ManualClock, wire: WireLog
) -> None:
    """Only the tail after the last complete paragraph is re-sent."""
    view = make_view(clock)
    factory = EventFactory(clock=clock)
    text = "".join(long_answer(600))
    msg_id, created = factory.message_created()
    events = [*factory.start(), created, *(factory.delta(msg_id, c) for c in chunks_of(text))]
    feed(view, clock, events, rate=100.0)
    frozen = markdown_children(wire)
    assert len(frozen) >= 3
    paragraphs = text.split("\n\n")
    assert frozen == [p.strip() for p in paragraphs[: len(frozen)]]  # whole paragraphs, in order
    assert view._live.tail.value == "\n\n".join(paragraphs[len(frozen) :])
    assert all(
        len(v["value"]) < 2 * len(PARAGRAPH) + 100
        for v in wire.updates(view._live.tail.comm.comm_id)
        if "value" in v
    )


def test_the_final_bundle_is_static_markdown_with_run_metadata(
    clock: ManualClock, wire: WireLog
) -> None:
    sink = RecordingSink()
    view = make_view(clock, sink=sink)
    factory = EventFactory(clock=clock)
    events = [
        *factory.start(),
        *factory.streamed_message(["Socrates: ", "know thyself."]),
        *factory.streamed_message(["Plato: ", "the Forms."]),
        *factory.end(),
    ]
    feed(view, clock, events)
    first = sink.calls[0]
    assert first[0] == "show" and WIDGET_VIEW_MIME in first[1]
    view.finish()
    ((data, metadata),) = sink.final
    assert WIDGET_VIEW_MIME not in data
    assert "Socrates: know thyself." in data["text/markdown"]
    assert "Plato: the Forms." in data["text/plain"]
    assert data["text/markdown"].index("Socrates") < data["text/markdown"].index("Plato")
    assert metadata["nearnb"] | {"elapsed": 0} == {
        "thread_id": "thread_test",
        "run_id": "run_test",
        "status": "completed",
        "deltas": 4,
        "chars": 40,
        "agent": "streaming-example",
        "model": "local::smollm2",
        "elapsed": 0,
        "answers": 2,
    }
    # every widget was closed after the swap: nothing leaks in the kernel or the saved state
    opened = {cid for kind, cid, _ in wire.messages if kind == "open"}
    closed = {cid for kind, cid, _ in wire.messages if kind == "close"}
    assert opened <= closed


def test_errors_show_inline_with_an_expandable_traceback(clock: ManualClock, wire: WireLog) -> None:
    sink = RecordingSink()
    view = make_view(clock, sink=sink)
    factory = EventFactory(clock=clock)
    trace = 'Traceback (most recent call last):\n  File "agent.py"\nValueError: <boom>'
    events = [
        *factory.start(),
        *factory.streamed_message(["partial"], status="incomplete"),
        *factory.end(
            "failed",
            last_error={"code": "server_error", "message": "ValueError: <boom>"},
            metadata={"nearnb.traceback": trace},
        ),
    ]
    feed(view, clock, events)
    assert view.error.layout.display is None
    assert "ValueError: &lt;boom&gt;" in view.error.value
    assert "<details><summary>Traceback</summary>" in view.error.value
    assert 'data-status="failed"' in view.header.value and "#dc2626" in view.header.value
    view.finish()
    markdown = sink.final[0][0]["text/markdown"]
    assert "**Error:** ValueError: &lt;boom&gt;" in markdown
    assert "<details><summary>Traceback</summary>" in markdown
    assert "partial" in markdown and "incomplete" in markdown


# ------------------------------------------------------------------------ Stop


def test_stop_click_cancels_once_and_shows_cancelling(clock: ManualClock, wire: WireLog) -> None:
    calls: list[str] = []
    view = make_view(clock, on_stop=lambda: calls.append(threading.current_thread().name))
    button_id = view.stop_button.comm.comm_id
    factory = EventFactory(clock=clock)
    feed(view, clock, factory.start())
    clicker = threading.Thread(target=click, args=(view.stop_button,), name="subshell-x")
    clicker.start()
    clicker.join()
    click(view.stop_button)
    assert calls == ["subshell-x"]
    assert 'data-status="cancelling"' in view.header.value
    # disabled + new label went out as one message (hold_sync)
    assert {"disabled": True, "description": "Stopping…"} in wire.updates(button_id)
    feed(view, clock, factory.end("cancelled"))
    assert 'data-status="cancelled"' in view.header.value


def test_stop_button_is_disabled_without_a_canceller(clock: ManualClock, wire: WireLog) -> None:
    view = make_view(clock)
    assert view.stop_button.disabled


def test_stop_clicks_are_routed_to_the_frontends_subshell() -> None:
    """ipykernel 7.4.0 routes a comm message to the subshell that last
    published on the comm (the busy main shell); the override restores the
    subshell the frontend chose."""

    class Comm74:
        def _reply_subshell_for(self, data: Any, default: Any) -> Any:
            return "main"

    class Widget:
        comm = Comm74()

    assert route_clicks_to_frontend_subshell(Widget())
    assert Widget.comm._reply_subshell_for({}, "subshell-1") == "subshell-1"

    class OldWidget:
        comm = object()

    assert not route_clicks_to_frontend_subshell(OldWidget())


# -------------------------------------------------------------------- plumbing


def test_append_tree_resends_at_most_fanout_ids_per_append(wire: WireLog) -> None:
    import ipywidgets as widgets

    kit = WidgetKit()
    tree = AppendTree(kit, fanout=4)
    root = tree.root
    leaves = [widgets.HTML(str(i)) for i in range(40)]
    wire.clear()
    kit.sent = 0
    for leaf in leaves:
        tree.append(leaf)
    biggest = max(len(s["children"]) for s in wire.updates() if "children" in s)
    assert biggest <= 4
    assert kit.sent == wire.count()  # the kit counts exactly what goes on the wire

    def flatten(box: Any) -> list[Any]:
        return [
            x
            for child in box.children
            for x in (flatten(child) if isinstance(child, widgets.VBox) else [child])
        ]

    assert flatten(tree.root) == leaves
    assert tree.root is root  # a full root pushes its children down; it is never replaced


def test_trailing_changes_are_flushed_by_the_timer_thread() -> None:
    """With autoflush, a change deferred by the throttle reaches the view
    although no further event arrives (a stream that stalls)."""
    with recording_comms():
        view = WidgetRenderer(RunInfo(agent_name="a"), sink=RecordingSink(), interval=0.05)
        factory = EventFactory()
        msg_id, created = factory.message_created()
        for event in [
            *factory.start(),
            created,
            factory.delta(msg_id, "one "),
            factory.delta(msg_id, "two"),
        ]:
            view(event)
        for _ in range(100):
            if view._live is not None and view._live.tail.value == "one two":
                break
            threading.Event().wait(0.01)
        assert view._live.tail.value == "one two"
        view.finish()


# ------------------------------------------------------------------ tool steps


def test_tool_steps_show_apart_from_the_answer(clock: ManualClock, wire: WireLog) -> None:
    """A running step is a live row (re-sent, clipped); once finished it is a
    static block in the transcript, between the answers around it."""
    from nearnb.view.mixes import TimedFactory

    view = make_view(clock)
    f = TimedFactory()
    f.start()
    f.streamed_message(["Let me ", "add."])
    f.step("thread.run.step.created", "step_1", "in_progress", [])
    f.step_delta("step_1", 0, name="add")
    f.step_delta("step_1", 0, arguments='{"a": 1}')
    feed(view, clock, [e for _, e in f.timed])
    assert "🔧 <code>add({&quot;a&quot;: 1})</code> → …" in view.tools.value
    assert markdown_children(wire) == ["Let me add."]
    f.timed.clear()
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "add", "arguments": '{"a": 1}', "output": "1"},
    }
    f.step("thread.run.step.completed", "step_1", "completed", [call])
    f.streamed_message(["It is ", "1."])
    feed(view, clock, [e for _, e in f.timed])
    assert view.tools.value == ""
    assert markdown_children(wire) == ["Let me add.", '🔧 `add({"a": 1})` → 1', "It is 1."]
    assert "🔧" not in "".join(v.get("value", "") for v in wire.updates(view.counter.comm.comm_id))
