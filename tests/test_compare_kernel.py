"""Agents side by side in a real kernel: a notebook executed headless by nbclient.

The kernel's model is the scripted OpenAI-compatible server (real HTTP from
the kernel process) with slow streams, so both columns are surely in progress
at once; overlap is read from the runs' own stored event times. One test runs
on the embedded model (shape only), where the columns overlap thanks to the
fair turns (:mod:`nearnb.providers.turns`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.agent_helpers import make_agent
from tests.conftest import ROOT
from tests.support.openai_server import Reply, ScriptedOpenAI

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ECHO = "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
PIECES = 40
#: Prints, as JSON, what the tests check of a Comparison (``c``), read from the store.
REPORT = """
import json
from nearnb.store import default_store
def _report(c):
    store = default_store()
    out = []
    for r in c.results:
        times = [e.at for e in store.events(r.run_id) if e.event == "thread.message.delta"]
        out.append({"status": r.status, "text": r.text, "thread": r.thread_id,
                    "deltas": r.deltas, "times": times})
    print(json.dumps(out))
"""


@pytest.fixture(autouse=True)
def kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEARNB_LOCAL_MAX_TOKENS", "32")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def execute(cells: list[str], tmp_path: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)  # what a user would reopen
    return nbformat.read(path, as_version=4)


def report(cell: nbformat.NotebookNode) -> list[dict[str, Any]]:
    (stream,) = [o for o in cell.outputs if o.output_type == "stream" and o.name == "stdout"]
    return json.loads(stream.text.strip().splitlines()[-1])


def bundle(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    (output,) = [o for o in cell.outputs if o.output_type == "display_data"]
    return output


def overlapping(a: list[float], b: list[float]) -> bool:
    """Both in progress at overlapping times: each started before the other ended."""
    return b[0] < a[-1] and a[0] < b[-1]


def slow(word: str) -> Reply:
    return Reply.text(*[f"{word}{i} " for i in range(PIECES)], delay=0.02)


def test_two_agents_side_by_side_and_stop_one(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    a = make_agent(tmp_path / "alpha", ECHO)
    b = make_agent(tmp_path / "beta", ECHO)
    srv.script(slow("sun"), slow("moon"))  # which run gets which is up to the race
    srv.default = Reply.text(*[f"tick{i} " for i in range(300)], delay=0.02)
    stop_cell = f"""
from nearnb.comparing import compare
from tests.support.waiting import wait_until
live = compare([{str(a)!r}, {str(b)!r}], "Go on.", wait=False)
wait_until(lambda: min(h.state.deltas for h in live.handles) >= 5, "both stream")
live.view.stop_button(0).click()  # column 0's own Stop button
_report(live.wait())
"""
    nb = execute(
        [
            "%load_ext nearnb",
            REPORT,
            f"%%near_agent {a} {b}\nWhat is virtue?",
            "_report(_)",
            stop_cell,
        ],
        tmp_path,
    )
    runs = report(nb.cells[3])
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert all(r["deltas"] == PIECES for r in runs)
    assert overlapping(runs[0]["times"], runs[1]["times"])
    assert runs[0]["thread"] != runs[1]["thread"]  # each run its own thread
    # the saved output: the static bundle, one section per column, no widget left
    final = bundle(nb.cells[2])
    assert WIDGET_VIEW not in final.data
    markdown = final.data["text/markdown"]
    alpha, beta = markdown.split("### 2 · beta")
    assert "### 1 · alpha" in alpha
    assert runs[0]["text"].strip() in alpha and runs[1]["text"].strip() in beta
    meta = final.metadata["nearnb"]["comparison"]
    assert [m["status"] for m in meta] == ["completed", "completed"]
    assert [m["deltas"] for m in meta] == [PIECES, PIECES]
    (value,) = [o for o in nb.cells[2].outputs if o.output_type == "execute_result"]
    assert value.data["text/plain"].startswith("<Comparison of 2 runs>")
    assert "| alpha | completed | 40 |" in value.data["text/markdown"]
    # Stop on one column: that run is cancelled, the other runs to its end
    stopped, finished = report(nb.cells[4])
    assert stopped["status"] == "cancelled" and 5 <= stopped["deltas"] < 300
    assert finished["status"] == "completed" and finished["deltas"] == 300
    assert overlapping(stopped["times"], finished["times"])
    assert finished["times"][-1] > stopped["times"][-1]  # it went on after the Stop


@pytest.mark.local_model
def test_two_columns_on_the_embedded_model_take_turns(tmp_path: Path) -> None:
    remote = {"model": "llama-v3p3-70b-instruct", "model_provider": "fireworks"}
    a = make_agent(tmp_path / "socrates", ECHO, defaults=remote)  # no key: the embedded model
    b = make_agent(tmp_path / "plato", ECHO, defaults=remote)
    nb = execute(
        ["%load_ext nearnb", REPORT, f"%%near_agent {a} {b}\nWhat is virtue?", "_report(_)"],
        tmp_path,
    )
    runs = report(nb.cells[3])
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert all(r["text"].strip() and len(r["times"]) > 3 for r in runs)
    assert overlapping(runs[0]["times"], runs[1]["times"])  # interleaved, token by token
    markdown = bundle(nb.cells[2]).data["text/markdown"]
    assert "take turns" in markdown  # the notice says so
    for run in runs:
        assert run["text"].strip()[:30] in markdown
