"""Metadata values to and from their typed form on the log (see ``cairn_events.metadata``).

:func:`encode_metadata` checks and encodes what a ``log_*_metadata`` call was given, naming
the key of anything it cannot record; :func:`decode_value` gives the Python value back,
special types, tuples, sets and NaN included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cairn_events import MetadataType, TypedValue
from cairn_events.metadata import (
    MAX_DEPTH,
    MAX_VALUE_BYTES,
    encoded_size,
    float_of,
    float_recorded,
    key_problem,
)

from .metadata_types import DType, Path, StorageSize, Uri

#: What a value may be, for messages.
ACCEPTED = (
    "JSON values (str, int, float, bool, None, lists, dicts with str keys), tuples, sets, "
    "and cairn.metadata's Uri, Path, DType and StorageSize"
)
_STRING_TYPES: dict[type, MetadataType] = {
    str: MetadataType.STRING,
    Uri: MetadataType.URI,
    Path: MetadataType.PATH,
    DType: MetadataType.DTYPE,
}
_DECODE_STRINGS: dict[str, type] = {str(v): k for k, v in _STRING_TYPES.items()}


class MetadataValueError(ValueError):
    """A metadata value or key that cannot be recorded; the message names the key."""


def encode_metadata(metadata: Any) -> dict[str, TypedValue]:
    """``metadata`` (a mapping of str keys) as typed values; MetadataValueError naming the
    key of the first value that cannot be recorded."""
    if not isinstance(metadata, Mapping):
        raise MetadataValueError(
            f"metadata must be a dict of str keys to values, got {type(metadata).__name__}; "
            'e.g. log_artifact_metadata(metadata={"accuracy": 0.9})'
        )
    if not metadata:
        raise MetadataValueError("metadata is empty: give at least one key and its value")
    encoded = {}
    for key, value in metadata.items():
        if (problem := key_problem(key)) is not None:
            raise MetadataValueError(f"metadata key {key!r} {problem}")
        typed = encode_value(value, key)
        if (size := encoded_size(typed)) > MAX_VALUE_BYTES:
            raise MetadataValueError(
                f"metadata key {key!r}: its value is {size} bytes as JSON; the limit is "
                f"{MAX_VALUE_BYTES} bytes per key. Store large data as an artifact "
                "(save_artifact) and log its name or Uri instead."
            )
        encoded[key] = typed
    return encoded


def encode_value(value: Any, where: str, depth: int = 0) -> TypedValue:
    """One value as its typed form; ``where`` names it in errors (its key, ``key[0]``...)."""
    if depth > MAX_DEPTH:
        raise MetadataValueError(
            f"metadata key {where!r}: the value nests deeper than {MAX_DEPTH} levels "
            "(or contains itself)"
        )
    kind = type(value)
    if kind is bool:
        return {"type": MetadataType.BOOL, "value": value}
    if kind is str or kind in _STRING_TYPES:
        if "\x00" in value:
            raise MetadataValueError(
                f"metadata key {where!r}: the string contains a NUL character, which cannot be "
                "stored; remove it (or store bytes as an artifact)"
            )
        return {"type": _STRING_TYPES[kind], "value": str(value)}
    if kind is StorageSize:
        return {"type": MetadataType.STORAGE_SIZE, "value": int(value)}
    if kind is int:
        return {"type": MetadataType.INT, "value": value}
    if kind is float:
        return {"type": MetadataType.FLOAT, "value": float_recorded(value)}
    if value is None:
        return {"type": MetadataType.NONE, "value": None}
    if kind is list or kind is tuple:
        items = [encode_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
        return {"type": MetadataType.LIST if kind is list else MetadataType.TUPLE, "value": items}
    if kind is set or kind is frozenset:
        items = [encode_value(v, f"{where}{{}}", depth + 1) for v in value]
        items.sort(key=repr)  # one set, one record
        return {"type": MetadataType.SET, "value": items}
    if kind is dict:
        entries = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise MetadataValueError(
                    f"metadata key {where!r}: the dict has the key {k!r} of type "
                    f"{type(k).__name__}; dict keys must be str (JSON objects have string keys)"
                )
            entries[k] = encode_value(v, f"{where}[{k!r}]", depth + 1)
        return {"type": MetadataType.DICT, "value": entries}
    if kind.__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return encode_value(value.item(), where, depth)  # a numpy scalar: its Python value
    if isinstance(value, (str, int, float, list, tuple, dict, set, frozenset)):
        raise MetadataValueError(
            f"metadata key {where!r}: a {kind.__qualname__} (a subclass of "
            f"{kind.__mro__[1].__name__}) cannot be recorded as itself; convert it, e.g. "
            f"{kind.__mro__[1].__name__}(value)"
        )
    raise MetadataValueError(
        f"metadata key {where!r}: a value of type {kind.__module__}.{kind.__qualname__} cannot be "
        f"recorded; give {ACCEPTED}"
        + (" (an array: .tolist())" if hasattr(value, "tolist") else "")
    )


def decode_value(kind: str, value: Any) -> Any:
    """The Python value of a typed value's ``type`` and ``value``."""
    if kind in _DECODE_STRINGS:
        return _DECODE_STRINGS[kind](value)
    if kind == MetadataType.FLOAT:
        return float_of(value)
    if kind == MetadataType.STORAGE_SIZE:
        return StorageSize(value)
    if kind in (MetadataType.LIST, MetadataType.TUPLE, MetadataType.SET):
        items = [decode_value(item["type"], item["value"]) for item in value]
        if kind == MetadataType.TUPLE:
            return tuple(items)
        return set(items) if kind == MetadataType.SET else items
    if kind == MetadataType.DICT:
        return {k: decode_value(item["type"], item["value"]) for k, item in value.items()}
    return value  # int, bool, None
