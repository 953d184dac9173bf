"""The PostgreSQL store of record: choosing it, hiding its password, and several processes on it.

Behaviour shared with SQLite is tested on both backends elsewhere (the
``store`` fixture); here is what only a server shared by processes brings:
URL choice, redaction, race-safe schema creation, and processes that write
runs, read each other's runs and race to end one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import psycopg
import pytest

from nearnb import pgstore
from nearnb.cli import main as nearnb_main
from nearnb.dburl import redact
from nearnb.events import Event, Message, Run, message_delta, new_id, text_content
from nearnb.pgstore import PgStore, translate
from nearnb.store import (
    DATABASE_URL_ENV,
    BaseStore,
    DatabaseError,
    IntegrityError,
    Store,
    default_store,
    open_store,
)
from tests.agent_helpers import make_agent
from tests.support.hub import running_hub
from tests.support.openai_server import ScriptedOpenAI
from tests.support.postgres_server import PASSWORD, PostgresServer

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------ choosing


def test_the_url_chooses_the_backend(postgres_url: str, nearnb_home: Path, tmp_path: Path) -> None:
    assert type(open_store("")) is Store and open_store("").path == nearnb_home / "nearnb.db"
    assert open_store(f"sqlite:///{tmp_path}/other.db").path == tmp_path / "other.db"
    pg = open_store(postgres_url)
    assert isinstance(pg, PgStore) and pg.thread_dir("thread_x").is_relative_to(nearnb_home)
    assert isinstance(open_store(postgres_url.replace("postgresql://", "postgres://")), PgStore)
    with pytest.raises(DatabaseError, match="unsupported database URL") as bad:
        open_store("mysql://root:hunter2@db.example/x")
    assert "hunter2" not in str(bad.value) and "mysql://root:***@db.example/x" in str(bad.value)


def test_default_store_follows_the_variable(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    sqlite = default_store()
    assert isinstance(sqlite, Store)
    monkeypatch.setenv(DATABASE_URL_ENV, postgres_url)
    pg = default_store()
    assert isinstance(pg, PgStore) and default_store() is pg  # opened once
    thread = pg.create_thread()
    assert PgStore(postgres_url).get_thread(thread.id) == thread
    assert sqlite.get_thread(thread.id) is None
    monkeypatch.delenv(DATABASE_URL_ENV)
    assert default_store() is not pg and isinstance(default_store(), Store)


def test_sql_is_translated_once_for_postgres() -> None:
    assert translate("SELECT x FROM t WHERE a = ? AND b LIKE 'p%' ORDER BY rowid") == (
        "SELECT x FROM t WHERE a = %s AND b LIKE 'p%%' ORDER BY n"
    )
    assert translate("SELECT rowid_like FROM t") == "SELECT rowid_like FROM t"


# ----------------------------------------------------------------------- redaction


def test_the_password_never_shows(postgres_url: str, postgres_server: object) -> None:
    store = PgStore(postgres_url)
    assert PASSWORD not in repr(store) and ":***@" in repr(store)
    assert store.describe() == redact(postgres_url) and PASSWORD not in store.describe()
    port = postgres_url.rsplit(":", 1)[1].split("/")[0]
    refused = postgres_url.replace(f":{port}/", ":1/")
    with pytest.raises(DatabaseError, match="cannot connect") as down:
        PgStore(refused)
    wrong = postgres_url.replace(PASSWORD, "wrong-" + PASSWORD)
    with pytest.raises(DatabaseError, match="password authentication failed") as denied:
        PgStore(wrong)
    for error in (down.value, denied.value):
        assert PASSWORD not in str(error) and PASSWORD not in repr(error)
        assert error.__suppress_context__  # the driver's error is not chained into tracebacks
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"  # nothing to hide
    assert redact("postgresql://u:p@[::1]:5/db") == "postgresql://u:***@[::1]:5/db"


def test_the_cli_and_the_hub_name_a_bad_database_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://me:hunter2@127.0.0.1:1/db")
    assert nearnb_main(["export", "run_x"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect to postgresql://me:***@127.0.0.1:1/db" in err and "hunter2" not in err
    monkeypatch.delenv(DATABASE_URL_ENV)
    url = "postgresql://me:hunter2@127.0.0.1:1/db"
    assert nearnb_main(["hub", "--port", "0", "--database", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nearnb hub: cannot connect to postgresql://me:***@127.0.0.1:1/db")
    assert "hunter2" not in err


# --------------------------------------------------------------------- the schema


def test_processes_opening_a_new_database_at_once_all_succeed(postgres_url: str) -> None:
    """CREATE TABLE IF NOT EXISTS alone races in PostgreSQL; the advisory lock serialises it."""
    opened: list[BaseStore] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(6)

    def open_one() -> None:
        gate.wait()
        try:
            opened.append(PgStore(postgres_url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(opened) == 6
    tid = opened[0].create_thread().id
    assert all(s.get_thread(tid) is not None for s in opened)


def test_the_hub_serves_from_the_database(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, postgres_url)
    with running_hub() as hub:
        created = httpx.post(f"{hub.url}/v1/threads", json={"metadata": {"k": "v"}}).json()
    stored = PgStore(postgres_url).get_thread(created["id"])
    assert stored is not None and stored.metadata == {"k": "v"}


def test_a_restarted_database_costs_a_reconnection_not_an_error(
    postgres_server: PostgresServer, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PgStore(postgres_url)
    thread = store.create_thread()
    postgres_server.restart()  # every pooled connection is now dead
    monkeypatch.setattr(pgstore, "POOL_CHECK_AFTER", 0.0)  # as if idle for a while: checked
    assert store.get_thread(thread.id) == thread
    assert store.get_thread(store.create_thread().id) is not None
    postgres_server.restart()
    monkeypatch.setattr(pgstore, "POOL_CHECK_AFTER", 3600.0)  # just used: not checked, so
    with pytest.raises(psycopg.OperationalError):  # the one operation on it fails...
        store.get_thread(thread.id)
    assert store.get_thread(thread.id) == thread  # ...and the broken connection is not reused


def test_a_store_holds_at_most_its_pool_of_connections(
    postgres_server: PostgresServer, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many threads share ``$NEARNB_DATABASE_POOL`` connections; a nested call reuses its own."""
    monkeypatch.setenv(pgstore.POOL_MAX_ENV, "2")
    store = PgStore(postgres_url)
    tid = store.create_thread().id
    dbname = postgres_url.rsplit("/", 1)[1]
    seen: list[int] = []
    working = threading.Event()

    def sample() -> None:
        while working.is_set():
            ((n,),) = postgres_server.admin(
                f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{dbname}'"
            )
            seen.append(n)

    def save() -> None:
        for _ in range(25):
            store.save_message(
                Message(id=new_id("msg"), created_at=1, thread_id=tid, role="user",
                        content=text_content("x"))
            )  # fmt: skip

    working.set()
    sampler = threading.Thread(target=sample)
    sampler.start()
    workers = [threading.Thread(target=save) for _ in range(8)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    working.clear()
    sampler.join()
    assert len(store.list_messages(tid)) == 200
    assert seen and max(seen) <= 2
    monkeypatch.setenv(pgstore.POOL_MAX_ENV, "1")
    single = PgStore(postgres_url)
    with single.write() as db:  # holds the one connection...
        db.execute("INSERT INTO agent_data VALUES (?, ?, ?, ?)", ("ns", "a", "k", "{}"))
        assert single.read("SELECT count(*) FROM threads") == [(1,)]  # ...and still reads
    monkeypatch.setenv(pgstore.POOL_MAX_ENV, "none")
    with pytest.raises(DatabaseError, match="NEARNB_DATABASE_POOL must be a positive number"):
        PgStore(postgres_url)


def test_an_ender_and_a_late_producer_in_deadlock_end_with_one_integrity_error(
    postgres_url: str,
) -> None:
    """end_run locks the run row, then appends; a producer appends, then updates the row.

    Interleaved, PostgreSQL finds a deadlock and aborts one: that one sees the
    IntegrityError every write conflict raises (end_run then answers False), the
    other commits. Nothing hangs and nothing is half-written.
    """
    ender, producer = PgStore(postgres_url), PgStore(postgres_url)
    tid = ender.create_thread().id
    run = Run(id=new_id("run"), created_at=1, thread_id=tid, assistant_id="a", status="queued")
    ender.save_run(run)
    insert = (
        "INSERT INTO events (run_id, seq, event, data, thread_id, at) "
        "VALUES (?, 1, 'e', '{}', ?, 0)"
    )
    locked, appended = threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def end() -> None:
        try:
            with ender.write() as db:
                db.execute("SELECT 1 FROM runs WHERE id = ? FOR UPDATE", (run.id,))
                locked.set()
                appended.wait()
                db.execute(insert, (run.id, tid))
            outcome["ender"] = "committed"
        except IntegrityError as exc:
            outcome["ender"] = str(exc)

    def produce() -> None:
        locked.wait()
        try:
            with producer.write() as db:
                db.execute(insert, (run.id, tid))
                appended.set()
                db.execute("UPDATE runs SET status = 'in_progress' WHERE id = ?", (run.id,))
            outcome["producer"] = "committed"
        except IntegrityError as exc:
            outcome["producer"] = str(exc)
            appended.set()

    threads = [threading.Thread(target=end), threading.Thread(target=produce)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcome) == ["ender", "producer"]
    assert sorted(v == "committed" for v in outcome.values()) == [False, True], outcome
    assert any("DeadlockDetected" in v for v in outcome.values())
    assert [e.seq for e in ender.events(run.id)] == [1]


# ---------------------------------------------------------------- several processes

WRITER = textwrap.dedent(
    """
    import sys
    from nearnb.events import Event, Message, Run, message_delta, text_content
    from nearnb.pgstore import PgStore

    url, tid, rid, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = PgStore(url)
    run = Run(id=rid, created_at=1, thread_id=tid, assistant_id="a", status="in_progress")
    for seq in range(1, n + 1):
        event = Event(seq=seq, event="thread.message.delta", data=message_delta("m", str(seq)),
                      run_id=rid, thread_id=tid)
        store.commit([event], [run] if seq == 1 else [], [])
    answer = Message(id="msg_" + rid, created_at=1, thread_id=tid, role="assistant",
                     content=text_content(rid), run_id=rid)
    done = run.model_copy(update={"status": "completed"})
    store.commit([Event(seq=n + 1, event="done", data="[DONE]", run_id=rid, thread_id=tid)],
                 [done], [answer])
    """
)


def test_two_processes_write_runs_to_one_database(postgres_url: str) -> None:
    store = PgStore(postgres_url)
    tid = store.create_thread().id
    rids = [new_id("run"), new_id("run")]
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, postgres_url, tid, rid, "150"])
        for rid in rids
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    for rid in rids:
        assert [e.seq for e in store.events(rid)] == list(range(1, 152))
        assert store.get_run(rid).status == "completed"
    assert sorted(m.text for m in store.list_messages(tid)) == sorted(rids)
    assert {r.id for r in store.list_runs(tid)} == set(rids)


def test_a_run_of_the_cli_is_read_complete_from_another_process(
    srv: ScriptedOpenAI, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv.script(["Know ", "thyself."], ["The ", "Forms."])
    code = (ROOT / "examples" / "streaming-example" / "agent.py").read_text()
    agent = make_agent(tmp_path / "streaming", code)
    env = {**os.environ, DATABASE_URL_ENV: postgres_url}
    done = subprocess.run(
        [sys.executable, "-m", "nearnb.cli", "run", str(agent), "What is virtue?"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = PgStore(postgres_url)
    ((rid, tid),) = store.read("SELECT id, thread_id FROM runs")
    assert store.get_run(rid).status == "completed"
    events = store.events(rid)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].event == "done" and events[-2].event == "thread.run.completed"
    texts = [m.text for m in store.list_messages(tid) if m.role == "assistant"]
    assert texts == ["Know thyself.", "The Forms."]
    sqlite = Store()  # nothing went to the default SQLite file
    assert sqlite.get_run(rid) is None


ENDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from nearnb.events import Event
    from nearnb.pgstore import PgStore

    url, rid, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    store = PgStore(url)
    run = store.get_run(rid)
    ended = run.model_copy(update={"status": "expired"})
    closing = [Event(seq=4, event="thread.run.expired", data=ended.model_dump(mode="json"),
                     run_id=rid, thread_id=run.thread_id)]
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    print(store.end_run(ended, closing, [], after=3), flush=True)
    """
)


def test_of_two_processes_ending_one_run_exactly_one_wins(
    postgres_url: str, tmp_path: Path
) -> None:
    store = PgStore(postgres_url)
    tid = store.create_thread().id
    run = Run(id=new_id("run"), created_at=1, thread_id=tid, assistant_id="a", status="queued")
    store.commit(
        [
            Event(seq=i, event="thread.message.delta", data=message_delta("m", "x"), run_id=run.id,
                  thread_id=tid)
            for i in (1, 2, 3)
        ],
        [run],
        [Message(id=new_id("msg"), created_at=1, thread_id=tid, role="user",
                 content=text_content("hi"))],
    )  # fmt: skip
    go = tmp_path / "go"
    enders = [
        subprocess.Popen(
            [sys.executable, "-c", ENDER, postgres_url, run.id, str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    assert [e.stdout.readline().strip() for e in enders] == ["ready"] * 3  # type: ignore[union-attr]
    go.touch()
    outcomes = [e.communicate(timeout=60)[0].strip() for e in enders]
    assert sorted(outcomes) == ["False", "False", "True"]
    assert [e.seq for e in store.events(run.id)] == [1, 2, 3, 4]
    assert store.get_run(run.id).status == "expired"
    assert json.loads(store.event_rows(run.id, after=3)[0][2])["status"] == "expired"
