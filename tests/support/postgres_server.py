"""A real PostgreSQL 15 for tests: its own cluster in a temp dir, on a free loopback port.

Sessions run as root, which PostgreSQL refuses to run as, so the cluster
belongs to the ``postgres`` user (``runuser -u postgres -- initdb/pg_ctl``).
Tests connect over TCP as a role with a password, as a real deployment
would, so the password-redaction paths are exercised too.

    with PostgresServer() as server:
        url = server.create_database()     # postgresql://nearnb:…@127.0.0.1:PORT/test_1

As pytest fixtures: ``postgres_server`` (one per session) and
``postgres_url`` (a fresh database per test). Without the server binaries
the fixtures skip with the reason, and fail under ``CI=true``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("NEARNB_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
ROLE, PASSWORD = "nearnb", "s3cret-test-password"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def missing() -> str | None:
    """Why a server cannot be started here, or None."""
    for tool in ("initdb", "pg_ctl"):
        if not (PG_BIN / tool).exists():
            return f"PostgreSQL binaries not found: {PG_BIN / tool} (run scripts/setup.sh)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root needs runuser to start PostgreSQL as the postgres user"
    return None


class PostgresServer:
    """One PostgreSQL cluster; :meth:`create_database` hands out fresh databases."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="nearnb-pg-"))
        self.data = self.dir / "data"
        self._numbers = itertools.count(1)
        self._options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )

    def _as_postgres(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        pwfile = self.dir / "pw"
        pwfile.write_text("postgres\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        self._as_postgres(
            str(PG_BIN / "initdb"),
            "-D", str(self.data),
            "-U", "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", self._options,
            "-l", str(self.dir / "log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        self.admin(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
        return self

    def restart(self) -> None:
        """Stop the server (its connections drop) and start it again on the same port.

        ``-m fast``: a clean shutdown, as ``-m immediate`` would lose the last
        commits of a cluster that runs without fsync.
        """
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", self._options,
            "-l", str(self.dir / "log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def admin(self, sql: str) -> list[tuple]:
        """Run ``sql`` as the superuser over the cluster's Unix socket; its rows, if any."""
        import psycopg

        with psycopg.connect(
            host=str(self.dir), port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []

    def url(self, dbname: str) -> str:
        return f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new, empty database owned by the test role; its URL."""
        name = f"test_{next(self._numbers)}"
        self.admin(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._as_postgres(
                    str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
                )
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster for the whole session (skip/fail when it cannot start)."""
    reason = missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database (password included, as users write it)."""
    return postgres_server.create_database()
