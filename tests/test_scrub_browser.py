"""The scrubber in a real JupyterLab, in Debian's chromium (Playwright).

A run is made on the scripted OpenAI server and saved as a recorded-run file;
a notebook cell scrubs the file. Then what only a browser shows: the arrow
keys on the focused slider step one event, Home goes before the first one,
a drag of the handle lands on an earlier state (counter, streamed text,
status badge), the ▶ button steps on, Play runs to the end, and the kernel's
``position`` followed every move. A screenshot is kept under tests/artifacts/.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from nearnb.runs import run_agent
from tests.agent_helpers import make_agent
from tests.conftest import ROOT
from tests.support.jupyterlab import JupyterLab, LabPage, write_notebook
from tests.support.openai_server import Reply, ScriptedOpenAI

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "tests" / "artifacts"
STREAM = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
WORDS = [f"w{i} " for i in range(60)]

STATE_JS = """(i) => {
    const cell = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')[i];
    const text = (sel) => {
        const el = cell.querySelector(sel);
        return el ? el.textContent : null;
    };
    const badge = cell.querySelector('.nearnb-scrubber .nearnb-badge');
    return {
        label: text('.nearnb-scrub-label'),
        deltas: text('.nearnb-scrubber .nearnb-counter b'),
        tail: text('.nearnb-scrubber .nearnb-tail'),
        transcript: text('.nearnb-scrubber .nearnb-transcript'),
        badge: badge ? badge.dataset.status : null,
        output: text('.jp-OutputArea') || '',
    };
}"""


def position(label: str | None) -> int | None:
    """``12 / 64 · thread.message.delta · +0.010 s`` -> 12."""
    match = re.match(r"\s*([\d,]+) / ", label or "")
    return int(match.group(1).replace(",", "")) if match else None


def wait_for(page: LabPage, cell: int, test: Any, what: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = page.page.evaluate(STATE_JS, cell)
        if test(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {state}")
        time.sleep(0.1)


def settled(page: LabPage, cell: int, quiet: float = 1.0) -> dict:
    """The cell's state once its label has not changed for ``quiet`` seconds."""
    last = page.page.evaluate(STATE_JS, cell)
    since = time.monotonic()
    deadline = since + 30
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"the scrubber never settled: {last}"
        time.sleep(0.1)
        now = page.page.evaluate(STATE_JS, cell)
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_keys_and_a_drag_move_the_scrubber_back(
    srv: ScriptedOpenAI, browser: Any, tmp_path: Path
) -> None:
    srv.script(Reply.text(*WORDS))
    result = run_agent(make_agent(tmp_path / "agents" / "talker", STREAM), "Hi")
    assert result.status == "completed", result.traceback
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    result.save(notebooks / "run.jsonl")
    end = len(result.events)
    write_notebook(
        notebooks / "scrub.ipynb",
        [
            "from nearnb.scrubbing import scrub\ns = scrub('run.jsonl')\ns",
            "print('POSITION', s.position)",
        ],
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with JupyterLab(notebooks, env=env) as lab:
        page = LabPage.open(browser, lab, "scrub.ipynb")
        page.run_cell(0)
        page.wait_done(0)
        final = wait_for(
            page,
            0,
            lambda s: position(s["label"]) == end and "w59" in (s["transcript"] or ""),
            "the scrubber shows the finished run",
        )
        assert final["deltas"] == "60" and final["badge"] == "completed"
        assert "".join(WORDS).strip() in " ".join(final["transcript"].split())

        # -- the arrow keys of the focused slider step one event each
        handle = page.cell(0).locator(".nearnb-scrub-slider .noUi-handle")
        handle.focus()
        for _ in range(3):
            page.page.keyboard.press("ArrowLeft")
        back = wait_for(page, 0, lambda s: position(s["label"]) == end - 3, "ArrowLeft x3")
        assert "thread.message.delta" in back["label"] or "thread.message" in back["label"]

        # -- Home: before the first event
        page.page.keyboard.press("Home")
        start = wait_for(page, 0, lambda s: position(s["label"]) == 0, "Home")
        assert start["deltas"] == "0" and "before the first event" in start["label"]

        # -- a drag from the left end to 40% of the track: an earlier, streaming state
        track = page.cell(0).locator(".nearnb-scrub-slider .noUi-target").bounding_box()
        box = handle.bounding_box()
        assert track is not None and box is not None
        y = box["y"] + box["height"] / 2
        page.page.mouse.move(box["x"] + box["width"] / 2, y)
        page.page.mouse.down()
        target = track["x"] + track["width"] * 0.4
        for step in range(1, 11):
            page.page.mouse.move(box["x"] + (target - box["x"]) * step / 10, y)
        page.page.mouse.up()
        wait_for(page, 0, lambda s: 0 < (position(s["label"]) or 0) < end, "the drag")
        dragged = settled(page, 0)  # the drag's last frames may still be on their way
        shown = int(dragged["deltas"])
        assert 0 < shown < 60 and dragged["badge"] == "in_progress"
        tail = (dragged["tail"] or "").strip()
        assert tail and "".join(WORDS).startswith(tail)  # the text as it had streamed so far
        assert len(tail.split()) == shown
        page.page.screenshot(path=str(ARTIFACTS / "scrubber.png"))

        # -- ▶ steps one event on
        k = position(dragged["label"])
        page.cell(0).locator("button.nearnb-scrub-forward").click()
        wait_for(page, 0, lambda s: position(s["label"]) == (k or 0) + 1, "the ▶ button")

        # -- the kernel's trait followed every move
        page.run_cell(1)
        page.wait_done(1)
        out = wait_for(page, 1, lambda s: "POSITION" in s["output"], "the position cell")
        assert f"POSITION {(k or 0) + 1}" in out["output"]

        # -- Play runs the slider (in the browser) to the end; the kernel follows
        page.cell(0).locator(".nearnb-scrub-play button").first.click()
        wait_for(page, 0, lambda s: position(s["label"]) == end, "Play to the end")
        assert settled(page, 0)["badge"] == "completed"
        page.run_cell(1)
        page.wait_done(1)
        wait_for(page, 1, lambda s: f"POSITION {end}" in s["output"], "the kernel after Play")
