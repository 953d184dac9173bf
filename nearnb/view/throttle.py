"""When a flood of small changes becomes one view update.

A model streams 100-1,000 deltas a second; a notebook frontend wants a few
updates a second, and jupyter_server silently *drops* iopub messages above
1,000 msg/s (which desyncs a widget for good). So views never render per
event: they mark the view dirty and render when the :class:`Throttle` says so
- at most once per ``interval``, except at boundaries (a message starts or
ends, the run ends, an error) which render at once because that is where a
reader's eye is.

The clock is injectable (as in rich's ``Live``), so rate logic is tested
deterministically with a fake clock instead of ``sleep``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]

#: Default view refresh: 15 updates a second reads as smooth text and stays
#: far below every iopub limit (tqdm uses 10 Hz, rich 4-10 Hz).
DEFAULT_INTERVAL = 1 / 15
#: No interval below this is accepted: the issue's bound is ~20 updates/s.
MIN_INTERVAL = 1 / 20


class Throttle:
    """Coalesce changes into at most one flush per ``interval`` seconds.

    Usage by a renderer (all calls under the renderer's lock)::

        if throttle.offer(boundary=...):   # a change happened
            render(); throttle.flushed()
        ...
        if throttle.due():                 # later, from a timer
            render(); throttle.flushed()
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL, clock: Clock = time.monotonic) -> None:
        if interval < MIN_INTERVAL:
            raise ValueError(f"interval {interval:.4f}s is below the {MIN_INTERVAL:.2f}s floor")
        self.interval = interval
        self.clock = clock
        self.pending = False
        self.flushes = 0
        self.boundary_flushes = 0
        self._last: float | None = None

    def offer(self, *, boundary: bool = False) -> bool:
        """Note a change; True when the caller should render now.

        Boundaries always render at once; other changes render when the last
        render is at least ``interval`` old, otherwise they stay pending
        until :meth:`due` (the caller's timer) or the next boundary.
        """
        self.pending = True
        if boundary:
            return True
        return self._last is None or self.clock() - self._last >= self.interval

    def due(self) -> bool:
        """True when a pending change has waited long enough to render."""
        return self.pending and (self._last is None or self.clock() - self._last >= self.interval)

    def remaining(self) -> float:
        """Seconds until a pending change is due (0 when due now)."""
        if self._last is None:
            return 0.0
        return max(0.0, self.interval - (self.clock() - self._last))

    def flushed(self, *, boundary: bool = False) -> None:
        """Record that the view was rendered now; nothing is pending."""
        self._last = self.clock()
        self.pending = False
        self.flushes += 1
        if boundary:
            self.boundary_flushes += 1
