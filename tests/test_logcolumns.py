"""A run's log kept in columns reads exactly as the list of entries it replaces.

:class:`nearnb.logcolumns.LogColumns` keeps a text delta as three slots and makes
its entry tuple when read. Every way a reader reaches entries - an index, a slice,
an EventSeq window, its Events only, a stretch of one message's text - is checked
against the plain list a log of tuples would hold, for any mix of events, messages
and content indexes.
"""

from __future__ import annotations

from array import array

from hypothesis import given
from hypothesis import strategies as st

from nearnb.events import Event
from nearnb.eventseq import EventSeq
from nearnb.logcolumns import LogColumns

RUN, THREAD = "run_c", "thread_c"

#: What to append: a delta of message 0/1 (mostly index 0), or a whole event.
STEP = st.one_of(
    st.tuples(
        st.just("delta"), st.integers(0, 1), st.sampled_from([0, 0, 0, 2, 3]), st.text(max_size=4)
    ),
    st.tuples(st.just("event"), st.just(0), st.just(0), st.text(max_size=4)),
)


def build(steps: list[tuple[str, int, int, str]]) -> tuple[LogColumns, list[object]]:
    """The columns, and the entries a list would hold, for the same appends."""
    columns, plain = LogColumns(RUN, THREAD), []
    for n, (kind, message, index, text) in enumerate(steps, start=1):
        at = n / 8
        if kind == "delta":
            columns.append_text(f"msg_{message}", text, index, at)
            plain.append((n, at, f"msg_{message}", text, index, RUN, THREAD))
        else:
            event = Event.trusted(n, "thread.run.step.delta", {"t": text}, RUN, THREAD, at)
            columns.append_event(event)
            plain.append(event)
    return columns, plain


@given(st.lists(STEP, max_size=40), st.data())
def test_every_read_of_the_columns_is_the_plain_list(
    steps: list[tuple[str, int, int, str]], data: st.DataObject
) -> None:
    columns, plain = build(steps)
    n = len(plain)
    assert len(columns) == n
    assert columns[:] == plain and [columns[i] for i in range(-n, n)] == plain + plain
    start = data.draw(st.integers(0, n))
    stop = data.draw(st.integers(start, n))
    assert columns[start:stop] == plain[start:stop]
    window, reference = EventSeq(columns, stop, start), EventSeq(plain, stop, start)
    assert window.raw() == plain[start:stop] and list(window) == list(reference)
    cut = slice(data.draw(st.integers(-n - 1, n + 1)), data.draw(st.integers(-n - 1, n + 1)))
    assert window[cut] == reference[cut] and window[::2] == reference[::2]
    assert window.whole() == [e for e in plain[start:stop] if isinstance(e, Event)]
    after = data.draw(st.integers(0, n + 1))
    assert window.after(after).raw() == [e for e in plain[start:stop] if _seq(e) > after]
    stretch = window.stretch()
    assert stretch == reference.stretch()  # the columns' own check, and the entries'
    if stretch is not None:
        assert stretch.entries() == plain[start:stop]


def test_a_stretch_is_one_message_at_one_index_with_no_event_inside() -> None:
    columns, _ = build(
        [("delta", 0, 0, "a"), ("delta", 0, 0, "b"), ("delta", 1, 0, "c"), ("event", 0, 0, "")]
    )
    whole = EventSeq(columns)
    assert EventSeq(columns, 2).stretch() == (
        1,
        "msg_0",
        0,
        RUN,
        THREAD,
        ["a", "b"],
        array("d", [0.125, 0.25]),
    )
    assert EventSeq(columns, 3).stretch() is None  # two messages
    assert EventSeq(columns, 4, 2).stretch() is None  # an event
    assert whole.stretch() is None and EventSeq(columns, 0).stretch() is None
    columns.append_text("msg_0", "d", 2, 1.0)
    columns.append_text("msg_0", "e", 2, 1.5)
    assert EventSeq(columns, 6, 4).stretch() == (
        5,
        "msg_0",
        2,
        RUN,
        THREAD,
        ["d", "e"],
        array("d", [1, 1.5]),
    )
    columns.append_text("msg_0", "f", 0, 2.0)
    assert EventSeq(columns, 7, 4).stretch() is None  # content indexes 2 and 0
    columns.append_text("msg_0", "g", 3, 2.5)
    assert EventSeq(columns, 8, 7).stretch() is not None
    assert EventSeq(columns, 8, 4).stretch() is None  # 2, 0 and 3
    assert EventSeq(columns, 8, 6).stretch() is None  # 0 and 3
    assert EventSeq(columns, 6, 4).stretch() is not None
    columns.append_text("msg_0", "h", 2, 3.0)
    assert EventSeq(columns, 9, 7).stretch() is None  # 3 and 2


def _seq(entry: object) -> int:
    return entry[0] if isinstance(entry, tuple) else entry.seq  # type: ignore[attr-defined,index,no-any-return]
