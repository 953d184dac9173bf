"""The public notebook API: run an agent and show it; render any event source.

``run_agent(..., display=...)`` is :func:`nearnb.runs.start_run` plus a view:
it opens the view in the calling cell, subscribes it to the run (past events
replayed first, so nothing is missed) and waits. ``render`` does the same for
an existing :class:`~nearnb.runs.RunHandle` or any iterable of events (a
replay, an SSE client), so a run is shown the same way wherever it comes from.
The magics in :mod:`nearnb.magic` only parse arguments and call these.

``display`` is ``"widget" | "handle" | "plain" | "terminal" | "none"``; None
means ``$NEARNB_DISPLAY``, else widget inside a Jupyter kernel, terminal on a
TTY, plain otherwise (see :func:`nearnb.view.choose_display`).

Waiting: the run executes on a worker thread while the caller blocks in
``handle.wait()``; a kernel interrupt (or Ctrl-C) there cancels the run and
still returns its result, and the widget's Stop button cancels it from the
frontend (see :mod:`nearnb.view.widget` for how the click gets through while
the cell is busy). With ``wait=False`` the handle is returned at once and the
view keeps streaming; it finalizes itself when the run ends.

Sub-agents: when the parent's stream carries a step naming a child run
(``env.run_agent``), the view subscribes to that child's own
:class:`~nearnb.runs.RunHandle` (``handle.child(run_id)``) and feeds its
events into the same renderer, which nests the child under the step - and
so on for the child's children. The child's Stop cancels the child only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, overload

from .events import Event
from .reducer import RunState, child_ref
from .view import choose_display, open_view

if TYPE_CHECKING:
    from .agents import Agent
    from .runs import RunHandle, RunResult
    from .store import Store


@overload
def run_agent(
    agent: str | os.PathLike[str] | Agent,
    message: str | None = ...,
    *,
    thread_id: str | None = ...,
    model: str | None = ...,
    provider: str | None = ...,
    display: str | None = ...,
    wait: Literal[True] = ...,
    store: Store | None = ...,
    env_vars: dict[str, str] | None = ...,
) -> RunResult: ...


@overload
def run_agent(
    agent: str | os.PathLike[str] | Agent,
    message: str | None = ...,
    *,
    thread_id: str | None = ...,
    model: str | None = ...,
    provider: str | None = ...,
    display: str | None = ...,
    wait: Literal[False],
    store: Store | None = ...,
    env_vars: dict[str, str] | None = ...,
) -> RunHandle: ...


def run_agent(
    agent: str | os.PathLike[str] | Agent,
    message: str | None = None,
    *,
    thread_id: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    display: str | None = None,
    wait: bool = True,
    store: Store | None = None,
    env_vars: dict[str, str] | None = None,
) -> RunResult | RunHandle:
    """Run ``agent`` on ``message`` and show it live; return the :class:`RunResult`.

    ``agent`` is a folder path or the name of a folder under the configured
    agents directories. ``thread_id`` continues a conversation. With
    ``wait=False`` the :class:`RunHandle` is returned at once (``.wait()``
    gives the result later). Errors that prevent the run from starting (no
    such agent, bad metadata, unknown thread, bad ``display``) raise before
    anything is shown; errors inside the agent end the run ``failed`` and are
    shown in the view.
    """
    from .runs import start_run

    mode = choose_display(display)  # a typo fails before the run starts
    handle = start_run(
        agent,
        message,
        thread_id=thread_id,
        model=model,
        provider=provider,
        store=store,
        env_vars=env_vars,
    )
    return render(handle, display=mode, model=model or "", wait=wait)


def render(
    source: RunHandle | Iterable[Event],
    display: str | None = None,
    *,
    agent_name: str | None = None,
    show_streaming_message: bool | None = None,
    model: str = "",
    wait: bool = True,
    on_stop: Any = None,
    **options: Any,
) -> Any:
    """Show a run from any source with the chosen view.

    * a :class:`RunHandle`: returns its :class:`RunResult` (or the handle
      itself with ``wait=False``); the agent's name and
      ``show_streaming_message`` come from the handle unless given;
    * an iterable of :class:`Event` (a replay, an SSE stream): consumed on
      this thread, returns the folded :class:`RunState`; ``on_stop`` (e.g. a
      hub cancel call) backs the Stop button and a KeyboardInterrupt.

    ``options`` go to the view (:func:`nearnb.view.open_view`: ``sink``,
    ``interval``, ``clock`` ...).
    """
    mode = choose_display(display)
    if hasattr(source, "subscribe") and hasattr(source, "wait"):
        return _render_handle(
            source, mode, agent_name, show_streaming_message, model, wait, options
        )
    renderer = open_view(
        mode,
        agent_name=agent_name or "",
        show_streaming_message=True if show_streaming_message is None else show_streaming_message,
        model=model,
        on_stop=on_stop,
        **options,
    )
    state = RunState()
    try:
        for event in source:
            state.apply(event)
            renderer(event)
    except KeyboardInterrupt:
        if on_stop is None:
            raise
        on_stop()
    finally:
        renderer.finish(None)
    return state


def _render_handle(
    handle: RunHandle,
    mode: str,
    agent_name: str | None,
    show_streaming_message: bool | None,
    model: str,
    wait: bool,
    options: dict[str, Any],
) -> RunResult | RunHandle:
    agent = handle.agent
    if show_streaming_message is None:
        show_streaming_message = bool(getattr(agent, "show_streaming_message", True))
    try:
        renderer = open_view(
            mode,
            agent_name=agent_name or getattr(agent, "name", ""),
            show_streaming_message=show_streaming_message,
            model=model,
            on_stop=handle.cancel,
            placeholder=not wait,
            **options,
        )
    except BaseException:  # no view, no waiter: do not leave the run going unseen
        handle.cancel("view failed")
        raise
    followed: list[RunHandle] = []
    feed = Follow(handle, renderer, followed)
    if not wait:

        def follow(event: Event) -> None:
            feed(event)
            if event.event == "done":  # on the worker thread: updates go by display id
                renderer.finish(_drained(handle, followed))

        handle.subscribe(follow, replay=True)
        return handle
    handle.subscribe(feed, replay=True)
    result = None
    try:
        result = handle.wait()
        _drained(handle, followed)
    finally:
        renderer.finish(result)
    return result


class Follow:
    """Feeds a renderer one run's events and, whenever a step of that run names a
    child run, subscribes the renderer to the child too (recursively)."""

    def __init__(self, handle: RunHandle, renderer: Any, followed: list[RunHandle]) -> None:
        self.handle, self.renderer, self.followed = handle, renderer, followed

    def __call__(self, event: Event) -> None:
        self.renderer(event)
        if event.event == "thread.run.step.created" and isinstance(event.data, dict):
            ref = child_ref(event.data)
            child = self.handle.child(ref.run_id) if ref is not None else None
            if child is not None and child not in self.followed:
                self.followed.append(child)
                if hasattr(self.renderer, "follow_child"):
                    self.renderer.follow_child(
                        child.run_id,
                        stop=child.cancel,  # this child only; its children follow it
                        agent_name=child.agent.name,
                        show_streaming_message=bool(child.agent.show_streaming_message),
                    )
                child.subscribe(Follow(child, self.renderer, self.followed), replay=True)


def _drained(handle: RunHandle, followed: list[RunHandle], grace: float = 10.0) -> RunResult:
    """Wait for the followed children's views to take their last events (they ended
    before the parent did); the parent's result, with its children's."""
    for child in list(followed):
        child.wait(grace)
    return handle.result()
