"""When a flood of small changes becomes one view update - for every event mix.

A model streams 100-1,000 deltas a second; a notebook frontend wants a few
updates a second, and jupyter_server silently *drops* iopub messages above
1,000 msg/s (which desyncs a widget for good). So views never render per
event: they mark the view dirty and render when the :class:`Throttle` says so.

Two budgets, both over any one-second window:

* **refreshes**: at most one per ``interval`` (default 1/15 s, floor 1/20 s),
  and live ones leave room for the final one, so never more than 20 a second;
* **wire messages** (``max_messages``, default 100): a refresh is allowed only
  when the messages sent in the last second plus the largest refresh seen so
  far (at least ``reserve``) still fit, so the refresh itself cannot push the
  window over. Renderers report what each refresh actually sent.

There is no fast lane. Boundaries (a message starts or ends, a tool step, the
run's end) used to render at once, so 300 short messages in a second gave
~600 refreshes; now they take the next free slot like any change - which is
at once when the view is idle, within ``interval`` otherwise. The final state
is never lost: the renderer's ``finish`` renders it regardless.

The clock is injectable (as in rich's ``Live``), so rate logic is tested
deterministically with a fake clock instead of ``sleep``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]

#: Default view refresh: 15 updates a second reads as smooth text and stays
#: far below every iopub limit (tqdm uses 10 Hz, rich 4-10 Hz).
DEFAULT_INTERVAL = 1 / 15
#: No interval below this is accepted: the issue's bound is 20 updates/s.
MIN_INTERVAL = 1 / 20
#: Refreshes allowed in any one-second window, the final one included.
MAX_REFRESHES = 20
#: Wire messages (widget comm messages) allowed in any one-second window.
MAX_MESSAGES = 100
#: Messages a refresh is assumed to cost before a bigger one has been seen.
REFRESH_RESERVE = 16
#: The window both budgets are counted over, in seconds.
WINDOW = 1.0


class Throttle:
    """Coalesce changes into refreshes that fit both budgets.

    Usage by a renderer (all calls under the renderer's lock)::

        if throttle.offer(boundary=...):   # a change happened
            cost = render(); throttle.flushed(cost=cost)
        ...
        if throttle.due():                 # later, from a timer
            cost = render(); throttle.flushed(cost=cost)
    """

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        clock: Clock = time.monotonic,
        *,
        max_messages: int = MAX_MESSAGES,
        max_refreshes: int = MAX_REFRESHES,
        reserve: int = REFRESH_RESERVE,
    ) -> None:
        if interval < MIN_INTERVAL:
            raise ValueError(f"interval {interval:.4f}s is below the {MIN_INTERVAL:.2f}s floor")
        self.interval = interval
        self.clock = clock
        self.max_messages = max_messages
        self.max_refreshes = max_refreshes
        self.reserve = reserve
        self.pending = False
        self.flushes = 0
        self.boundary_flushes = 0
        self.largest = 0  # the most messages one refresh has sent
        #: Messages the *next* refresh will send beyond a usual one (a sub-agent's
        #: panel to build): it waits until they fit too. The renderer sets it.
        self.extra = 0
        self._last: float | None = None
        self._sent: deque[tuple[float, int]] = deque()  # (time, messages), oldest first
        self._in_window = 0
        self._refreshes: deque[float] = deque()  # refresh times in the window
        self._not_before: float | None = None  # no refresh before this (see offer)

    # ------------------------------------------------------------------ asking

    def offer(self, *, boundary: bool = False) -> bool:
        """Note a change; True when the caller may render now.

        ``boundary`` no longer jumps the queue (it only counts in
        :attr:`boundary_flushes`); a change that may not render now stays
        pending until :meth:`due` (the caller's timer) says so.
        """
        self.pending = True
        # A stream offers a change per delta; between two refreshes the answer is
        # "not yet" until a time we already know. Budgets only free up with time
        # (sends push the time later, never earlier), so that time is a safe
        # lower bound; ``extra`` can shrink, so it is not cached then.
        if self._not_before is not None and not self.extra and self.clock() < self._not_before:
            return False
        wait = self.remaining()
        if wait > 0:
            self._not_before = self.clock() + wait
            return False
        return True

    def due(self) -> bool:
        """True when a pending change may be rendered now."""
        return self.pending and self.remaining() <= 0

    def remaining(self) -> float:
        """Seconds until a refresh fits both budgets (0 when it fits now)."""
        now = self.clock()
        self._expire(now)
        wait = 0.0 if self._last is None else self.interval - (now - self._last)
        if len(self._refreshes) >= self.max_refreshes - 1:  # keep one for the final render
            wait = max(wait, self._refreshes[-(self.max_refreshes - 1)] + WINDOW - now)
        allowed = max(0, self.max_messages - self.refresh_cost - self.extra)
        return max(0.0, wait, self._window_wait(now, allowed))

    @property
    def refresh_cost(self) -> int:
        """Messages set aside for one refresh: the largest seen, at least
        ``reserve`` - and at most the whole budget, so one huge refresh can
        delay the next by a second but never block it for good."""
        return min(max(self.reserve, self.largest), self.max_messages)

    def spare(self, *, keep: int | None = None) -> int:
        """Messages that may be sent now outside a refresh (e.g. closing old
        widgets), keeping room for ``keep`` (default: one refresh)."""
        keep = self.refresh_cost if keep is None else keep
        return max(0, self.max_messages - keep - self.sent_in_window())

    def delay_for(self, messages: int) -> float:
        """Seconds until ``messages`` more fit in the window (0 when they fit now)."""
        now = self.clock()
        self._expire(now)
        return self._window_wait(now, self.max_messages - messages)

    def sent_in_window(self) -> int:
        """Messages recorded in the last :data:`WINDOW` seconds."""
        self._expire(self.clock())
        return self._in_window

    # --------------------------------------------------------------- recording

    def flushed(self, *, boundary: bool = False, cost: int = 0) -> None:
        """Record that the view was rendered now, sending ``cost`` messages."""
        self._last = self.clock()
        self._refreshes.append(self._last)
        self.pending = False
        self._not_before = None
        self.flushes += 1
        if boundary:
            self.boundary_flushes += 1
        self.largest = max(self.largest, cost)
        self.spend(cost)

    def spend(self, cost: int) -> None:
        """Record messages sent outside a refresh (a Stop click, closing widgets)."""
        if cost > 0:
            self._sent.append((self.clock(), cost))
            self._in_window += cost

    # ---------------------------------------------------------------- internal

    def _expire(self, now: float) -> None:
        while self._sent and now - self._sent[0][0] >= WINDOW:
            self._in_window -= self._sent.popleft()[1]
        while self._refreshes and now - self._refreshes[0] >= WINDOW:
            self._refreshes.popleft()

    def _window_wait(self, now: float, allowed: int) -> float:
        """Seconds until at most ``allowed`` messages remain in the window."""
        excess = self._in_window - allowed
        if excess <= 0:
            return 0.0
        for at, cost in self._sent:  # oldest first: the window frees them in order
            excess -= cost
            if excess <= 0:
                return at + WINDOW - now
        return WINDOW  # cannot happen while allowed >= 0; be safe rather than spin
