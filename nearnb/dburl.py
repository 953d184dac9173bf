"""Database URLs: which backend one names, and how to show one without its password.

``$NEARNB_DATABASE_URL`` (or ``nearnb hub --database URL``) chooses the store
of record: unset, the SQLite file under ``$NEARNB_HOME``; ``postgresql://…``
(or ``postgres://…``), PostgreSQL; ``sqlite:///path/to/file.db``, that file.
A URL may carry a password, so everything shown to people goes through
:func:`redact` first.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

DATABASE_URL_ENV = "NEARNB_DATABASE_URL"
POSTGRES_SCHEMES = ("postgresql", "postgres")


class DatabaseError(RuntimeError):
    """The database cannot be used (bad URL, unreachable, refused); any URL shown is redacted."""


def database_url() -> str | None:
    """``$NEARNB_DATABASE_URL``, or None when unset or empty (the SQLite default)."""
    return os.environ.get(DATABASE_URL_ENV, "").strip() or None


def scheme(url: str) -> str:
    """The URL's scheme, lower-cased ('' when it has none)."""
    head, sep, _ = url.partition("://")
    return head.lower() if sep else ""


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages, logs and reprs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}{port}"))
    except ValueError:  # unparseable: show nothing that might be a secret
        return f"{scheme(url) or 'database'}://(unparseable URL)"


def scrub(text: str, url: str) -> str:
    """``text`` (say, a driver's error) with ``url``'s password, if any, taken out."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text


def sqlite_path(url: str) -> str:
    """The file a ``sqlite:///path`` URL names (``sqlite:////abs`` or ``sqlite:///rel``)."""
    path = url.split("://", 1)[1]
    if not path.startswith("/") or len(path) < 2:
        raise DatabaseError(f"a sqlite URL names a file: sqlite:///path/to/file.db, not {url!r}")
    return path[1:]
