"""What attach does beyond reading one hub: fail over to the next hub, cancel the run it follows.

* **Failover** — ``attach([url_a, url_b])``: the hubs share one store and one
  bus (:mod:`nearnb.bus`), so any of them serves any run with the same event
  numbers. When a connection fails or drops, the next URL is tried, with
  ``Last-Event-ID`` as always, so nothing is lost or shown twice.
* **Cancel** — the view's Stop asks the hub to cancel the run
  (``POST .../runs/{id}/cancel``; the hub forwards the request to whichever
  process executes it) and keeps following it, so the view shows the run end
  ``cancelled``: Stop means the same on an attached view as on a live one.
  Ctrl-C (a kernel interrupt) only stops watching, unless
  ``attach(url, cancel=True)`` (``nearnb attach --cancel``): a person who
  interrupts a cell has not necessarily asked to end someone else's run.
  ``cancel=False`` makes Stop only stop watching too. A hub that refuses
  (an old hub, a NEAR hub) leaves the plain Stop: stop watching.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any

import httpx

from .attach_errors import stream_url, timed_url

log = logging.getLogger("nearnb.hub.client")

CANCEL_TIMEOUT = 10.0


def stream_urls(
    url: str | Sequence[str], thread_id: str | None, run_id: str | None
) -> tuple[list[str], str, str]:
    """Every hub's stream URL for the run, and its ids (the first URL names them)."""
    given = list(url) if isinstance(url, list | tuple) else [url]
    if not given or not all(isinstance(u, str) for u in given):
        raise ValueError("url must be a hub or stream URL, or a non-empty list of them")
    first, tid, rid = stream_url(given[0], thread_id, run_id)
    return [first, *(stream_url(u, tid, rid)[0] for u in given[1:])], tid, rid


class Remote:
    """One attach's hubs and its Stop: see the module docstring."""

    def __init__(
        self, session: Any, urls: list[str], *, token: str | None, cancel: bool | None = None
    ) -> None:
        self.session, self.urls, self.token = session, urls, token
        self.cancel = cancel is True  # Ctrl-C cancels only when asked to
        self.index = 0
        self.cancel_sent = False
        if cancel is not False:
            session.on_stop = self.stop

    def failover(self) -> bool:
        """Read from the next hub from now on; False when there is no other."""
        if len(self.urls) < 2:
            return False
        self.index = (self.index + 1) % len(self.urls)
        url = self.urls[self.index]
        log.info("nearnb: attach fails over to %s", url)
        self.session.url = url
        self.session.request_url = timed_url(url)
        return True

    def request_cancel(self) -> bool:
        """Ask a hub (this one, else the next) to cancel the run; True once one accepted.

        A run that already ended (400) counts as accepted: its end is on its way.
        """
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for turn in range(len(self.urls)):
            if turn:
                self.failover()
            url = self.session.run_url + "/cancel"
            try:
                response = httpx.post(url, headers=headers, timeout=CANCEL_TIMEOUT)
            except httpx.TransportError as exc:
                log.warning("nearnb: cancel request to %s failed: %s", url, exc)
                continue
            if response.status_code in (200, 400):
                self.cancel_sent = True
                return True
            log.warning("nearnb: %s refused the cancel (%s)", url, response.status_code)
            return False
        return False

    def interrupted(self) -> bool:
        """Ctrl-C: True if it became a cancel request (keep following), False to stop."""
        if not self.cancel or self.cancel_sent:
            return False
        print("nearnb: cancelling the run (Ctrl-C again stops watching)", file=sys.stderr)
        return self.request_cancel()

    def stop(self) -> None:
        """The view's Stop: cancel the run, off the caller's thread."""
        threading.Thread(target=self._stop, name="nearnb-attach-cancel", daemon=True).start()

    def _stop(self) -> None:
        if self.cancel_sent:
            return
        if not self.request_cancel():
            self.session.stop()  # nobody can cancel it: at least stop watching
