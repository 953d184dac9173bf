"""Agents side by side: ``nearnb.compare([...], message)`` and ``%%near_agent A B``.

(Not ``nearnb/compare.py``: a submodule named like the function would rebind the
package attribute ``nearnb.compare`` to itself the first time it is imported.)

Prototyping an agent means comparing variants: two agents, or one agent on
two models. ``compare`` starts every variant on the same message at the same
time - each a run of its own, in a thread of its own - and shows them in
columns of one cell output (:mod:`nearnb.view.columns`): each column has its
own header, counter, streaming text, status and Stop, and stopping one leaves
the others running. The cell's value is a :class:`Comparison`: the runs'
:class:`~nearnb.result.RunResult` in column order and a compact table (status,
deltas, characters, time to first delta, deltas/s), computed from each run's
own event log.

Columns are the product of ``agents`` x ``model`` values x ``provider``
values; a comma list counts as several values, so
``compare("my-agent", "Hi", model="local::smollm2,openai::gpt-4o-mini")`` is
two columns. Runs that end up on the embedded model share it fairly, token
by token (:mod:`nearnb.providers.turns`), and the view says so.
"""

from __future__ import annotations

import html
import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .reducer import reduce
from .view import choose_display
from .view.bundle import md_escape

if TYPE_CHECKING:
    from .agents import Agent
    from .events import Event
    from .result import RunResult
    from .runhandle import RunHandle
    from .store import Store
    from .view.columns import ColumnsRenderer
    from .view.present import RunInfo

#: More columns than this is almost surely a mistake (and unreadable).
MAX_COLUMNS = 8

__all__ = [
    "MAX_COLUMNS",
    "Comparison",
    "ComparisonRun",
    "RunStats",
    "compare",
    "plan_columns",
]


@dataclass(frozen=True)
class RunStats:
    """One column's row of the table, computed from its run's events."""

    label: str
    status: str
    deltas: int
    chars: int
    #: Seconds from the run's first event to its first delta (None: no delta).
    first_delta: float | None
    deltas_per_second: float

    @classmethod
    def of(cls, label: str, result: RunResult) -> RunStats:
        state = reduce(result.events)
        first = None
        if state.first_delta_at is not None and state.first_at is not None:
            first = max(0.0, state.first_delta_at - state.first_at)
        return cls(
            label=label,
            status=result.status,
            deltas=state.deltas,
            chars=state.chars,
            first_delta=first,
            deltas_per_second=state.deltas_per_second(),
        )

    def cells(self) -> list[str]:
        first = "–" if self.first_delta is None else f"{self.first_delta:.2f} s"
        return [
            self.label,
            self.status,
            f"{self.deltas:,}",
            f"{self.chars:,}",
            first,
            f"{self.deltas_per_second:.1f}",
        ]


HEADERS = ["run", "status", "deltas", "characters", "first delta", "deltas/s"]


@dataclass
class Comparison:
    """What ``compare`` (and ``%%near_agent A B``) returns: the results, in column order."""

    results: list[RunResult]
    labels: list[str]
    message: str | None = None
    notice: str | None = field(default=None, repr=False)

    @property
    def stats(self) -> list[RunStats]:
        """One row per column (recomputed from the events: results are the truth)."""
        return [RunStats.of(label, r) for label, r in zip(self.labels, self.results, strict=True)]

    def table(self) -> list[dict[str, Any]]:
        """The table as rows of plain values (for pandas: ``pd.DataFrame(c.table())``)."""
        return [
            {
                "run": s.label,
                "status": s.status,
                "deltas": s.deltas,
                "characters": s.chars,
                "first_delta_s": s.first_delta,
                "deltas_per_s": s.deltas_per_second,
            }
            for s in self.stats
        ]

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Any:
        return iter(self.results)

    def __getitem__(self, index: int) -> RunResult:
        return self.results[index]

    def _repr_markdown_(self) -> str:
        rows = [HEADERS, ["---"] * len(HEADERS)]
        rows += [[md_escape(c) for c in s.cells()] for s in self.stats]
        return "\n".join("| " + " | ".join(row) + " |" for row in rows)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in s.cells()) + "</tr>"
            for s in self.stats
        )
        return (
            f'<table class="nearnb-comparison-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )

    def __repr__(self) -> str:
        rows = [HEADERS, *(s.cells() for s in self.stats)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
        return f"<Comparison of {len(self.results)} runs>\n" + "\n".join(
            line.rstrip() for line in lines
        )


def _values(value: str | Sequence[str] | None, what: str) -> list[str | None]:
    """A comma list or a sequence -> its values; None -> [None] (the agent's default)."""
    if value is None:
        return [None]
    items = value.split(",") if isinstance(value, str) else list(value)
    out = [str(item).strip() for item in items]
    if not out or any(not item for item in out):
        raise ValueError(f"{what}={value!r}: an empty value in the list")
    return list(out)


def plan_columns(
    agents: Any, model: str | Sequence[str] | None, provider: str | Sequence[str] | None
) -> list[tuple[Any, str | None, str | None]]:
    """``(agent, model, provider)`` per column: agents x models x providers, in that order."""
    if isinstance(agents, str | os.PathLike) or not isinstance(agents, Sequence):
        agents = [agents]
    if not agents:
        raise ValueError("compare needs at least one agent")
    plan = list(
        itertools.product(list(agents), _values(model, "model"), _values(provider, "provider"))
    )
    if len(plan) > MAX_COLUMNS:
        raise ValueError(f"{len(plan)} columns asked for; at most {MAX_COLUMNS} side by side")
    return plan


def _label(agent: Agent, model: str | None, provider: str | None) -> str:
    return " · ".join(p for p in (agent.name, provider, model) if p)


def shared_model_notice(plan: list[tuple[Agent, str | None, str | None]]) -> str:
    """What to say when several columns run on the embedded model (they take turns)."""
    from .providers import resolve

    local, fallback = 0, False
    for agent, model, provider in plan:
        d = agent.defaults
        try:
            resolved = resolve(model or d.model or None, provider or d.model_provider or None)
        except Exception:  # the run itself reports it, in its column
            continue
        if resolved.label.startswith("local::"):
            local += 1
            fallback = fallback or bool(resolved.notice)
    if local < 2:
        return ""
    why = " (no API key for the models asked for)" if fallback else ""
    return (
        f"{local} runs share the embedded model{why}: they take turns on it token by token, "
        "so every column moves at once, each at a fraction of its speed alone."
    )


def compare(
    agents: Any,
    message: str | None = None,
    *,
    model: str | Sequence[str] | None = None,
    provider: str | Sequence[str] | None = None,
    display: str | None = None,
    wait: bool = True,
    store: Store | None = None,
    env_vars: dict[str, str] | None = None,
    **options: Any,
) -> Comparison | ComparisonRun:
    """Run several agents (or one agent on several models) on ``message`` side by side.

    ``agents``: one agent or a list (folder paths, names under the agents
    dirs, or :class:`~nearnb.agents.Agent`); ``model`` / ``provider``: one
    value, a comma list or a list - every combination is a column. Each run
    gets a new thread. Blocks until every run has ended and returns the
    :class:`Comparison`; a kernel interrupt (or Ctrl-C) stops them all, a
    column's Stop stops that run only. With ``wait=False`` the
    :class:`ComparisonRun` is returned at once (``.stop(i)``, ``.wait()``).
    Mistakes (no such agent, bad display, too many columns) raise before
    anything runs. ``options`` go to the view (``sink``, ``interval``, ``clock``).
    """
    from .agents import Agent, load_agent
    from .runs import start_run

    mode = choose_display(display)
    plan = plan_columns(agents, model, provider)
    # Every agent is validated before any run starts: a typo loses nothing.
    loaded = [(a if isinstance(a, Agent) else load_agent(a), m, p) for a, m, p in plan]
    handles: list[RunHandle] = []
    try:
        for agent, m, p in loaded:
            handles.append(
                start_run(agent, message, model=m, provider=p, store=store, env_vars=env_vars)
            )
    except BaseException:
        for handle in handles:
            handle.cancel("another column failed to start")
        raise
    notice = shared_model_notice(loaded)
    running = ComparisonRun(handles, loaded, message, mode, notice, not wait, options)
    return running.wait() if wait else running


class ComparisonRun:
    """Columns in progress: the runs' handles and their view.

    ``stop(i)`` is column ``i``'s Stop button; ``wait()`` blocks until every run
    has ended and returns the :class:`Comparison`. Without a waiter the view
    finishes itself when the last run ends (``compare(..., wait=False)``).
    """

    def __init__(
        self,
        handles: list[RunHandle],
        plan: list[tuple[Agent, str | None, str | None]],
        message: str | None,
        mode: str,
        notice: str,
        finish_alone: bool,
        options: dict[str, Any] | None = None,
    ) -> None:
        from .api import Follow
        from .view.present import RunInfo  # noqa: F811 - at run time

        self.handles, self.message, self.notice = handles, message, notice
        self.labels = [_label(a, m, p) for a, m, p in plan]
        infos = [
            RunInfo(
                agent_name=agent.name,
                model=" · ".join(x for x in (p, m) if x),
                show_streaming_message=bool(agent.show_streaming_message),
            )
            for agent, m, p in plan
        ]
        try:
            stops = [h.cancel for h in handles]
            self.view = open_columns(mode, infos, stops=stops, notice=notice, **(options or {}))
        except BaseException:
            for handle in handles:
                handle.cancel("view failed")
            raise
        self._followed: list[list[RunHandle]] = [[] for _ in handles]
        self._ended = 0
        self._lock = threading.Lock()
        for i, handle in enumerate(handles):
            follow = Follow(handle, self.view.column(i), self._followed[i])
            handle.subscribe(self._finishing(follow) if finish_alone else follow, replay=True)

    @property
    def done(self) -> bool:
        return all(h.done for h in self.handles)

    def stop(self, index: int) -> None:
        """Column ``index``'s Stop: cancel that run only."""
        self.view.stop_column(index)

    def wait(self) -> Comparison:
        """Block until every run has ended; an interrupt stops them all."""
        results: list[RunResult] = []
        try:
            try:
                while not self.done:
                    time.sleep(0.05)
            except KeyboardInterrupt:
                for handle in self.handles:
                    handle.cancel("interrupted")
            for handle in self.handles:
                handle.wait()
            results = self._results()
        finally:
            self.view.finish(results or None)
        return Comparison(results, self.labels, self.message, self.notice or None)

    def _results(self) -> list[RunResult]:
        from .api import _drained

        return [_drained(h, f) for h, f in zip(self.handles, self._followed, strict=True)]

    def _finishing(self, follow: Callable[[Event], None]) -> Callable[[Event], None]:
        """``follow``, and once the last run's ``done`` is fed, the view's finish."""

        def feed(event: Event) -> None:
            follow(event)
            if event.event != "done":
                return
            with self._lock:
                self._ended += 1
                last = self._ended == len(self.handles)
            if last:  # on that run's feeding thread: updates go by display id
                self.view.finish(self._results())

        return feed

    def __repr__(self) -> str:
        states = ", ".join(
            f"{label}: {h.state.status}" for label, h in zip(self.labels, self.handles, strict=True)
        )
        return f"<ComparisonRun {states}>"


def open_columns(
    mode: str,
    infos: Sequence[RunInfo],
    *,
    stops: Sequence[Callable[[], None] | None] = (),
    **options: Any,
) -> ColumnsRenderer:
    """The columns view for a display mode (see :func:`nearnb.view.choose_display`);
    call on the cell's thread (notebook modes display their output at once)."""
    from .view.columns import ColumnsRenderer, MarkdownColumns  # noqa: F811 - at run time
    from .view.sink import TextSink

    if mode == "widget":
        from .view.columns_widget import WidgetColumns

        return WidgetColumns(infos, stops=stops, **options)
    if mode == "handle":
        return MarkdownColumns(infos, stops=stops, live=True, **options)
    if mode == "plain":
        return MarkdownColumns(infos, stops=stops, live=False, **options)
    if mode == "terminal":
        options.setdefault("sink", TextSink())
        return MarkdownColumns(infos, stops=stops, live=False, **options)
    return ColumnsRenderer(infos, stops=stops, **options)
