"""The nearnb command, run as a real subprocess against a scripted provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nearnb.store import Store
from tests.agent_helpers import make_agent
from tests.support.openai_server import Reply, ScriptedOpenAI


def nearnb(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nearnb.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def test_run_stream_prints_text_as_it_arrives_and_final_messages(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    srv.script(["Know ", "thyself."], ["The ", "Forms."])
    code = (Path(__file__).parents[1] / "examples" / "streaming-example" / "agent.py").read_text()
    agent = make_agent(tmp_path / "streaming", code)
    done = nearnb("run", str(agent), "What is virtue?", "--stream")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Know", "thyself.", "The", "Forms."]


def test_non_streaming_agent_still_shows_its_answer_under_stream(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    """NEAR's CLI printed nothing for a non-streaming agent under --stream."""
    srv.script(["Four."])
    agent = make_agent(tmp_path / "plain", "env.add_reply(env.completion(env.list_messages()))\n")
    done = nearnb("run", str(agent), "2+2?", "--stream")
    assert done.returncode == 0 and done.stdout.strip() == "Four."


def test_interactive_repl_continues_the_thread(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.script(["first answer"], ["second answer"])
    agent = make_agent(tmp_path / "chat", "env.add_reply(env.completion(env.list_messages()))\n")
    meta = json.loads((agent / "metadata.json").read_text())
    meta["details"]["agent"]["welcome"] = {"title": "Hello there", "description": "I echo."}
    (agent / "metadata.json").write_text(json.dumps(meta))
    done = nearnb("agent", "interactive", str(agent), stdin="q1\nq2\nexit\nnever sent\n")
    assert done.returncode == 0, done.stderr
    assert "Hello there" in done.stdout and "I echo." in done.stdout
    assert "first answer" in done.stdout and "second answer" in done.stdout
    assert len(srv.requests) == 2  # 'exit' quit before the third line
    history = [(m["role"], m["content"]) for m in srv.requests[1].body["messages"]]
    assert history == [("user", "q1"), ("assistant", "first answer"), ("user", "q2")]


def test_failed_run_exits_nonzero_with_error_on_stderr(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    srv.script(Reply.text("partial", "text", drop_after=1))
    agent = make_agent(tmp_path / "drop", "env.add_reply(env.completion([], stream=True))\n")
    done = nearnb("run", str(agent), "go", "--stream")
    assert done.returncode == 1
    assert "failed" in done.stderr and "ProviderError" in done.stderr
    assert done.stdout.startswith("partial")  # what streamed before the drop is shown


def test_usage_errors_are_one_clear_line(tmp_path: Path) -> None:
    missing = nearnb("run", str(tmp_path / "nope"), "hi")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("nearnb: agent not found")
    unknown_thread = make_agent(tmp_path / "ok", "pass\n")
    bad = nearnb("run", str(unknown_thread), "hi", "--thread", "thread_nope")
    assert bad.returncode == 2 and bad.stderr.strip() == "nearnb: thread not found: thread_nope"


def test_run_stream_follows_sub_agents(srv: ScriptedOpenAI, tmp_path: Path) -> None:
    """A child run streams under its parent (on stderr, indented), not as a bare tool line."""
    srv.script(["child ", "words"], ["parent ", "words"])
    make_agent(tmp_path / "kid", "env.add_reply(env.completion([], stream=True))\n")
    boss = make_agent(
        tmp_path / "boss",
        "env.run_agent('kid', query='go')\nenv.add_reply(env.completion([], stream=True))\n",
    )
    done = nearnb("run", str(boss), "hi", "--stream")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["parent", "words"]
    child_lines = [line for line in done.stderr.splitlines() if "│" in line]
    assert any("child words" in line for line in child_lines), done.stderr


def test_a_reader_that_stops_reading_stops_the_printing_not_the_run(
    srv: ScriptedOpenAI, tmp_path: Path
) -> None:
    """``nearnb run --stream | head``: no BrokenPipeError, and the run still ends stored whole."""
    srv.script(Reply.text(*[f"w{i} " for i in range(200)], delay=0.005))
    agent = make_agent(
        tmp_path / "long", "env.add_reply(env.completion(env.list_messages(), stream=True))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "nearnb.cli", "run", str(agent), "go", "--stream"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(3) == b"w0 "  # like `head -c 3`, then the reader goes away
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, stderr
    assert "BrokenPipeError" not in stderr and "Traceback" not in stderr, stderr
    assert Store().read("SELECT status FROM runs") == [("completed",)]  # stored whole
