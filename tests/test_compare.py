"""Agents side by side (``nearnb.compare``, ``%%near_agent A B``) on real runs.

The models are the scripted OpenAI-compatible server over real HTTP (and, in
the ``local_model`` tests, the embedded model); widget traffic goes to the
recording comm and is counted exactly. The rate bound is checked for the
whole cell - every column together - on a manual clock, and with real threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from nearnb.comparing import Comparison, ComparisonRun, compare, shared_model_notice
from nearnb.events import Event, delta_text
from nearnb.providers.turns import ModelThread
from nearnb.reducer import reduce
from nearnb.view import RunInfo
from nearnb.view.bundle import run_markdown
from nearnb.view.columns import ColumnsRenderer, MarkdownColumns
from nearnb.view.columns_widget import WidgetColumns
from nearnb.view.mixes import MIXES, Timed, long_message, play, short_messages
from nearnb.view.sink import RecordingSink
from nearnb.view.testing import ManualClock, busiest_second, click, recording_comms
from tests.agent_helpers import make_agent
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.support.waiting import wait_until

ECHO = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
FIXED = "env.add_reply('A fixed answer, not streamed.')\n"


def as_run(timed: Timed, run_id: str) -> Timed:
    """A mix's events, as another run's (mixes are all built with one run id)."""
    return [(t, e.model_copy(update={"run_id": run_id})) for t, e in timed]


def merged(*runs: Timed) -> Timed:
    return sorted((pair for run in runs for pair in run), key=lambda pair: pair[0])


# ---------------------------------------------------------------- the rate bound


@pytest.mark.parametrize("mix", list(MIXES))
def test_one_throttle_bounds_every_column_together(mix: str) -> None:
    """Three columns streaming at once (the mix, a long message, 300 short
    answers): <= 20 refreshes and <= 100 comm messages in any second for the
    cell, and the final output holds every column exactly."""
    runs = [
        as_run(MIXES[mix](), "run_a"),
        as_run(long_message(), "run_b"),
        as_run(short_messages(), "run_c"),
    ]
    infos = [RunInfo(agent_name=name) for name in ("alpha", "beta", "gamma")]
    clock, sink = ManualClock(), RecordingSink()
    with recording_comms(clock) as wire:
        view = WidgetColumns(infos, sink=sink, clock=clock, autoflush=False)
        played = play(view, clock, merged(*runs))
    assert busiest_second(played.refreshes) <= 20
    assert busiest_second(wire.times) <= 100  # opens, updates, closes of all columns
    assert view.kit.sent == wire.count()
    # Three columns' widgets (~60 opens) and refreshes (up to ~40 messages each at
    # 1,000 deltas/s a column) share one 100-message window: a change may wait for
    # the window to free up, but never more than the window itself.
    assert played.latency <= 1.1
    ((data, metadata),) = sink.final
    for run, info in zip(runs, infos, strict=True):
        assert run_markdown(reduce(e for _, e in run), info) in data["text/markdown"]
    statuses = [column["status"] for column in metadata["nearnb"]["comparison"]]
    assert statuses == [reduce(e for _, e in run).status for run in runs]
    opened = {cid for kind, cid, _ in wire.messages if kind == "open"}
    assert opened == {cid for kind, cid, _ in wire.messages if kind == "close"}


def test_the_bound_holds_with_feeders_on_real_threads() -> None:
    """Two columns fed from two threads as fast as they go, the view's own timer,
    a Stop click on column 0 from a third thread: still one budget."""
    runs = [as_run(long_message(), "run_a"), as_run(short_messages(), "run_b")]
    stopped: list[int] = []
    sink = RecordingSink()
    with recording_comms(time.monotonic) as wire:
        view = WidgetColumns(
            [RunInfo(agent_name="a"), RunInfo(agent_name="b")],
            stops=[lambda: stopped.append(0), lambda: stopped.append(1)],
            sink=sink,
        )
        clicked = threading.Event()

        def feed(i: int) -> None:
            for n, (_, event) in enumerate(runs[i]):
                if i == 0 and n == len(runs[0]) // 2:
                    clicked.wait(10)  # mid-run, so the click is not a no-op
                view.column(i)(event)

        feeders = [threading.Thread(target=feed, args=(i,)) for i in range(2)]
        for feeder in feeders:
            feeder.start()
        wait_until(lambda: view.columns[0].state.deltas > 100, "column 0 streams")
        clicker = threading.Thread(target=lambda: (click(view.stop_button(0)), clicked.set()))
        clicker.start()
        for thread in (*feeders, clicker):
            thread.join()
        view.finish()
        wait_until(lambda: view.cleanup_wait is None, "the widgets are closed")
    assert stopped == [0]  # column 0's Stop only
    assert busiest_second(wire.times) <= 100
    ((data, _),) = sink.final
    assert "Answer 299 is short." in data["text/markdown"]
    opened = {cid for kind, cid, _ in wire.messages if kind == "open"}
    assert opened == {cid for kind, cid, _ in wire.messages if kind == "close"}


def test_live_markdown_columns_refresh_a_few_times_a_second() -> None:
    """``--display handle``: one Markdown output with every column, updated by
    display id (no comms) at most 4 times a second, then the static bundle."""
    runs = [as_run(long_message(), "run_a"), as_run(short_messages(), "run_b")]
    clock, sink = ManualClock(), RecordingSink()
    view = MarkdownColumns(
        [RunInfo(agent_name="a"), RunInfo(agent_name="b")],
        live=True,
        sink=sink,
        clock=clock,
        autoflush=False,
        notice="2 runs share the embedded model",
    )
    played = play(view, clock, merged(*runs))
    assert busiest_second(played.refreshes) <= 5  # 4/s, plus the final bundle
    assert len(sink.calls) <= len(played.refreshes) + 1
    live = [data for kind, data, _, _ in sink.calls[1:-1] if kind == "update"]
    assert any("deltas received" in data["text/markdown"] for data in live)
    ((data, metadata),) = sink.final
    assert (data, metadata) == view.final_bundle()
    assert data["text/markdown"].startswith("> ⚠ 2 runs share the embedded model")
    assert "Answer 299 is short." in data["text/markdown"]


# ------------------------------------------------------------------ real runs


@pytest.fixture
def agents(tmp_path: Path) -> tuple[Path, Path]:
    return make_agent(tmp_path / "alpha", ECHO), make_agent(tmp_path / "beta", ECHO)


def delta_times(events: list[Event]) -> list[float]:
    return [e.at for e in events if e.event == "thread.message.delta"]


def test_stop_in_one_column_leaves_the_other_running(
    srv: ScriptedOpenAI, agents: tuple[Path, Path]
) -> None:
    srv.default = Reply.text(*[f"w{i} " for i in range(60)], delay=0.02)
    sink = RecordingSink()
    with recording_comms(time.monotonic):
        running = compare(list(agents), "Go on.", display="widget", wait=False, sink=sink)
        assert isinstance(running, ComparisonRun) and isinstance(running.view, WidgetColumns)
        first, second = running.handles
        wait_until(lambda: first.state.deltas >= 5 and second.state.deltas >= 5, "both stream")
        click(running.view.stop_button(0))  # the column's own Stop button
        result = running.wait()
    cancelled, completed = result.results
    assert cancelled.status == "cancelled" and completed.status == "completed"
    assert completed.deltas == 60 and 5 <= cancelled.deltas < 60
    a, b = delta_times(cancelled.events), delta_times(completed.events)
    assert b[0] < a[-1] and a[0] < b[-1]  # in progress at overlapping times
    ((data, meta),) = sink.final
    assert [c["status"] for c in meta["nearnb"]["comparison"]] == ["cancelled", "completed"]
    assert completed.text.strip()[:40] in data["text/markdown"]
    assert cancelled.thread_id != completed.thread_id  # each run its own thread


def test_an_interrupt_while_waiting_stops_every_column(
    srv: ScriptedOpenAI, agents: tuple[Path, Path]
) -> None:
    """A kernel interrupt (here: KeyboardInterrupt raised in this thread) cancels all
    the runs and still returns the comparison, partial answers kept."""
    import _thread

    srv.default = Reply.text(*[f"w{i} " for i in range(200)], delay=0.02)
    running = compare(list(agents), "Go on.", display="none", wait=False)
    assert isinstance(running, ComparisonRun)

    def interrupt() -> None:
        wait_until(lambda: min(h.state.deltas for h in running.handles) >= 5, "both stream")
        _thread.interrupt_main()

    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    result = running.wait()
    interrupter.join()
    assert [r.status for r in result.results] == ["cancelled", "cancelled"]
    assert all(5 <= r.deltas < 200 for r in result.results)
    assert all(r.messages[-1].status == "incomplete" for r in result.results)


def test_table_is_computed_from_each_runs_events(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.default = Reply.text("Know ", "thy", "self.", delay=0.01)
    streamed = make_agent(tmp_path / "streamed", ECHO)
    fixed = make_agent(tmp_path / "fixed", FIXED)
    sink = RecordingSink()
    result = compare([streamed, fixed], "Who?", display="plain", sink=sink)
    assert isinstance(result, Comparison) and len(result) == 2
    rows = result.table()
    for row, run in zip(rows, result.results, strict=True):
        deltas = [e for e in run.events if e.event == "thread.message.delta"]
        assert row["status"] == run.status == "completed"
        assert row["deltas"] == len(deltas) == run.deltas
        assert row["characters"] == sum(len(delta_text(e.data)) for e in deltas)
        if deltas:
            assert row["first_delta_s"] == pytest.approx(deltas[0].at - run.events[0].at)
        else:
            assert row["first_delta_s"] is None
    assert rows[0]["deltas"] == 3 and rows[0]["characters"] == len("Know thyself.")
    assert rows[1]["deltas"] == 0  # an answer that was not streamed
    markdown, text, html = result._repr_markdown_(), repr(result), result._repr_html_()
    for stats in result.stats:
        for cell in stats.cells():
            assert cell in markdown and cell in text and cell in html
    ((data, meta),) = sink.final  # what a saved notebook keeps
    assert "Know thyself." in data["text/markdown"] and "Know thyself." in data["text/plain"]
    assert "A fixed answer, not streamed." in data["text/markdown"]
    assert [c["agent"] for c in meta["nearnb"]["comparison"]] == ["streamed", "fixed"]


def test_several_models_give_one_column_each(
    srv: ScriptedOpenAI, agents: tuple[Path, Path]
) -> None:
    srv.default = Reply.text("ok")
    result = compare(agents[0], "Hi", model=["m1", "m2"], display="none")
    assert isinstance(result, Comparison)
    assert sorted(r.body["model"] for r in srv.requests) == ["m1", "m2"]
    assert [r.model for r in result.results] == ["scripted::m1", "scripted::m2"]
    assert result.labels == ["alpha · m1", "alpha · m2"]


# ------------------------------------------------------------------ the magic


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("NEARNB_DISPLAY", "plain")
    shell = InteractiveShell.instance()
    assert shell.run_cell("%load_ext nearnb").success
    yield shell
    shell.run_cell("%reload_ext nearnb")


def run(ip: InteractiveShell, code: str) -> Any:
    result = ip.run_cell(code)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def test_magic_model_list_gives_columns_with_the_requested_models(
    ip: InteractiveShell, srv: ScriptedOpenAI, agents: tuple[Path, Path]
) -> None:
    srv.default = Reply.text("Know ", "thyself.")
    result = run(ip, f"%%near_agent {agents[0]} --model m1,m2\nWhat is virtue?")
    assert isinstance(result, Comparison)
    bodies = sorted((r.body["model"], r.body["messages"][-1]["content"]) for r in srv.requests)
    assert bodies == [("m1", "What is virtue?"), ("m2", "What is virtue?")]
    assert [r.status for r in result.results] == ["completed", "completed"]
    assert len({r.thread_id for r in result.results}) == 2


def test_magic_several_agents_line_and_cell_forms(
    ip: InteractiveShell, srv: ScriptedOpenAI, agents: tuple[Path, Path]
) -> None:
    srv.default = Reply.text("Know ", "thyself.")
    a, b = agents
    line = run(ip, f"%near_agent {a} {b} What is virtue")
    cell = run(ip, f"%%near_agent {a} {b}\nAnd justice?")
    for comparison in (line, cell):
        assert isinstance(comparison, Comparison)
        assert [r.agent for r in comparison.results] == ["alpha", "beta"]
        assert all(r.text == "Know thyself." for r in comparison.results)
    asked = sorted(r.body["messages"][-1]["content"] for r in srv.requests)
    assert asked == ["And justice?", "And justice?", "What is virtue", "What is virtue"]
    single = run(ip, f'%near_agent {a} "What is virtue?"')  # one agent: still a RunResult
    assert single.status == "completed" and not isinstance(single, Comparison)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%%near_agent A B --thread thread_x\nhi", "--thread cannot be used side by side"),
        ("%%near_agent A --model a,b,c,d,e,f,g,h,i\nhi", "9 columns asked for; at most 8"),
        ("%%near_agent A --model a,,b\nhi", "an empty value in the list"),
        ("%%near_agent A B not-an-agent\nhi", "'not-an-agent' is not an agent folder"),
        ("%%near_agent A B --display fancy\nhi", "invalid choice: 'fancy'"),
    ],
)
def test_magic_mistakes_are_one_line_errors(
    ip: InteractiveShell, srv: ScriptedOpenAI, agents: tuple[Path, Path], line: str, message: str
) -> None:
    code = line.replace(" A ", f" {agents[0]} ").replace(" B ", f" {agents[1]} ")
    code = code.replace(" A\n", f" {agents[0]}\n").replace(" B\n", f" {agents[1]}\n")
    with pytest.raises(UsageError, match=message.replace("'", ".")):
        run(ip, code)
    assert srv.requests == []  # nothing ran


def test_magic_no_wait_returns_the_running_comparison(
    ip: InteractiveShell, srv: ScriptedOpenAI, agents: tuple[Path, Path]
) -> None:
    srv.default = Reply.text("slow ", "answer", delay=0.05)
    running = run(ip, f"%%near_agent {agents[0]} {agents[1]} --no-wait\nhi")
    assert isinstance(running, ComparisonRun)
    result = running.wait()
    assert [r.status for r in result.results] == ["completed", "completed"]
    assert running.view.finished


# ------------------------------------------------ the embedded model's one thread


def test_the_model_thread_takes_calls_in_arrival_order_on_one_thread() -> None:
    """Two streams asking one token at a time alternate; every call runs on one thread
    (llama.cpp's OpenMP team is per calling thread: see nearnb.providers.turns)."""
    worker, order, ran_on = ModelThread(), [], set()
    release = threading.Event()

    def token(name: str, i: int) -> str:
        ran_on.add(threading.get_ident())
        order.append(name)
        time.sleep(0.02)  # a token's compute, GIL released (as in llama.cpp's C code)
        return f"{name}{i}"

    def stream(name: str) -> None:
        release.wait()
        for i in range(5):
            assert worker.call(lambda i=i: token(name, i)) == f"{name}{i}"

    worker.call(lambda: release.wait(0))  # started, idle
    threads = [threading.Thread(target=stream, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join()
    assert sorted(order) == ["a"] * 5 + ["b"] * 5
    # FIFO and one request in flight per stream: neither runs twice while the other waits
    assert all(order[k] != order[k + 1] for k in range(1, len(order) - 2)), order
    assert len(ran_on) == 1 and threading.get_ident() not in ran_on
    with pytest.raises(StopIteration):  # an exception comes back to the caller
        worker.call(lambda: next(iter([])))


def test_the_notice_says_runs_on_the_embedded_model_take_turns(tmp_path: Path) -> None:
    from nearnb.agents import load_agent

    remote = {"model": "llama-v3p3-70b-instruct", "model_provider": "fireworks"}
    a = load_agent(make_agent(tmp_path / "a", ECHO, defaults=remote))
    b = load_agent(make_agent(tmp_path / "b", ECHO, defaults=remote))
    notice = shared_model_notice([(a, None, None), (b, None, None)])
    assert "2 runs share the embedded model (no API key" in notice and "take turns" in notice
    assert shared_model_notice([(a, None, None)]) == ""  # one run shares nothing


@pytest.mark.local_model
def test_two_streams_on_the_embedded_model_move_at_once() -> None:
    from nearnb.providers.local import LocalProvider, load

    messages = [{"role": "user", "content": "Name three colours."}]
    times: dict[int, list[float]] = {}

    def read(i: int) -> None:
        stream = LocalProvider().stream(messages, model="", temperature=0, max_tokens=24)
        times[i] = [time.monotonic() for _chunk in stream]

    readers = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    a, b = times[0], times[1]
    assert len(a) > 5 and len(b) > 5
    assert b[0] < a[-1] and a[0] < b[-1]  # interleaved, not one after the other
    _first, pool = load()
    assert 2 <= pool.instances <= pool.limit  # one instance per concurrent stream


def test_columns_view_refuses_no_columns() -> None:
    with pytest.raises(ValueError, match="at least one column"):
        ColumnsRenderer([])


def test_nearnb_compare_is_the_function_even_after_the_magic_imported_it() -> None:
    """A submodule named ``compare`` would rebind ``nearnb.compare`` to itself."""
    import subprocess
    import sys

    code = (
        "import nearnb, nearnb.magic\n"
        "from nearnb.comparing import compare\n"  # what the magic's first use imports
        "assert nearnb.compare is compare, nearnb.compare\n"
        "assert nearnb.Comparison.__name__ == 'Comparison'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
