"""Final result only: for nbval, CI, papermill and plain Python.

Nothing is shown while the run streams; when it ends the static bundle is
displayed once. A single ``display_data`` (no updates, no comms) is the one
output shape that nbval compares faithfully and every viewer renders.

With ``placeholder=True`` (runs started without waiting, whose end comes
after the cell has returned) a one-line placeholder is shown at once with a
display id and replaced at the end - an update by id is the only way to
reach the right cell from the run's worker thread later.
"""

from __future__ import annotations

import uuid
from typing import Any

from .base import Renderer
from .bundle import RunInfo, plain_header
from .present import present
from .sink import Sink, default_sink


class PlainRenderer(Renderer):
    """Shows the static bundle when the run finishes, nothing before."""

    def __init__(
        self, info: RunInfo, *, sink: Sink | None = None, placeholder: bool = False, **kwargs: Any
    ) -> None:
        kwargs.setdefault("autoflush", False)  # nothing to refresh while live
        super().__init__(info, **kwargs)
        self.sink = sink or default_sink()
        self.display_id: str | None = None
        if placeholder:
            self.display_id = f"nearnb-{uuid.uuid4().hex}"
            text = plain_header(present(self.state, info)) + " (running…)"
            self.sink.show({"text/plain": text}, {}, display_id=self.display_id)

    def _render(self, *, final: bool = False) -> int:
        """Nothing is live in plain mode."""
        return 0

    def _finalize(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        if self.display_id is None:
            self.sink.show(data, metadata)
        else:
            self.sink.update(data, metadata, display_id=self.display_id)
