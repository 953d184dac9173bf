"""A real JupyterLab server plus Debian's chromium driven by Playwright.

The measured recipe of shared/reference/browser-tests.md, as a harness:

* the server runs on 127.0.0.1 with a token, isolated config/runtime/IPython
  dirs and no update or news checks; ``--allow-root`` only when root;
  it is its own process group, so stopping it takes the kernels too;
* the browser is ``/usr/bin/chromium`` (never ``playwright install``);
* a machine without chromium or without Playwright skips the browser tests,
  except under ``CI=true``, where that fails them (:func:`require_browser`);
* "kernel ready" is the toolbar kernel name *and* an idle indicator - the
  indicator alone reads idle before the kernel is connected, and a
  Shift+Enter in that window is silently dropped;
* a cell runs by clicking its editor and pressing Shift+Enter, confirmed by
  its prompt changing (``[ ]:`` -> ``[*]:`` -> ``[n]:``), retried once.

Usage::

    with JupyterLab(notebook_dir, env=env) as lab, chromium() as browser:
        page = LabPage.open(browser, lab, "demo.ipynb")
        page.run_cell(0)
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]  # fmt: skip
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def browser_missing() -> str | None:
    """Why the browser tests cannot run on this machine, or None when they can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: run scripts/setup.sh (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed: run scripts/setup.sh (pip install -e '.[test]')"
    return None


def require_browser() -> None:
    """Skip the calling test when chromium or Playwright is missing; under ``CI=true`` fail it.

    CI must run the browser tests, never skip them: a skip there would hide that the one
    check of what a user actually sees did not happen.
    """
    problem = browser_missing()
    if problem is None:
        return
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"CI=true: {problem}")
    pytest.skip(problem)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook with a kernelspec (so Lab shows no kernel picker)."""
    notebook = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {},
             "outputs": [], "source": source}
            for i, source in enumerate(cells)
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    path.write_text(json.dumps(notebook))
    return path


class JupyterLab:
    """``python -m jupyterlab`` serving ``root_dir``; a context manager."""

    def __init__(
        self, root_dir: Path, *, env: Mapping[str, str] | None = None, startup_timeout: float = 60.0
    ) -> None:
        self.root_dir = root_dir
        self.state_dir = root_dir.parent / f".{root_dir.name}-lab"
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.env = dict(env if env is not None else os.environ)
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.state_dir / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, notebook: str) -> str:
        return f"{self.base_url}/lab/tree/{notebook}?token={self.token}"

    def start(self) -> None:
        state = self.state_dir
        settings = state / "settings"
        news = settings / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True, exist_ok=True)
        (news / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        env = self.env | {
            "JUPYTER_CONFIG_DIR": str(state / "config"),
            "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
            "IPYTHONDIR": str(state / "ipython"),
        }
        argv = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1",
            "--port", str(self.port), f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}", "--ServerApp.port_retries=0",
            f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={state / 'ws'}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]  # fmt: skip
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-root")  # the server refuses to start as root otherwise
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv, cwd=self.root_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyterlab exited at start:\n{self.log()}")
            try:
                status = httpx.get(f"{self.base_url}/api/status?token={self.token}", timeout=2)
                if status.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"jupyterlab not ready after {self.startup_timeout:.0f} s:\n{self.log()}"
        )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # no confirmation prompt without a TTY
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        try:  # the kernels live in the server's process group
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait(timeout=10)

    def __enter__(self) -> JupyterLab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium for one test module (a plugin fixture: tests/conftest.py)."""
    require_browser()  # no chromium or no Playwright: skipped here, a failure under CI=true
    with chromium() as launched:
        yield launched


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium, headless, through Playwright's bundled driver."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


class LabPage:
    """A notebook open in JupyterLab, with the few actions tests need."""

    def __init__(self, page: Any) -> None:
        self.page = page

    @classmethod
    def open(
        cls,
        browser: Any,
        lab: JupyterLab,
        notebook: str,
        *,
        viewport: tuple[int, int] = (1200, 900),
    ) -> LabPage:
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        page.goto(lab.url(notebook), wait_until="domcontentloaded")
        self = cls(page)
        self.wait_kernel_ready()
        return self

    def wait_kernel_ready(self, timeout: float = 60.0) -> None:
        self.page.wait_for_function(
            """(panel) => {
                const name = document.querySelector(panel + ' .jp-KernelName');
                const busy = document.querySelector(panel + ' .jp-Notebook-ExecutionIndicator');
                const text = name ? name.textContent.trim() : '';
                return text && text !== 'No Kernel' && busy && busy.dataset.status === 'idle';
            }""",
            arg=NOTEBOOK,
            timeout=timeout * 1000,
        )

    def cell(self, index: int) -> Any:
        return self.page.locator(f"{NOTEBOOK} .jp-CodeCell").nth(index)

    def prompt(self, index: int) -> str:
        return self.cell(index).locator(".jp-InputPrompt").inner_text().strip()

    def run_cell(self, index: int, *, attempts: int = 2) -> None:
        """Start a cell (Shift+Enter) and return once its prompt shows it ran or runs."""
        before = self.prompt(index)
        for _ in range(attempts):
            self.cell(index).locator(".cm-content").click()
            self.page.keyboard.press("Shift+Enter")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                now = self.prompt(index)
                if now != before and now not in ("[ ]:", ""):
                    return
                time.sleep(0.05)
        raise RuntimeError(f"cell {index} did not start (prompt stays {before!r})")

    def busy(self, index: int) -> bool:
        return self.prompt(index) == "[*]:"

    def wait_done(self, index: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.busy(index):
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell {index} still running after {timeout:.0f} s")
            time.sleep(0.1)

    def output_text(self, index: int) -> str:
        return self.cell(index).locator(".jp-OutputArea").inner_text()
