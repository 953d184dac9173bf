"""The live view in a real JupyterLab, in Debian's chromium (Playwright), on the embedded model.

Proves what only a browser can: the counter climbs *while* the cell runs
(it streams, not all at once), the streamed text is visible, the final
answer replaces the live view, and a click on Stop during a long run is
handled while the cell is still busy (ipykernel 7.4.0 would otherwise queue
it behind the cell; see nearnb/view/widget.py) and ends the run cancelled.

A screenshot of the live view is kept under tests/artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, ROOT
from tests.support.jupyterlab import (
    JupyterLab,
    LabPage,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.local_model]

ARTIFACTS = ROOT / "tests" / "artifacts"

#: A run long enough to click Stop in: many streamed replies in a row.
LONG_AGENT = """
for i in range(40):
    env.add_reply(env.completion(
        [{"role": "user", "content": "Tell a long story about the sea."}],
        stream=True, max_tokens=120))
"""

STATE_JS = """(i) => {
    const cell = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')[i];
    const text = (sel) => {
        const el = cell.querySelector(sel);
        return el ? el.textContent : null;
    };
    const badge = cell.querySelector('.nearnb-badge');
    return {
        prompt: text('.jp-InputPrompt').trim(),
        deltas: text('.nearnb-counter b'),
        tail: text('.nearnb-tail'),
        badge: badge ? badge.textContent.trim() : null,
        output: text('.jp-OutputArea') || '',
    };
}"""


def state(page: LabPage, cell: int) -> dict[str, Any]:
    return page.page.evaluate(STATE_JS, cell)


def count(text: str | None) -> int | None:
    return int(text.replace(",", "")) if text else None


def words(markdown: str) -> list[str]:
    """The first words of an answer, without Markdown punctuation."""
    return re.sub(r"[*_`#>\[\]()|-]", " ", markdown).split()[:6]


def test_live_view_streams_finishes_and_stops(
    browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebooks = tmp_path / "notebooks"
    (notebooks / "long-agent").mkdir(parents=True)
    (notebooks / "long-agent" / "agent.py").write_text(LONG_AGENT)
    (notebooks / "long-agent" / "metadata.json").write_text(
        json.dumps({"name": "long-agent", "version": "0.1.0", "details": {"agent": {}}})
    )
    write_notebook(
        notebooks / "live.ipynb",
        [
            "%load_ext nearnb",
            f"%%near_agent {EXAMPLES / 'streaming-example'}\nWhat is virtue?",
            "import json; print(json.dumps([m.text for m in _.messages]))",
            "%%near_agent long-agent\nGo on.",
        ],
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["NEARNB_LOCAL_MAX_TOKENS"] = "160"  # ~1.5 s per reply at ~100 tokens/s
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with JupyterLab(notebooks, env=env) as lab:
        page = LabPage.open(browser, lab, "live.ipynb")
        page.run_cell(0)
        page.wait_done(0)

        # -- 1. it streams: the counter climbs while the cell is busy
        page.run_cell(1)
        seen: list[int] = []
        tails: list[str] = []
        shot = False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = state(page, 1)
            if now["prompt"] != "[*]:":
                break
            if now["deltas"] and (not seen or count(now["deltas"]) != seen[-1]):
                seen.append(count(now["deltas"]))
            if now["tail"]:
                tails.append(now["tail"])
            if not shot and len(seen) >= 3 and now["tail"] and len(now["tail"]) > 80:
                page.page.screenshot(path=str(ARTIFACTS / "live-view.png"))
                shot = True
            time.sleep(0.1)
        page.wait_done(1)
        assert len(seen) >= 3, f"counter values seen while running: {seen}"
        assert seen == sorted(seen), seen  # it only climbs
        assert tails, "no streamed text was visible while running"

        # -- 2. the final answers replace the live view
        final = state(page, 1)
        assert final["badge"] == "completed" and final["deltas"] is None  # no widget left
        page.run_cell(2)
        page.wait_done(2)
        answers = json.loads(state(page, 2)["output"])
        assert len(answers) == 2
        for answer in answers:
            assert " ".join(words(answer)) in " ".join(final["output"].split()), answer
        page.page.screenshot(path=str(ARTIFACTS / "final-view.png"))

        # -- 3. Stop during a long run, while the cell is busy
        page.run_cell(3)
        while (count(state(page, 3)["deltas"]) or 0) < 20:
            assert page.busy(3), "the long run ended before it could be stopped"
            time.sleep(0.1)
        page.cell(3).locator("button.nearnb-stop").click()
        clicked = time.monotonic()
        assert page.busy(3)
        acknowledged = None
        while page.busy(3):
            if acknowledged is None and state(page, 3)["badge"] in ("cancelling", "cancelled"):
                acknowledged = time.monotonic() - clicked
            assert time.monotonic() - clicked < 20, "Stop did not end the run"
            time.sleep(0.05)
        ended = time.monotonic() - clicked
        stopped = state(page, 3)
        if acknowledged is None and stopped["badge"] == "cancelled":
            acknowledged = ended  # it ended between two polls: acknowledged by then at the latest
        page.page.screenshot(path=str(ARTIFACTS / "stopped-view.png"))
        assert stopped["badge"] == "cancelled", stopped
        assert acknowledged is not None and acknowledged < 2.0, (acknowledged, ended)
        assert ended < 10.0  # 40 replies would take a minute
        assert "incomplete" in stopped["output"]  # the partial message is kept
        print(f"\ncounter values while running: {seen}")
        print(f"Stop: acknowledged {acknowledged:.2f} s after the click, ended after {ended:.2f} s")
