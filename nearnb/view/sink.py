"""Where a renderer's outputs go: IPython's display machinery, or a recorder.

Renderers never call ``IPython.display`` directly; they talk to a sink. That
keeps them testable without a kernel (tests pass a :class:`RecordingSink`)
and keeps the one subtle rule in one place: outputs are shown with a
``display_id`` and later *updated* by id, because an update is routed by id,
not by the parent message - so it lands in the right cell even when it is
sent from the run's worker thread or after the cell has finished (ipykernel
7 sends thread output to the *latest* cell, ipython/ipykernel#1451).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

Bundle = dict[str, Any]


class Sink(Protocol):
    """Output operations a renderer needs."""

    def show(self, data: Bundle, metadata: Bundle, *, display_id: str | None = None) -> None:
        """Add an output to the current cell (optionally updatable by id)."""

    def update(self, data: Bundle, metadata: Bundle, *, display_id: str) -> None:
        """Replace the output shown earlier under ``display_id``."""


class IPythonSink:
    """Display through IPython (a kernel, or the terminal IPython shell)."""

    def show(self, data: Bundle, metadata: Bundle, *, display_id: str | None = None) -> None:
        from IPython.display import display

        if display_id is None:
            display(data, metadata=metadata, raw=True)
        else:
            display(data, metadata=metadata, raw=True, display_id=display_id)

    def update(self, data: Bundle, metadata: Bundle, *, display_id: str) -> None:
        from IPython.display import update_display

        update_display(data, metadata=metadata, raw=True, display_id=display_id)


@dataclass
class TextSink:
    """Outside IPython: print ``text/plain`` once; updates are not possible."""

    stream: TextIO = field(default_factory=lambda: sys.stdout)

    def show(self, data: Bundle, metadata: Bundle, *, display_id: str | None = None) -> None:
        text = data.get("text/plain")
        if text:
            print(text, file=self.stream, flush=True)

    def update(self, data: Bundle, metadata: Bundle, *, display_id: str) -> None:
        self.show(data, metadata)


@dataclass
class RecordingSink:
    """Keeps every show/update, and the current output per display id (tests)."""

    calls: list[tuple[str, Bundle, Bundle, str | None]] = field(default_factory=list)
    outputs: dict[str, tuple[Bundle, Bundle]] = field(default_factory=dict)

    def show(self, data: Bundle, metadata: Bundle, *, display_id: str | None = None) -> None:
        self.calls.append(("show", data, metadata, display_id))
        self.outputs[display_id or f"anonymous-{len(self.calls)}"] = (data, metadata)

    def update(self, data: Bundle, metadata: Bundle, *, display_id: str) -> None:
        self.calls.append(("update", data, metadata, display_id))
        if display_id in self.outputs:
            self.outputs[display_id] = (data, metadata)

    @property
    def final(self) -> list[tuple[Bundle, Bundle]]:
        """What a saved notebook would hold: each output in its last state."""
        return list(self.outputs.values())


def default_sink() -> Sink:
    """IPython's display when IPython is running, plain printing otherwise."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return TextSink()
    return IPythonSink() if get_ipython() is not None else TextSink()
