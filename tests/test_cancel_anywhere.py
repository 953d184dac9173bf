"""Stop from any viewer: a run executing in one process is cancelled through another.

Every test has three kinds of real process: the run's producer (``python -c`` running
``start_run``, or ``nearnb run``) streaming from the slow scripted OpenAI server; a hub
(``python -m nearnb.hub``, uvicorn) serving its stream; and the viewer asking for the cancel
(an HTTP client, ``nearnb attach --cancel`` with Ctrl-C, an attached view's Stop). On both
backends (the ``backend`` fixture): the run ends ``cancelled`` with its partial message
``incomplete``, its producer exits on its own, and every viewer sees the same end.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nearnb.events import Event
from nearnb.hub.client import attach
from nearnb.store import open_store
from tests.support.hub import HubProcess
from tests.support.openai_server import ScriptedOpenAI
from tests.support.scaleout import Producer, Reader, child_env, ended_alike
from tests.support.waiting import wait_until


@pytest.fixture
def producer(backend: str, srv: ScriptedOpenAI, tmp_path: Path) -> Iterator[Producer]:
    started = Producer(srv, tmp_path / "slow")
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def hub(backend: str) -> Iterator[HubProcess]:
    with HubProcess() as server:
        yield server


def _assert_cancelled(producer: Producer, frames: list[tuple[str, str, str]]) -> None:
    names = [name for _, name, _ in frames]
    assert names[-2:] == ["thread.run.cancelled", "done"]
    assert names.count("thread.run.cancelled") == 1
    (incomplete,) = [json.loads(d) for _, n, d in frames if n == "thread.message.incomplete"]
    assert incomplete["incomplete_details"]["reason"] == "run_cancelled"
    streamed = "".join(
        json.loads(d)["delta"]["content"][0]["text"]["value"]
        for _, n, d in frames
        if n == "thread.message.delta"
    )
    assert incomplete["content"][0]["text"]["value"] == streamed
    assert streamed.startswith("tick tick") and streamed.count("tick") < 500  # stopped early
    store = open_store()
    assert store.get_run(producer.run_id).status == "cancelled"
    (message,) = store.list_messages(producer.thread_id, run_id=producer.run_id)
    assert message.status == "incomplete" and message.text == streamed
    code, out, _ = producer.finish()
    assert code == 0 and out.split()[-1] == "cancelled"  # the producer ended it itself


def test_a_hubs_cancel_route_stops_a_run_of_another_process(
    producer: Producer, hub: HubProcess
) -> None:
    producer.wait_for_deltas(3)
    readers = [Reader(hub.url + producer.path()) for _ in range(2)]
    wait_until(lambda: all("thread.message.delta" in r.names for r in readers), "both stream")
    url = f"{hub.url}/v1/threads/{producer.thread_id}/runs/{producer.run_id}/cancel"
    answer = httpx.post(url, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "thread.run" and body["id"] == producer.run_id
    assert body["status"] == "cancelling"
    frames = ended_alike(*(r.join() for r in readers))
    _assert_cancelled(producer, frames)
    again = httpx.post(url, timeout=10)  # ended: nothing left to cancel
    assert again.status_code == 400 and "cancelled" in again.text


def test_attach_cancel_with_ctrl_c_stops_a_cli_run(
    backend: str, srv: ScriptedOpenAI, tmp_path: Path, hub: HubProcess
) -> None:
    cli = Producer(srv, tmp_path / "slow", cli=True)
    try:
        cli.wait_for_deltas(3)
        viewer = Reader(hub.url + cli.path())
        attach = subprocess.Popen(
            [sys.executable, "-u", "-m", "nearnb.cli", "attach", hub.url + cli.path(), "--cancel"],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert attach.stdout is not None
        seen = ""
        while "tick" not in seen:  # it is following the run: its loop is running
            seen += attach.stdout.read(1) or ""
            assert attach.poll() is None, attach.stderr.read()  # type: ignore[union-attr]
        attach.send_signal(signal.SIGINT)
        out, err = attach.communicate(timeout=30)
        assert "cancelling the run" in err
        assert attach.returncode == 1 and f"run {cli.run_id} cancelled" in err
        frames = ended_alike(viewer.join())
        names = [name for _, name, _ in frames]
        assert names[-2:] == ["thread.run.cancelled", "done"]
        code, _, err = cli.finish()
        assert code == 130 and "cancelled" in err  # nearnb run says so, as after its own Ctrl-C
        assert open_store().get_run(cli.run_id).status == "cancelled"
    finally:
        cli.close()


def test_an_attached_views_stop_cancels_the_run(producer: Producer, hub: HubProcess) -> None:
    import nearnb.view

    producer.wait_for_deltas(3)
    seen: list[Event] = []
    clicked = threading.Event()

    def open_view(display, *, on_stop, **info):  # noqa: ANN001, ANN003
        def view(event: Event) -> None:
            seen.append(event)
            if event.event == "thread.message.delta" and not clicked.is_set():
                clicked.set()
                threading.Thread(target=on_stop).start()  # a click, on the comm's thread

        view.finish = lambda result=None: None  # type: ignore[attr-defined]
        return view

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nearnb.view, "open_view", open_view)
        result = attach(hub.url + producer.path(), display="widget")  # Stop cancels by default
    assert clicked.is_set()
    assert result.status == "cancelled"  # watched to its end, which the Stop caused
    assert [e.event for e in seen][-2:] == ["thread.run.cancelled", "done"]
    frames = [(str(e.seq), e.event, json.dumps(e.data)) for e in seen]
    _assert_cancelled(producer, frames)
