"""Two agents side by side in a real JupyterLab, in Debian's chromium (Playwright).

What only a browser shows: a ``%%near_agent A B`` cell renders two columns
whose counters both climb *while* the cell runs, and when it ends the static
bundle with both answers replaces them. The kernel's model is the scripted
OpenAI-compatible server (real HTTP from the kernel) with slow streams, so
the run lasts long enough to watch. A screenshot is kept under tests/artifacts/.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.agent_helpers import make_agent
from tests.conftest import ROOT
from tests.support.jupyterlab import JupyterLab, LabPage, write_notebook
from tests.support.openai_server import Reply, ScriptedOpenAI

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "tests" / "artifacts"
ECHO = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
PIECES = 120

COLUMNS_JS = """(i) => {
    const cell = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')[i];
    const columns = [...cell.querySelectorAll('.nearnb-column')];
    return {
        prompt: cell.querySelector('.jp-InputPrompt').textContent.trim(),
        counters: columns.map((c) => {
            const b = c.querySelector('.nearnb-counter b');
            return b ? Number(b.textContent.replace(/,/g, '')) : null;
        }),
        output: (cell.querySelector('.jp-OutputArea') || {}).textContent || '',
    };
}"""


def test_two_columns_stream_at_once_and_leave_both_answers(
    browser: Any, srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    notebooks = tmp_path / "notebooks"
    make_agent(notebooks / "alpha", ECHO)
    make_agent(notebooks / "beta", ECHO)
    srv.default = Reply.text(*[f"wave{i} " for i in range(PIECES)], delay=0.03)
    write_notebook(
        notebooks / "columns.ipynb",
        ["%load_ext nearnb", "%%near_agent alpha beta\nTell me about the sea."],
    )
    env = dict(os.environ)  # with the scripted provider's URL and key
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with JupyterLab(notebooks, env=env) as lab:
        page = LabPage.open(browser, lab, "columns.ipynb")
        page.run_cell(0)
        page.wait_done(0)
        page.run_cell(1)
        seen: list[list[int | None]] = []
        shot = False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = page.page.evaluate(COLUMNS_JS, 1)
            if now["prompt"] != "[*]:":
                break
            if len(now["counters"]) == 2 and (not seen or now["counters"] != seen[-1]):
                seen.append(now["counters"])
            if not shot and all((c or 0) > 20 for c in now["counters"] or [0]):
                page.page.screenshot(path=str(ARTIFACTS / "columns-live.png"))
                shot = True
            time.sleep(0.1)
        page.wait_done(1)
        moving = [values for values in seen if all(v is not None for v in values)]
        for column in (0, 1):
            counts = [values[column] for values in moving]
            assert len(set(counts)) >= 3, f"column {column} while running: {counts}"
            assert counts == sorted(counts), counts  # it only climbs
        # both columns were mid-stream at the same moment, seen in the page
        assert any(0 < a < PIECES and 0 < b < PIECES for a, b in moving), moving
        final = page.page.evaluate(COLUMNS_JS, 1)
        page.page.screenshot(path=str(ARTIFACTS / "columns-final.png"))
        assert final["counters"] == []  # the widget was replaced by the static bundle
        text = " ".join(final["output"].split())
        answer = " ".join(f"wave{i}" for i in range(PIECES))
        assert text.count(answer) == 2, text[:400]  # both columns' answers
        assert "1 · alpha" in text and "2 · beta" in text
        print(f"\ncounters seen while running: {moving}")
