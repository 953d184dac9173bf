"""Waiting on a condition in tests, never on a sleep that "should be enough"."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; raise saying ``what`` after ``timeout`` s.

    Raises ``TimeoutError`` rather than ``pytest.fail``: it also runs on helper
    threads, where the test sees the consequence in its own assertions.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting until {what}")
        time.sleep(0.005)
