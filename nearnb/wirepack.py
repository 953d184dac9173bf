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
    sample = texts[:_SAMPLE]
    shapes = {s for t in texts[:3] if (s := _shape(t)) is not None}
    fits = {shape: sum(_fits(t, *shape) for t in sample) for shape in shapes}
    best = max(fits, key=fits.__getitem__, default=None)
    if best is None or fits[best] < 2:
        return "[" + ",".join(texts) + "]"
    prefix, suffix = best
    # _fits and the slice in one C-level match per chunk
    whole = re.compile(f"{re.escape(prefix)}({_STRING.pattern}){re.escape(suffix)}", re.DOTALL)
    match = whole.fullmatch
    parts = [m[1] if (m := match(t)) is not None else t for t in texts]
    return (
        f'{{"prefix":{json.dumps(prefix)},"suffix":{json.dumps(suffix)},'
        f'"chunks":[{",".join(parts)}]}}'
    )


def unpack(packed: Any) -> list[Any]:
    """The chunk objects :func:`pack` stored (a plain list is returned as it is)."""
    if isinstance(packed, list):
        return packed
    prefix, suffix = packed["prefix"], packed["suffix"]
    return [
        part if isinstance(part, dict) else json.loads(prefix + json.dumps(part) + suffix)
        for part in packed["chunks"]
    ]
