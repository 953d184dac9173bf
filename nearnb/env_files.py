"""Thread files and logs of the ``env`` object, confined to the thread and agent folders."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from .env_base import EnvBase

logger = logging.getLogger("nearnb.agent")


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


class FilesMixin(EnvBase):
    """``read_file``, ``write_file``, ``list_files``, logs."""

    def _files(self) -> Path:
        return self._ports.store.thread_dir(self._runlog.thread_id)

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
        target = _confined(self._files(), filename)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode(encoding) if isinstance(content, str) else content
        target.write_bytes(data)
        if logging:
            self.add_reply(f"Output file: {filename}", message_type="system:output_file")
        return target

    def read_file(self, filename: str, decode: str | None = "utf-8") -> str | bytes | None:
        """A thread file, else a file shipped in the agent folder; None if neither."""
        for base in (self._files(), self._agent.path):
            target = _confined(base, filename)
            if target.is_file():
                data = target.read_bytes()
                return data.decode(decode) if decode else data
        return None

    def list_files(self, path: str = ".", order: Literal["asc", "desc"] = "asc") -> list[str]:
        folder = _confined(self._files(), path)
        names = (
            sorted((p.name for p in folder.iterdir()), reverse=order == "desc")
            if folder.is_dir()
            else []
        )
        return names

    def get_agent_temp_path(self) -> Path:
        return self._files()

    # --------------------------------------------------------------- logs, misc

    def add_system_log(self, log: str, level: int = logging.INFO) -> None:
        self._write_log("system_log.txt", "system", log, level)

    def add_agent_log(self, log: str, level: int = logging.INFO) -> None:
        self._write_log("agent_log.txt", "agent", log, level)

    def _write_log(self, filename: str, kind: str, log: str, level: int) -> None:
        logger.log(level, "[%s] %s", kind, log)
        with (self._files() / filename).open("a", encoding="utf-8") as fh:
            fh.write(f"{logging.getLevelName(level)} {log}\n")
        if self.env_vars.get("DEBUG", "").lower() in ("1", "true", "yes"):
            self.add_reply(log, message_type=f"{kind}:log")
