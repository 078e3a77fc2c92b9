"""Materializers for Python's built-in types.

Values that JSON represents exactly are stored as JSON in data.json (msgspec);
bytes as raw data.bin. Everything else these materializers are chosen for
(dicts with non-str keys, sets of tuples, nested arrays, subclasses such as
IntEnum or OrderedDict, NaN) is pickled into data.pkl by the same materializer,
so load returns exactly what was saved. The file name records the encoding.
"""

from __future__ import annotations

import math
import typing
from typing import Any

from cairn.artifact_stores.errors import ArtifactNotFoundError
from cairn.materializers.base import BaseMaterializer
from cairn.materializers.cloudpickle_materializer import dump_pickle, load_pickle

__all__ = ["BuiltInContainerMaterializer", "BuiltInMaterializer", "BytesMaterializer"]

JSON_FILENAME = "data.json"
PICKLE_FILENAME = "data.pkl"
BYTES_FILENAME = "data.bin"

_NONE_TYPE = type(None)
_JSON_LEAVES = frozenset({str, int, bool, _NONE_TYPE})  # JSON round-trips these exactly
_JSON_KINDS = _JSON_LEAVES | {float, list, dict}
_msgspec: Any = None


def _codec() -> Any:
    """msgspec, with msgspec.json loaded, imported on first use so importing stays cheap."""
    global _msgspec
    if _msgspec is None:
        import msgspec.json

        _msgspec = msgspec
    return _msgspec


def _is_plain(value: Any) -> bool:
    """Whether JSON encodes value so that decoding gives back an equal value of the same types."""
    kind = type(value)
    if kind in _JSON_LEAVES:
        return True
    if kind is float:
        return math.isfinite(value)  # NaN/inf would become null
    if kind is list:
        return _plain_items(value)
    if kind is dict:
        return all(type(key) is str for key in value) and _plain_items(value.values())
    return False


def _plain_items(items: Any) -> bool:
    kinds = set(map(type, items))  # one C-speed pass decides most large homogeneous containers
    if kinds <= _JSON_LEAVES:
        return True
    if not kinds <= _JSON_KINDS:
        return False
    if float in kinds and not all(math.isfinite(v) for v in items if type(v) is float):
        return False
    return all(_is_plain(v) for v in items if type(v) is list or type(v) is dict)


def _sort_key(value: Any) -> tuple[str, Any]:
    return type(value).__name__, value


class _JsonOrPickle(BaseMaterializer):
    """Shared save/load: JSON when it round-trips exactly, pickle otherwise."""

    def _write(self, data: Any, json_payload: Any, plain: bool) -> None:
        if plain:
            codec = _codec()
            try:
                blob = codec.json.encode(json_payload)
            except (codec.EncodeError, TypeError, ValueError, OverflowError):
                plain = False  # a value _is_plain let through is still stored, by pickle
            else:
                with self.artifact_store.open(self.path(JSON_FILENAME), "wb") as file:
                    file.write(blob)
                return
        dump_pickle(self.artifact_store, self.path(PICKLE_FILENAME), data)

    def _read(self) -> tuple[Any, bool]:
        """Return (value, True) from data.json, or (value, False) from data.pkl."""
        try:
            file = self.artifact_store.open(self.path(JSON_FILENAME), "rb")
        except ArtifactNotFoundError:
            return load_pickle(self.artifact_store, self.path(PICKLE_FILENAME)), False
        with file:
            return _codec().json.decode(file.read()), True


class BuiltInMaterializer(_JsonOrPickle):
    """bool, int, float, str and None. A str records its length as metadata."""

    ASSOCIATED_TYPES = (bool, int, float, str, _NONE_TYPE)

    def save(self, data: Any) -> None:
        self._write(data, data, type(data) in _JSON_LEAVES or _is_plain(data))

    def load(self, data_type: type) -> Any:
        return self._read()[0]

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        return {"length": len(data)} if isinstance(data, str) else {}


class BytesMaterializer(BaseMaterializer):
    """bytes and bytearray, raw in data.bin; subclasses are pickled. Records the length."""

    ASSOCIATED_TYPES = (bytes, bytearray)

    def save(self, data: Any) -> None:
        if type(data) is bytes or type(data) is bytearray:
            with self.artifact_store.open(self.path(BYTES_FILENAME), "wb") as file:
                file.write(data)
        else:
            dump_pickle(self.artifact_store, self.path(PICKLE_FILENAME), data)

    def load(self, data_type: type) -> Any:
        try:
            file = self.artifact_store.open(self.path(BYTES_FILENAME), "rb")
        except ArtifactNotFoundError:
            return load_pickle(self.artifact_store, self.path(PICKLE_FILENAME))
        with file:
            raw = file.read()
        return bytearray(raw) if data_type is bytearray else raw

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        return {"length": len(data)}


class BuiltInContainerMaterializer(_JsonOrPickle):
    """dict, list, tuple, set and frozenset. Records the length.

    JSON is used for exact dict/list/tuple/set/frozenset whose contents are
    plain JSON (str keys; str, int, float, bool, None, list, dict values).
    Sets are written sorted, so equal sets give equal files (and digests).
    load() restores the outer tuple/set/frozenset from data_type.
    """

    ASSOCIATED_TYPES = (dict, list, tuple, set, frozenset)

    def save(self, data: Any) -> None:
        kind = type(data)
        try:
            if kind is dict or kind is list:
                self._write(data, data, _is_plain(data))
            elif kind is tuple:
                self._write(data, data, _plain_items(data))
            elif (kind is set or kind is frozenset) and _plain_items(data):
                try:
                    ordered = sorted(data)
                except TypeError:  # mixed kinds, e.g. {1, "a"}: order by kind name first
                    ordered = sorted(data, key=_sort_key)
                self._write(data, ordered, True)
            else:
                self._write(data, None, False)
        except RecursionError:  # deeply nested or self-referencing: pickle copes with both
            self._write(data, None, False)

    def load(self, data_type: type) -> Any:
        value, from_json = self._read()
        if not from_json:
            return value
        outer = data_type if isinstance(data_type, type) else typing.get_origin(data_type)
        if outer is tuple or outer is set or outer is frozenset:
            return outer(value)
        return value

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        return {"length": len(data)}
