"""Agent data (``env.save_agent_data`` and friends) on real runs: per agent, across runs, threads
and versions, in NEAR's shapes; and the rules of :mod:`nearnb.agentdata` itself."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

import pytest

from nearnb import agentdata
from nearnb.runs import run_agent, start_run
from nearnb.store import default_store
from tests.agent_helpers import make_agent

#: An agent as public NEAR agents wrote it: a counter kept in agent data, reported as JSON.
COUNTER = """\
import json

before = env.get_agent_data_by_key("counter", default={"n": 0})
row = env.save_agent_data("counter", {"n": before["value"]["n"] + 1, "thread": env.thread_id})
refused = env.save_agent_data("bad", "not a dict")
env.add_reply(json.dumps({"before": before, "row": row, "refused": refused,
                          "all": env.get_agent_data()}))
"""

ROW_KEYS = {"namespace", "name", "key", "value", "created_at", "updated_at"}


def report(result: Any) -> dict[str, Any]:
    assert result.status == "completed", result.error
    return json.loads(result.messages[-1].text)


@pytest.mark.usefixtures("srv", "database_url")  # srv: runs resolve their provider at start
def test_data_persists_across_runs_and_threads_in_nears_shapes(tmp_path: Path) -> None:
    agent = make_agent(tmp_path / "counter", COUNTER)
    first = run_agent(agent, "go")
    second = run_agent(agent, "again")  # a new thread: agent data is per agent, not per thread
    assert first.thread_id != second.thread_id
    one, two = report(first), report(second)

    # never saved: NEAR's stand-in, with the default as the value and empty timestamps
    assert one["before"] == {"value": {"n": 0}, "namespace": "local", "key": "counter",
                             "name": "counter", "updated_at": "", "created_at": ""}  # fmt: skip
    assert set(one["row"]) == ROW_KEYS
    assert one["row"]["value"] == {"n": 1, "thread": first.thread_id}
    assert (one["row"]["namespace"], one["row"]["name"]) == ("local", "counter")
    assert one["refused"] is None  # NEAR's hub refused non-dict values; env logged and said None
    assert one["all"] == [one["row"]]

    assert two["before"] == one["row"]  # the second run, on another thread, reads the first's
    assert two["row"]["value"] == {"n": 2, "thread": second.thread_id}
    assert two["row"]["created_at"] == one["row"]["created_at"]
    assert two["row"]["updated_at"] >= one["row"]["updated_at"]
    assert two["all"] == [two["row"]]

    log = default_store().thread_dir(first.thread_id) / "system_log.txt"
    assert "Error saving agent data by key bad" in log.read_text()


@pytest.mark.usefixtures("srv")  # runs resolve their provider at start
def test_data_belongs_to_the_agent_name_not_its_version_or_folder(tmp_path: Path) -> None:
    run_agent(make_agent(tmp_path / "counter", COUNTER), "go")
    newer = make_agent(tmp_path / "v2" / "counter", COUNTER)
    meta = json.loads((newer / "metadata.json").read_text())
    (newer / "metadata.json").write_text(json.dumps({**meta, "version": "0.2.0"}))
    assert report(run_agent(newer, "go"))["row"]["value"]["n"] == 2  # same name, new version
    other = report(run_agent(make_agent(tmp_path / "other", COUNTER), "go"))
    assert other["row"]["value"]["n"] == 1  # another agent starts from nothing
    assert [row["name"] for row in other["all"]] == ["other"]


@pytest.mark.usefixtures("srv", "database_url")  # srv: runs resolve their provider at start
def test_concurrent_runs_in_two_threads_both_keep_their_writes(tmp_path: Path) -> None:
    code = (
        "key = env.list_messages()[-1]['content']\n"
        "for i in range(20):\n"
        "    env.save_agent_data(f'{key}-{i}', {'i': i})\n"
        "env.add_reply(str(len(env.get_agent_data())))\n"
    )
    agent = make_agent(tmp_path / "writer", code)
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def run(key: str) -> None:
        barrier.wait()
        results[key] = start_run(agent, key).wait()

    threads = [threading.Thread(target=run, args=(key,)) for key in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert {r.status for r in results.values()} == {"completed"}
    rows = agentdata.get_all(default_store(), "local", "writer")
    assert sorted(row["key"] for row in rows) == sorted(f"{k}-{i}" for k in "ab" for i in range(20))


# ------------------------------------------------------------------ the module itself


@pytest.mark.usefixtures("database_url")  # on each store backend
def test_values_go_through_json_as_they_went_over_the_wire() -> None:
    store = default_store()
    row = agentdata.save(store, "local", "a", "k", {"t": (1, 2), 3: "x", "s": "é"})
    assert row["value"] == {"t": [1, 2], "3": "x", "s": "é"}
    assert agentdata.get(store, "local", "a", "k") == row
    assert agentdata.get(store, "local", "a", "missing") is None


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        (1, {}, "key must be a string"),
        ("k", [1, 2], "value must be a dict"),
        ("k", "text", "value must be a dict"),
        ("k", {"x": {1, 2}}, "not JSON-serialisable"),
        ("k", {"x": math.nan}, "not JSON-serialisable"),
        ("k", {str(i): i for i in range(400)}, "Value is too large"),
    ],
)
@pytest.mark.usefixtures("database_url")
def test_refused_as_nears_hub_refused(key: Any, value: Any, problem: str) -> None:
    with pytest.raises(agentdata.AgentDataError, match=problem):
        agentdata.save(default_store(), "local", "a", key, value)
    assert agentdata.get_all(default_store(), "local", "a") == []


def test_agent_key_drops_only_the_version() -> None:
    assert agentdata.agent_key("local/my-agent/0.1.0") == ("local", "my-agent")
    assert agentdata.agent_key("alice.near/agent/latest") == ("alice.near", "agent")
    assert agentdata.agent_key("ns/name") == ("ns", "name")
