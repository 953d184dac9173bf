"""A real kernel: a notebook using ``%%near_agent`` executed headless by nbclient.

This is what "the notebook executed headless and saved shows both answers"
means: nbclient applies the view's final ``update_display_data`` to the
stored output, so the saved cell holds the static Markdown bundle (with run
metadata) instead of a widget reference - whatever the display mode.
Runs on the embedded model (no API key: the examples fall back to SmolLM2).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.agent_helpers import make_agent
from tests.conftest import EXAMPLES, ROOT
from tests.support.openai_server import Reply, ScriptedOpenAI

pytestmark = pytest.mark.local_model

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Two streamed answers in one run: a short one, then a long one to interrupt.
TWO_REPLIES = (
    "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
    "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
)


def cell_magic(agent: str, message: str, options: str = "") -> str:
    return f"%%near_agent {EXAMPLES / agent} {options}\n{message}".replace("  \n", "\n")


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


def bundles(cell: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [o for o in cell.outputs if o.output_type == "display_data"]


def answers_of(cell: nbformat.NotebookNode) -> list[str]:
    """The RunResult's answers, printed as JSON by the helper cell."""
    (stream,) = [o for o in cell.outputs if o.output_type == "stream"]
    return json.loads(stream.text)


@pytest.fixture(autouse=True)
def short_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEARNB_LOCAL_MAX_TOKENS", "32")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def test_saved_notebook_holds_final_answers_and_run_metadata(tmp_path: Path) -> None:
    show = "import json; print(json.dumps([m.text for m in _.messages]))"
    nb = execute(
        [
            "%load_ext nearnb",
            cell_magic("streaming-example", "What is virtue?"),
            show,
            cell_magic("simple-agent", "What is 2+2?", "--display handle"),
            show,
            cell_magic("intermediate-example", "Why is the sky blue?", "--display plain"),
            show,
            cell_magic("streaming-example", "And justice?"),
        ],
        tmp_path,
    )
    runs = {}
    for index in (1, 3, 5):
        cell = nb.cells[index]
        (bundle,) = bundles(cell)  # one static output: the live view was replaced, not appended
        assert WIDGET_VIEW not in bundle.data
        markdown, meta = bundle.data["text/markdown"], bundle.metadata["nearnb"]
        assert meta["status"] == "completed"
        assert meta["thread_id"].startswith("thread_") and meta["run_id"].startswith("run_")
        answers = answers_of(nb.cells[index + 1])
        assert answers and len(answers) == meta["answers"]
        for answer in answers:
            assert answer.strip()[:40] in markdown
            assert answer.strip()[:40] in bundle.data["text/plain"]
        (result,) = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert result.data["text/plain"].startswith("<RunResult completed")
        runs[index] = meta
    streaming = runs[1]
    assert streaming["answers"] == 2 and streaming["deltas"] > 2  # Socrates, then Plato
    assert streaming["model"] == "local::smollm2"
    assert "embedded model" in bundles(nb.cells[1])[0].data["text/markdown"]  # fallback notice
    assert runs[3]["deltas"] == 0  # simple-agent does not stream, its answer is still there
    assert runs[5]["answers"] == 1  # the intermediate draft is not an answer
    # the same agent in a later cell continued the same thread
    assert bundles(nb.cells[7])[0].metadata["nearnb"]["thread_id"] == streaming["thread_id"]
    # no output refers to a widget model, so nothing shows "Error displaying widget"
    # (nbclient still stores the closed models' state in nb.metadata: it ignores comm_close)
    assert not [o for c in nb.cells for o in c.outputs if WIDGET_VIEW in o.get("data", {})]


def test_kernel_interrupt_cancels_the_run_and_keeps_the_result(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    """The fallback that needs no frontend at all: the toolbar's interrupt.

    The kernel's model is the scripted server (over real HTTP, from the kernel process): a
    3-chunk answer, then one of 400 chunks 20 ms apart, so the interrupt (at 30 deltas) lands
    inside the second message for certain and its partial text is known exactly. (On the
    embedded model it could land between two replies, leaving no partial message to check.)
    """
    from jupyter_client.manager import start_new_kernel

    srv.script(["Know ", "thy", "self."], Reply.text(*["tick "] * 400, delay=0.02))
    agent = make_agent(tmp_path / "long-agent", TWO_REPLIES)
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(ROOT))  # inherits the provider env
    try:
        kc.execute_interactive("%load_ext nearnb", timeout=60)
        msg_id = kc.execute(f"%%near_agent {agent} --display handle\nGo on.")
        deltas = 0
        while deltas < 30:  # interrupt mid-run: the live display says how far it got
            msg = kc.get_iopub_msg(timeout=60)
            text = msg["content"].get("data", {}).get("text/plain", "")
            if msg["msg_type"] == "update_display_data" and "deltas received" in text:
                deltas = int(re.search(r"([\d,]+) deltas received", text)[1].replace(",", ""))
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "ok"  # the cell returned, it did not raise
        outputs: list[str] = []
        kc.execute_interactive(
            "import json; print(json.dumps([_.status, _.deltas, "
            "[(m.status, m.text, m.incomplete_details and m.incomplete_details.reason) "
            "for m in _.messages]]))",
            timeout=30,
            output_hook=lambda m: outputs.append(m["content"].get("text", "")),
        )
        status, run_deltas, messages = json.loads("".join(outputs))
        assert status == "cancelled"
        assert 30 <= run_deltas < 403  # at least what the display showed; not every chunk
        assert messages[0] == ["completed", "Know thyself.", None]  # a finished answer stays
        assert len(messages) == 2
        last_status, last_text, reason = messages[-1]
        assert last_status == "incomplete" and reason == "run_cancelled"
        partial = run_deltas - 3
        assert partial >= 27 and last_text == "tick " * partial  # every delta received, kept
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
