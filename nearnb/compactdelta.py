"""Text deltas kept compact until someone reads them as a dict.

A streamed run makes one ``thread.message.delta`` per chunk, tens of
thousands a run, and keeps every one in its log. As the usual dict
(``{"id", "object", "delta": {"content": [{"index", "type", "text":
{"value"}}]}}``) each is four nested containers that the garbage collector
scans on every full collection for as long as the run is kept: in a fast run
that scanning cost about a quarter of the whole pipeline. Compact, it is a
plain tuple of two strings and an int, which the collector stops tracking
(only an exact tuple is untracked: the event keeps ``tuple(delta)``, not the
:class:`CompactDelta` a producer hands over).

:class:`LazyDataModel` is the part of :class:`~nearnb.events.Event` that
makes this invisible: an event built from a :class:`CompactDelta` keeps it in
pydantic's private slot (which pydantic itself only sets to a dict or None)
and has no ``data`` in its ``__dict__`` until the first read of
``event.data`` (or a dump, ``==``, ``repr``, a copy, pickling, iteration),
which builds exactly the dict :func:`message_delta` builds; from then on the
event is an ordinary one. Consumers that know the compact form skip the dict
altogether: the store encodes it straight to the same JSON
(:meth:`LazyDataModel.data_json`) and views fold its text
(:attr:`LazyDataModel.text_delta`).
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _json_str  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel

#: ``json.dumps(..., separators=...)`` builds a new encoder per call; this is built once.
compact_json = json.JSONEncoder(separators=(",", ":")).encode


def message_delta(message_id: str, text: str, index: int = 0) -> dict[str, Any]:
    """The ``data`` of a ``thread.message.delta`` carrying one text chunk."""
    return {
        "id": message_id,
        "object": "thread.message.delta",
        "delta": {"content": [{"index": index, "type": "text", "text": {"value": text}}]},
    }


class CompactDelta(NamedTuple):
    """A ``thread.message.delta`` carrying one text chunk, before it is a dict."""

    message_id: str
    text: str
    index: int = 0

    def as_data(self) -> dict[str, Any]:
        """The ``data`` dict, exactly as :func:`message_delta` builds it."""
        return message_delta(self.message_id, self.text, self.index)

    def to_json(self) -> str:
        """``compact_json(self.as_data())``, byte for byte, without building the dict."""
        return delta_json(*self)


def delta_json(message_id: str, text: str, index: int = 0) -> str:
    """``compact_json(message_delta(...))``, byte for byte, without building the dict."""
    return (
        f'{{"id":{_json_str(message_id)},"object":"thread.message.delta",'
        f'"delta":{{"content":[{{"index":{int(index)},"type":"text",'
        f'"text":{{"value":{_json_str(text)}}}}}]}}}}'
    )


#: What follows the text literal in :func:`delta_json`.
DELTA_JSON_TAIL = "}}]}}"


def delta_json_head(message_id: str, index: int = 0) -> str:
    """What precedes the text literal in :func:`delta_json`: for many deltas of one message,
    ``head + encode_basestring_ascii(text) + DELTA_JSON_TAIL`` encodes only the text."""
    return delta_json(message_id, "", index)[: -len(DELTA_JSON_TAIL) - 2]


class LazyDataModel(BaseModel):
    """A frozen model with a ``data`` field that may be held as a :class:`CompactDelta`.

    Pydantic reads ``__dict__`` directly when it dumps, compares, copies,
    pickles, iterates or prints a model, so each of those first makes the
    model whole (:meth:`_whole`); a plain attribute read of ``data`` reaches
    :meth:`__getattr__` only while ``data`` is missing from ``__dict__``.
    """

    @property
    def text_delta(self) -> tuple[str, str, int] | None:
        """``(message_id, text, index)`` of a compact text delta not yet read as a
        dict (equal to its :class:`CompactDelta`), else None."""
        packed = self.__pydantic_private__
        return packed if type(packed) is tuple else None

    def data_json(self) -> str:
        """``data`` as compact JSON (what the store and the bus keep); a compact
        delta is encoded without building its dict."""
        packed = self.__pydantic_private__
        if type(packed) is tuple:
            return delta_json(*packed)
        return compact_json(self.data)  # type: ignore[attr-defined]

    def _whole(self) -> LazyDataModel:
        """Build ``data`` from the compact form, in field order (idempotent)."""
        packed = self.__pydantic_private__
        if type(packed) is tuple:
            held = self.__dict__
            data = message_delta(*packed)
            whole = {n: data if n == "data" else held[n] for n in type(self).model_fields}
            object.__setattr__(self, "__dict__", whole)
            object.__setattr__(self, "__pydantic_private__", None)
        return self

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            if name == "data" and type(self.__pydantic_private__) is tuple:
                return self._whole().__dict__["data"]
            return super().__getattr__(name)

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        return super(LazyDataModel, self._whole()).model_dump(**kwargs)

    def model_dump_json(self, **kwargs: Any) -> str:
        return super(LazyDataModel, self._whole()).model_dump_json(**kwargs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyDataModel):
            other._whole()
        return super(LazyDataModel, self._whole()).__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # ``data`` is a dict: never hashable

    def __copy__(self) -> LazyDataModel:
        copied = super(LazyDataModel, self._whole()).__copy__()
        object.__setattr__(copied, "__pydantic_fields_set__", set(self.__pydantic_fields_set__))
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> LazyDataModel:
        copied = super(LazyDataModel, self._whole()).__deepcopy__(memo)
        object.__setattr__(copied, "__pydantic_fields_set__", set(self.__pydantic_fields_set__))
        return copied

    def __getstate__(self) -> dict[Any, Any]:
        return super(LazyDataModel, self._whole()).__getstate__()

    def __iter__(self) -> Any:
        return super(LazyDataModel, self._whole()).__iter__()

    def __repr_args__(self) -> Any:
        return super(LazyDataModel, self._whole()).__repr_args__()
