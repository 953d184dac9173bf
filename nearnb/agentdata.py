"""Agent data: NEAR's per-agent key-value store, kept in nearnb's SQLite store.

NEAR's hub kept one row per (namespace, name, key), deliberately without the
agent's version, so a new version of an agent reads what the previous one
saved, and every thread and run of that agent shares the rows. nearnb keeps
the same key in the same SQLite file as threads and runs, so a kernel, the CLI
and a hub see one agent's data alike.

Shapes are the hub's ``AgentData`` row as JSON (what ``env.save_agent_data``
and friends returned through NEAR's client)::

    {"namespace": "local", "name": "my-agent", "key": "k", "value": {...},
     "created_at": "2026-12-01T21:00:00.123456+00:00", "updated_at": "..."}

What NEAR's hub refused is refused here with :class:`AgentDataError`: a key
that is not a string, a value that is not a JSON object (its request model was
``value: dict``), and a value over its 10 KB limit, measured as the hub
measured it (``sys.getsizeof`` of the dict). A value that JSON cannot carry
(a set, NaN) is refused too: on NEAR it never left the client.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from .store import Store

#: NEAR's hub limit, checked the way it checked it (``sys.getsizeof(value) > 10240``).
MAX_VALUE_SIZE = 10240


class AgentDataError(ValueError):
    """A key or value NEAR's hub would have refused; the message says which and why."""


def agent_key(identifier: str) -> tuple[str, str]:
    """``(namespace, name)`` of a ``namespace/name/version`` identifier (version dropped)."""
    parts = identifier.split("/")
    if len(parts) >= 3:
        return parts[0], "/".join(parts[1:-1])
    if len(parts) == 2:
        return parts[0], parts[1]
    return "local", identifier


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _checked(key: Any, value: Any) -> tuple[str, str]:
    """The key and the value as stored JSON text, or AgentDataError naming the problem."""
    if not isinstance(key, str):
        raise AgentDataError(f"key must be a string, not {type(key).__name__}")
    if not isinstance(value, dict):
        raise AgentDataError(
            f"value must be a dict (a JSON object), not {type(value).__name__}; "
            "wrap other values, e.g. {'value': ...}"
        )
    if sys.getsizeof(value) > MAX_VALUE_SIZE:
        raise AgentDataError("Value is too large, must be less than 10KB")
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise AgentDataError(f"value is not JSON-serialisable: {exc}") from None
    return key, text


def _row(namespace: str, name: str, key: str, obj: str) -> dict[str, Any]:
    stored = json.loads(obj)
    return {"namespace": namespace, "name": name, "key": key, **stored}


def save(store: Store, namespace: str, name: str, key: Any, value: Any) -> dict[str, Any]:
    """Insert or replace ``key`` for the agent; ``created_at`` survives a replace.

    The value goes through JSON (as it went over the wire to NEAR), so what
    comes back is what any later read returns: tuples become lists, keys
    become strings.
    """
    key, text = _checked(key, value)
    at = _timestamp()
    with store.write() as db:
        row = db.execute(
            "SELECT obj FROM agent_data WHERE namespace = ? AND name = ? AND key = ?",
            (namespace, name, key),
        ).fetchone()
        created = json.loads(row[0])["created_at"] if row else at
        obj = json.dumps(
            {"value": json.loads(text), "created_at": created, "updated_at": at},
            ensure_ascii=False,
        )
        db.execute(
            "INSERT INTO agent_data (namespace, name, key, obj) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(namespace, name, key) DO UPDATE SET obj = excluded.obj",
            (namespace, name, key, obj),
        )
    return _row(namespace, name, key, obj)


def get_all(store: Store, namespace: str, name: str) -> list[dict[str, Any]]:
    """Every row the agent saved, by key."""
    rows = store.read(
        "SELECT key, obj FROM agent_data WHERE namespace = ? AND name = ? ORDER BY key",
        (namespace, name),
    )
    return [_row(namespace, name, key, obj) for key, obj in rows]


def get(store: Store, namespace: str, name: str, key: str) -> dict[str, Any] | None:
    """The row for ``key``, or None when the agent never saved it."""
    rows = store.read(
        "SELECT obj FROM agent_data WHERE namespace = ? AND name = ? AND key = ?",
        (namespace, name, key),
    )
    return _row(namespace, name, key, rows[0][0]) if rows else None


def missing(namespace: str, name: str, key: str, default: Any) -> dict[str, Any]:
    """NEAR's answer for a key never saved: ``default`` as the value, empty timestamps."""
    return {
        "value": default,
        "namespace": namespace,
        "key": key,
        "name": name,
        "updated_at": "",
        "created_at": "",
    }
