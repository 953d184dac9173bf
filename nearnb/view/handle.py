"""Live view through a display handle: no widgets, no comms.

For frontends or executors without a widget manager (nbclient, papermill,
VS Code without widget support, a kernel whose comms are disabled): the cell
shows one Markdown output created with a ``display_id`` and replaced by
``update_display_data`` at a throttled rate. nbclient applies those updates
to the stored output, so the saved notebook holds the final state.

An update re-sends the whole bundle, so this view re-sends completed answers
on each refresh: cost O(n * refreshes) rather than the widget view's O(n).
To keep that modest the default refresh is 4/s and only the last
``TAIL_CHARS`` of the message being streamed are shown. nbval compares only
the first bundle of a display (it ignores updates); use ``plain`` for nbval.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from .base import Renderer
from .bundle import RunInfo, block_plain, plain_header, run_markdown
from .present import ViewModel, present
from .sink import IPythonSink, Sink
from .throttle import Clock

#: How much of the streaming message a live update carries.
TAIL_CHARS = 2000
#: Display updates re-send everything: refresh less often than widgets.
HANDLE_INTERVAL = 0.25


class HandleRenderer(Renderer):
    """Markdown output updated in place by display id; static at the end."""

    def __init__(
        self,
        info: RunInfo,
        *,
        sink: Sink | None = None,
        interval: float = HANDLE_INTERVAL,
        clock: Clock | None = None,
        autoflush: bool = True,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(info, interval=interval, clock=clock, autoflush=autoflush, on_stop=on_stop)
        self.sink = sink or IPythonSink()
        self.display_id = f"nearnb-{uuid.uuid4().hex}"
        self._last: dict[str, Any] | None = None
        data = self.live_bundle()
        self.sink.show(data, {}, display_id=self.display_id)
        self._last = data
        self.throttle.flushed(boundary=True)

    def live_bundle(self) -> dict[str, str]:
        """The bundle shown while the run is live: the final bundle's Markdown
        plus the live counter, the streaming tail and running tool steps; the
        sub-agents' runs quoted under their steps, live too."""
        md = run_markdown(
            self.state,
            self.info,
            self.tree,
            live=True,
            stop_requested=self.stop_requested,
            tail_chars=TAIL_CHARS,
        )
        vm = present(self.state, self.info, stop_requested=self.stop_requested)
        plain = [plain_header(vm), vm.counter.line]
        plain += [block_plain(block, self.tree) for block in vm.blocks]
        tail = _tail(vm)
        if tail:
            plain.append(tail)
        plain += [block_plain(step, self.tree) for step in vm.live_steps]
        if vm.error is not None and vm.error.message:
            plain.append(f"error: {vm.error.message}")
        return {"text/markdown": md, "text/plain": "\n\n".join(plain)}

    def _render(self, *, final: bool = False) -> int:
        if final:
            return 0  # the final bundle replaces the live one in _finalize
        data = self.live_bundle()
        if data != self._last:
            self.sink.update(data, {}, display_id=self.display_id)
            self._last = data
        return 0  # a display update, not a comm message

    def _finalize(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        self.sink.update(data, metadata, display_id=self.display_id)


def _tail(vm: ViewModel) -> str:
    """The last :data:`TAIL_CHARS` of the live message (bounded re-sends)."""
    if vm.live is None:
        return ""
    text = vm.live.text
    return "…" + text[-TAIL_CHARS:] if len(text) > TAIL_CHARS else text
