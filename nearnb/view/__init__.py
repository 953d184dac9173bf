"""Views of a run: one renderer contract, four ways to show it (or none).

Every view is fed the same thing - the run's ordered :class:`~nearnb.events.Event`
stream - and keeps its own :class:`~nearnb.reducer.RunState`. So a live local
run, a hub's SSE stream and a replayed event list all render the same way.
What a view shows is decided in one place, :func:`~nearnb.view.present.present`
(state -> :class:`~nearnb.view.present.ViewModel`: header, counter line,
status, answer and tool-step blocks, the live message, errors); each renderer
only maps that onto its medium. Refreshes are paced by :mod:`.throttle`: at
most 20 a second and at most 100 widget comm messages in any second, whatever
the mix of events.

The one entry point for any event source::

    from nearnb.view import open_view

    renderer = open_view(
        "widget",                        # "widget" | "handle" | "plain" | "terminal" | "none";
                                         # None = $NEARNB_DISPLAY, else auto (see choose_display)
        agent_name="streaming-example",
        show_streaming_message=True,     # the agent's details.agent.show_streaming_message
        model="local::smollm2",          # a label until the run's own events name the model
        on_stop=handle.cancel,           # optional: shows a working Stop button (widget view)
    )
    for event in events:                 # any thread; events may repeat (seq dedups)
        renderer(event)
    renderer.finish(result_or_state)     # RunResult, RunState or None; idempotent

``open_view`` must be called on the cell's own thread (it displays the live
output there); after that, ``renderer(event)`` and ``finish`` may be called
from any thread (a run's worker, or a view queue thread of its own). When a
notebook view finishes, its live output is replaced by a static bundle
(``text/markdown`` + ``text/plain``, run metadata under ``metadata["nearnb"]``)
so saved notebooks show the answer.

Modes:

``widget``   ipywidgets, live, with a Stop button (:mod:`.widget`)
``handle``   a display handle updated in place, no comms (:mod:`.handle`)
``plain``    the static result only, at the end (:mod:`.plain`)
``terminal`` text streamed to stdout (:mod:`.terminal`, the CLI's ``--stream``)
``none``     nothing shown
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, Protocol

from ..events import Event
from .bundle import RunInfo

#: Display modes; :func:`choose_display` also accepts ``"auto"`` (= ``None``).
DISPLAY_MODES = ("widget", "handle", "plain", "terminal", "none")
DISPLAY_ENV = "NEARNB_DISPLAY"


class ViewRenderer(Protocol):
    """What :func:`open_view` returns."""

    def __call__(self, event: Event) -> None: ...

    def finish(self, result: Any = None) -> None: ...


class NullRenderer:
    """``display="none"``: consumes events, shows nothing."""

    def __call__(self, event: Event) -> None:
        return None

    def finish(self, result: Any = None) -> None:
        return None


def in_kernel() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel attached).

    Only then can a widget or display update reach a frontend. Whether a
    *browser* is attached cannot be known from the kernel (nbclient looks the
    same), which is why every view leaves a static bundle when it ends.
    """
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def choose_display(display: str | None = None) -> str:
    """The display mode: ``display``, else ``$NEARNB_DISPLAY``, else automatic.

    ``None``, ``""`` and ``"auto"`` ask for automatic: ``widget`` in a
    Jupyter kernel, ``terminal`` when stdout is a TTY, else ``plain``.
    """
    for source, value in (("display", display), (DISPLAY_ENV, os.environ.get(DISPLAY_ENV))):
        mode = (value or "").strip().lower()
        if mode in ("", "auto"):
            continue
        if mode not in DISPLAY_MODES:
            raise ValueError(f"{source}={value!r}: expected one of {', '.join(DISPLAY_MODES)}")
        return mode
    if in_kernel():
        return "widget"
    return "terminal" if getattr(sys.stdout, "isatty", lambda: False)() else "plain"


def open_view(
    display: str | None = None,
    *,
    agent_name: str = "",
    show_streaming_message: bool = True,
    model: str = "",
    on_stop: Callable[[], None] | None = None,
    placeholder: bool = False,
    **options: Any,
) -> ViewRenderer:
    """Create (and, for notebook modes, display) a renderer for one run.

    ``placeholder`` (plain mode) shows a line at once and replaces it at the
    end - needed when the run outlives the cell. ``options`` go to the
    renderer class (``sink``, ``interval``, ``clock``, ``autoflush``; for
    ``terminal``: ``stream``, ``show_text``, ``status``, ``summary``).
    """
    mode = choose_display(display)
    info = RunInfo(
        agent_name=agent_name, model=model, show_streaming_message=show_streaming_message
    )
    if mode == "widget":
        from .widget import WidgetRenderer

        return WidgetRenderer(info, on_stop=on_stop, **options)
    if mode == "handle":
        from .handle import HandleRenderer

        return HandleRenderer(info, on_stop=on_stop, **options)
    if mode == "plain":
        from .plain import PlainRenderer

        return PlainRenderer(info, on_stop=on_stop, placeholder=placeholder, **options)
    if mode == "terminal":
        from .terminal import TerminalRenderer

        return TerminalRenderer(show_streaming_message=show_streaming_message, **options)
    return NullRenderer()


__all__ = ["DISPLAY_MODES", "RunInfo", "ViewRenderer", "choose_display", "in_kernel", "open_view"]
