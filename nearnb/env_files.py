"""Thread files and logs of the ``env`` object, confined to the thread and agent folders.

NEAR ran each agent in a temporary copy of its folder, so the files an agent
shipped (prompts, data, helper modules) and the files it wrote sat in one
directory: ``get_agent_temp_path()``, listed by ``list_files`` and read by
``read_file``. nearnb gives the same view without copying: the thread's files
(``$NEARNB_HOME/threads/<id>/files``, kept across runs like NEAR's thread
files) lie over the agent's folder. Reads look in the thread's files first,
then in the agent's; listings show both; writes go to the thread's files
only, so an agent never changes its own source folder.

Paths may be relative, or absolute under ``get_agent_temp_path()`` or the
agent's folder (NEAR agents pass ``env.get_agent_temp_path()`` around).
Anything that leads elsewhere (``..``, absolute paths, symlinks pointing out)
is refused with :class:`FileAccessError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Literal

from .env_base import EnvBase

logger = logging.getLogger("nearnb.agent")

#: Never part of an agent's shipped files (NEAR's upload skipped them too).
SKIPPED = frozenset({"__pycache__", ".nearai", ".threads", ".git"})


class FileAccessError(PermissionError):
    """An agent asked for a file outside the folders it may use."""


def _confined(base: Path, filename: str) -> Path:
    """``base / filename``, refusing absolute paths and escapes (``..``, symlinks)."""
    if not filename or Path(filename).is_absolute() or Path(filename).drive:
        raise FileAccessError(f"refused file path {filename!r}: use a path relative to the thread")
    base = base.resolve()
    target = (base / filename).resolve()
    if not target.is_relative_to(base):
        raise FileAccessError(f"refused file path {filename!r}: it leaves the thread's files")
    return target


def relative_to_roots(filename: str | os.PathLike[str], roots: tuple[Path, ...]) -> str:
    """``filename`` as a path relative to whichever root holds it.

    Relative paths are returned as given (:func:`_confined` checks them). An
    absolute path must resolve (symlinks followed) inside one of ``roots``.
    """
    name = os.fspath(filename)
    path = Path(name)
    if not path.is_absolute():
        return name
    resolved = path.resolve()
    for root in roots:
        root = root.resolve()
        if resolved.is_relative_to(root):
            return resolved.relative_to(root).as_posix() or "."
    raise FileAccessError(
        f"refused file path {name!r}: it is outside the thread's files and the agent's folder"
    )


def _shipped(name: str) -> bool:
    return name not in SKIPPED and not name.endswith("~")


class FilesMixin(EnvBase):
    """``read_file``, ``write_file``, ``list_files``, temp paths, logs."""

    def _files(self) -> Path:
        return self._ports.store.thread_dir(self._runlog.thread_id)

    def _relative(self, filename: str | os.PathLike[str]) -> str:
        return relative_to_roots(filename, (self._files(), self._agent.path))

    def write_file(
        self,
        filename: str,
        content: str | bytes,
        encoding: str = "utf-8",
        filetype: str = "text/plain",
        write_to_disk: bool = True,
        logging: bool = True,
    ) -> Path:
        """Write a thread file; like NEAR, note it with a hidden output-file message."""
        name = self._relative(filename)
        target = _confined(self._files(), name)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode(encoding) if isinstance(content, str) else content
        target.write_bytes(data)
        if logging:
            self.add_reply(f"Output file: {name}", message_type="system:output_file")
        return target

    def read_file(self, filename: str, decode: str | None = "utf-8") -> str | bytes | None:
        """A thread file, else a file shipped in the agent folder; None if neither."""
        name = self._relative(filename)
        for base in (self._files(), self._agent.path):
            target = _confined(base, name)
            if target.is_file():
                data = target.read_bytes()
                return data.decode(decode) if decode else data
        return None

    def list_files(self, path: str = ".", order: Literal["asc", "desc"] = "asc") -> list[str]:
        """Names in ``path``: the thread's files and the agent's shipped files, as NEAR's
        temp folder held both. A name in both is listed once."""
        name = self._relative(path)
        names: set[str] = set()
        for base, shipped in ((self._files(), False), (self._agent.path, True)):
            folder = _confined(base, name)
            if folder.is_dir():
                names.update(p.name for p in folder.iterdir() if not shipped or _shipped(p.name))
        return sorted(names, reverse=order == "desc")

    def get_agent_temp_path(self) -> Path:
        """The folder NEAR ran the agent in: here the thread's files (over the agent's)."""
        return self._files()

    def get_primary_agent_temp_dir(self) -> Path:
        """NEAR's other name for :meth:`get_agent_temp_path`."""
        return self._files()

    def clear_temp_agent_files(self, verbose: bool = True) -> None:
        """A no-op: NEAR deleted its per-run copy of the agent; nearnb makes none, and the
        thread's files are the thread's to keep."""

    def generate_folder_hash_id(self, path: str) -> str:
        """MD5 over the contents of every file under ``path`` (NEAR's folder hash)."""
        digest = hashlib.md5()
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for file in sorted(files):
                with open(os.path.join(root, file), "rb") as fh:
                    while chunk := fh.read(65536):
                        digest.update(chunk)
        return digest.hexdigest()

    # --------------------------------------------------------------- logs, misc

    def add_system_log(self, log: str, level: int = logging.INFO) -> None:
        self._write_log("system_log.txt", "system", log, level)

    def add_agent_log(self, log: str, level: int = logging.INFO) -> None:
        self._write_log("agent_log.txt", "agent", log, level)

    def add_chat_log(self, role: str, content: str, level: int = logging.INFO) -> None:
        """NEAR's debug-mode chat transcript (``chat_history_log.txt``); nothing otherwise."""
        if not self._debug():
            return
        text = content if isinstance(content, str) else "content is not str"
        with (self._files() / "chat_history_log.txt").open("a", encoding="utf-8") as fh:
            fh.write(f"{logging.getLevelName(level)} {role.upper()}: {text}\n")

    def _debug(self) -> bool:
        return self.env_vars.get("DEBUG", "").lower() in ("1", "true", "yes", "on")

    def _write_log(self, filename: str, kind: str, log: str, level: int) -> None:
        logger.log(level, "[%s] %s", kind, log)
        with (self._files() / filename).open("a", encoding="utf-8") as fh:
            fh.write(f"{logging.getLevelName(level)} {log}\n")
        if self._debug():
            self.add_reply(log, message_type=f"{kind}:log")
