"""The view's pure parts: throttle, block splitting, static bundle, mode choice."""

from __future__ import annotations

import pytest

from nearnb.reducer import reduce
from nearnb.view import choose_display
from nearnb.view.blocks import freeze_point
from nearnb.view.bundle import RunInfo, final_bundle
from nearnb.view.testing import EventFactory, ManualClock
from nearnb.view.throttle import Throttle

# -------------------------------------------------------------------- throttle


def test_throttle_renders_first_then_at_most_once_per_interval() -> None:
    clock = ManualClock()
    throttle = Throttle(0.1, clock)
    assert throttle.offer()
    throttle.flushed()
    clock.now = 0.05
    assert not throttle.offer()  # coalesced
    assert not throttle.due() and throttle.remaining() == pytest.approx(0.05)
    clock.now = 0.1
    assert throttle.due()
    throttle.flushed()
    assert not throttle.due()  # nothing pending


def test_throttle_boundaries_take_the_next_slot() -> None:
    """A boundary no longer jumps the queue (300 of them a second would be
    300 refreshes): it renders at once when the view is idle, else when due."""
    clock = ManualClock()
    throttle = Throttle(0.1, clock)
    assert throttle.offer(boundary=True)  # idle: at once
    throttle.flushed(boundary=True)
    clock.now = 0.01
    assert not throttle.offer(boundary=True)
    assert throttle.remaining() == pytest.approx(0.09)
    clock.now = 0.1
    assert throttle.due()


def test_throttle_keeps_the_message_window_under_its_limit() -> None:
    """A refresh is allowed only if the largest refresh seen still fits in
    the last second's message budget; spare() is what cleanup may send."""
    clock = ManualClock()
    throttle = Throttle(0.1, clock, max_messages=100, reserve=10)
    throttle.flushed(cost=60)
    clock.now = 0.1
    assert throttle.refresh_cost == 60  # the largest refresh so far
    assert not throttle.offer()  # 60 sent + 60 more would exceed 100
    assert throttle.remaining() == pytest.approx(0.9)  # when the first 60 leave the window
    assert throttle.spare(keep=0) == 40 and throttle.spare() == 0
    clock.now = 1.0
    assert throttle.due()


def test_a_refresh_bigger_than_the_budget_delays_but_never_blocks() -> None:
    clock = ManualClock()
    throttle = Throttle(0.1, clock, max_messages=100)
    throttle.flushed(cost=150)
    assert not throttle.offer() and throttle.remaining() == pytest.approx(1.0)
    clock.now = 1.0
    assert throttle.due()


def test_throttle_leaves_room_for_the_final_refresh() -> None:
    clock = ManualClock()
    throttle = Throttle(1 / 20, clock)
    times = []
    while clock.now < 1.0:
        if throttle.offer():
            throttle.flushed()
            times.append(clock.now)
        clock.now = round(clock.now + 0.001, 6)
    assert len(times) == 19  # the 20th slot of the second is the final render's


def test_throttle_refuses_intervals_above_20_per_second() -> None:
    with pytest.raises(ValueError, match="floor"):
        Throttle(0.01)


# ---------------------------------------------------------------------- blocks


def test_nothing_freezes_before_a_block_is_worth_it() -> None:
    assert freeze_point("short paragraph.\n\nnext", 0) == 0


def test_freezes_at_the_last_paragraph_break() -> None:
    text = "a" * 400 + "\n\n" + "b" * 50 + "\n\n" + "c" * 10
    cut = freeze_point(text, 0)
    assert text[:cut] == "a" * 400 + "\n\n" + "b" * 50 + "\n\n"
    assert freeze_point(text, cut) == cut  # the tail "ccc..." is still being written


def test_never_cuts_inside_a_code_fence() -> None:
    code = "```python\n" + "x = 1\n\n" * 100 + "```\n"
    text = "intro\n\n" + code + "\n" + "after " * 5
    cut = freeze_point(text, 0, min_block=4)
    assert cut in (len("intro\n\n"), len("intro\n\n" + code + "\n"))
    assert text[:cut].count("```") % 2 == 0


def test_a_huge_paragraph_is_cut_at_a_line_break() -> None:
    text = ("word " * 20 + "\n") * 30 + "tail"
    cut = freeze_point(text, 0, min_block=384, max_tail=2048)
    assert cut > 0 and text[cut - 1] == "\n"
    assert freeze_point("x" * 5000, 0) == 0  # no line break at all: nothing to cut


# ---------------------------------------------------------------------- bundle


def test_final_bundle_keeps_answers_notices_errors_and_metadata() -> None:
    factory = EventFactory()
    notice_id, notice = factory.message_created("system:notice")
    events = [
        *factory.start(),
        notice,
        factory.message_done(notice_id, "using the embedded model", message_type="system:notice"),
        *factory.streamed_message(["**Socrates**"]),
        *factory.streamed_message(["draft"], message_type="agent:intermediate"),
        *factory.streamed_message(["half"], status="incomplete"),
        *factory.end(
            "failed",
            last_error={"code": "server_error", "message": "ValueError: x"},
            metadata={"nearnb.traceback": "Traceback ...\nValueError: x"},
        ),
    ]
    state = reduce(events)
    data, metadata = final_bundle(state, RunInfo(agent_name="my_agent"), deltas=3)
    md, plain = data["text/markdown"], data["text/plain"]
    assert md.startswith(r"**my\_agent** · `local::smollm2` · ")
    assert "> using the embedded model" in md and "note: using the embedded model" in plain
    assert "**Socrates**" in md and "draft" not in md
    assert "half\n\n*(incomplete: cancelled)*" in md
    assert "<details><summary>Traceback</summary>" in md and "error: ValueError: x" in plain
    assert metadata["nearnb"]["status"] == "failed"
    assert metadata["nearnb"]["deltas"] == 3


# ------------------------------------------------------------------ mode choice


def test_display_mode_from_argument_then_env_then_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_display("Handle") == "handle"
    monkeypatch.setenv("NEARNB_DISPLAY", "plain")
    assert choose_display(None) == "plain"
    assert choose_display("auto") == "plain"
    assert choose_display("widget") == "widget"
    monkeypatch.delenv("NEARNB_DISPLAY")
    assert choose_display(None) in ("terminal", "plain")  # no kernel here


def test_display_mode_typos_are_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="display='widgte': expected one of widget, handle"):
        choose_display("widgte")
    monkeypatch.setenv("NEARNB_DISPLAY", "fancy")
    with pytest.raises(ValueError, match="NEARNB_DISPLAY='fancy'"):
        choose_display()
