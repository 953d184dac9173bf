"""A streamed call's chunk texts, stored with their common shape written once.

A provider's stream repeats one JSON shape per chunk (id, object, created,
model, fingerprint, choice index, logprobs...) around the one value that
changes: ``delta.content``. Recording 50,000 chunks as they came was 10.7 MB
per call, and writing that row was most of what recording cost a run
(60-160 ms at the stream's end, on the agent's thread; bench_pipeline). Here a
chunk whose text is ``prefix + "<content literal>" + suffix`` keeps only its
content literal, exactly as it came over the wire; any other chunk (the role
chunk, a tool call, the usage chunk, a changed id) is kept whole::

    {"prefix": "{...\"delta\":{\"content\":", "suffix": "},...}", "chunks": ["Hel", "lo", {...}]}

Packing only slices strings (no JSON parsing per chunk); :func:`unpack` gives
back the chunk objects, equal to parsing every original text.
"""

from __future__ import annotations

import json
import re
from itertools import repeat
from operator import itemgetter
from typing import Any

_CONTENT = '"content":'
#: One JSON string literal and nothing else: the content value a packed chunk keeps.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_DECODER = json.JSONDecoder()
_SAMPLE = 20  # chunks the shape is chosen on


def _shape(text: str) -> tuple[str, str] | None:
    """``(prefix, suffix)`` around the content value of one chunk text, if it has one."""
    at = text.find(_CONTENT)
    if at < 0:
        return None
    start = at + len(_CONTENT)
    while start < len(text) and text[start] in " \t\r\n":
        start += 1
    try:
        _, end = _DECODER.raw_decode(text, start)
    except ValueError:
        return None
    return text[:start], text[end:]


def _fits(text: str, prefix: str, suffix: str) -> bool:
    return (
        len(text) > len(prefix) + len(suffix)
        and text.startswith(prefix)
        and text.endswith(suffix)
        and _STRING.fullmatch(text, len(prefix), len(text) - len(suffix)) is not None
    )


def pack(texts: list[str]) -> str:
    """The JSON text of a call's chunks (each a chunk's JSON text), shape factored out.

    Falls back to a plain JSON array of the chunks when no shape repeats.
    """
    return Packer().finish(texts)


class Packer:
    """:func:`pack` of a stream whose texts arrive in blocks (:meth:`add`) before the
    rest at its end (:meth:`finish`); the same JSON text.

    A long stream is packed a block at a time while its texts are fresh, and keeps
    only its content literals (about a tenth of its texts) until the end: holding
    every text of a 50,000-chunk stream, then reading them all back at its end, cost
    the run twice what packing itself did (bench_pipeline).
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._shape: tuple[str, str] | None = None
        self._plain: bool | None = None  # None: not chosen yet (on the first block)

    def add(self, texts: list[str]) -> None:
        """Pack one block of the stream's texts, in order (the caller may reuse the list)."""
        if self._plain is None:
            self._choose(texts)
        part = ",".join(texts) if self._plain else self._block(texts)
        if part:
            self._parts.append(part)

    def finish(self, texts: list[str]) -> str:
        """The packed JSON text of every block, then ``texts``."""
        if texts or self._plain is None:
            self.add(texts)
        body = ",".join(self._parts)
        if self._shape is None:  # no shape repeats: a plain list
            return "[" + body + "]"
        prefix, suffix = self._shape
        return f'{{"prefix":{json.dumps(prefix)},"suffix":{json.dumps(suffix)},"chunks":[{body}]}}'

    def _choose(self, texts: list[str]) -> None:
        """The shape, from the stream's first texts (or none: a plain list)."""
        sample = texts[:_SAMPLE]
        shapes = {s for t in texts[:3] if (s := _shape(t)) is not None}
        fits = {shape: sum(_fits(t, *shape) for t in sample) for shape in shapes}
        best = max(fits, key=fits.__getitem__, default=None)
        self._plain = best is None or fits[best] < 2
        self._shape = None if self._plain else best

    def _block(self, texts: list[str]) -> str:
        """One block's parts, comma-separated: each chunk's literal if it fits, else its text."""
        assert self._shape is not None
        prefix, suffix = self._shape
        # The chunks that do not fit sit at the ends (the role chunk, the finish, the usage);
        # the stretch between them is taken whole when it all fits (:func:`_literals`).
        start, end = 0, len(texts)
        while start < end and not _fits(texts[start], prefix, suffix):
            start += 1
        while end > start and not _fits(texts[end - 1], prefix, suffix):
            end -= 1
        middle = _literals(texts[start:end], prefix, suffix)
        if middle is None:  # a chunk in between does not fit: one by one
            return ",".join([_part(t, prefix, suffix) for t in texts])
        # the chunks before and after the stretch do not fit: kept whole
        return ",".join([*texts[:start], middle, *texts[end:]] if middle else texts)


def _part(text: str, prefix: str, suffix: str) -> str:
    """What a packed chunk keeps: its content literal if it fits the shape, else its text."""
    return text[len(prefix) : len(text) - len(suffix)] if _fits(text, prefix, suffix) else text


#: One string literal with no raw newline (JSON allows none), unrolled for speed.
_LINE = r'"[^"\\\n]*(?:\\[^\n][^"\\\n]*)*"'
#: String literals, one per line.
_LITERAL_LINES = re.compile(f"{_LINE}(?:\n{_LINE})*")


def _literals(texts: list[str], prefix: str, suffix: str) -> str | None:
    """The content literals of ``texts``, comma-separated, if every one of them is
    ``prefix + literal + suffix``; else None.

    What the per-chunk match gives, in C-level passes over the whole stretch (the
    match per chunk was most of what packing cost): every text starts with
    ``prefix + '"'`` and ends with ``'"' + suffix``; the middles, one per line, hold
    exactly as many newlines as lines (so none has a raw newline of its own), and
    the lines are string literals, one each.
    """
    n, head, tail = len(texts), prefix + '"', '"' + suffix
    if not n:
        return ""
    if (
        not all(map(str.startswith, texts, repeat(head)))
        or not all(map(str.endswith, texts, repeat(tail)))
        or min(map(len, texts)) < len(head) + len(tail)
    ):
        return None
    middle = itemgetter(slice(len(prefix), -len(suffix) or None))
    lines = "\n".join(map(middle, texts))
    if lines.count("\n") != n - 1 or _LITERAL_LINES.fullmatch(lines) is None:
        return None
    return lines.replace("\n", ",")


def unpack(packed: Any) -> list[Any]:
    """The chunk objects :func:`pack` stored (a plain list is returned as it is)."""
    if isinstance(packed, list):
        return packed
    prefix, suffix = packed["prefix"], packed["suffix"]
    return [
        part if isinstance(part, dict) else json.loads(prefix + json.dumps(part) + suffix)
        for part in packed["chunks"]
    ]
