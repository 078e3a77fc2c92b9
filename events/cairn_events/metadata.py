"""Metadata events: key-value facts logged on a run, step run, artifact version or model version.

``metadata.logged`` is the one event of the family: every ``log_*_metadata`` call is one.
Values travel typed, as ``{"type": T, "value": V}`` (:data:`TypedValue`), so special
types, tuples and sets, and NaN and the infinities survive the round trip through JSON:

=============================  ============================================================
``str``, ``int``, ``bool``     the JSON value
``float``                      a JSON number; NaN and the infinities as "nan", "inf", "-inf"
``None``                       null
``Uri``, ``Path``, ``DType``   a string
``StorageSize``                an integer (bytes)
``list``, ``tuple``, ``set``   a JSON array of typed values
``dict``                       a JSON object of typed values (string keys); one whose values
                               are dicts is shown as cards
=============================  ============================================================
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import msgspec

from ._envelope import Event
from ._subjects import metadata_path

#: A value as the log holds it: ``{"type": MetadataType, "value": ...}``.
TypedValue = dict[str, Any]

#: The longest key, in characters.
MAX_KEY_CHARS = 255
#: The largest value of one key, as its typed JSON, in bytes.
MAX_VALUE_BYTES = 64 * 1024
#: How deeply containers may nest within one value.
MAX_DEPTH = 16
_SPECIAL_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class EntityKind(StrEnum):
    """What metadata can be about (the third token of its subject)."""

    RUN = "run"
    STEP_RUN = "step_run"
    ARTIFACT_VERSION = "artifact_version"
    MODEL_VERSION = "model_version"


class MetadataType(StrEnum):
    """A value's type as it is recorded: ZenML's ``MetadataTypeEnum`` names, and ``None``."""

    STRING = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    NONE = "None"
    LIST = "list"
    TUPLE = "tuple"
    SET = "set"
    DICT = "dict"
    URI = "Uri"
    PATH = "Path"
    DTYPE = "DType"
    STORAGE_SIZE = "StorageSize"


_STRINGS = frozenset({MetadataType.STRING, MetadataType.URI, MetadataType.PATH, MetadataType.DTYPE})
_SEQUENCES = frozenset({MetadataType.LIST, MetadataType.TUPLE, MetadataType.SET})
_TYPES = frozenset(MetadataType)


class MetadataLogged(Event, frozen=True, kw_only=True, tag="metadata.logged"):
    """Values were logged for keys of one entity (the newest value of a key is its value).

    ``step_run_id`` is the step run it was logged from (None: outside a step).
    """

    entity_kind: EntityKind
    entity_id: str
    values: dict[str, TypedValue]
    step_run_id: str | None = None

    def subject_path(self) -> str:
        return metadata_path(self.entity_kind, self.entity_id)


def key_problem(key: Any) -> str | None:
    """Why ``key`` cannot be a metadata key (a sentence's end), or None."""
    if not isinstance(key, str):
        return f"is a {type(key).__name__}; keys are strings"
    if not key:
        return "is empty"
    if len(key) > MAX_KEY_CHARS:
        return f"has {len(key)} characters; the limit is {MAX_KEY_CHARS}"
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        return "contains a control character"
    return None


def typed_value_problem(typed: Any, depth: int = 0) -> str | None:
    """Why ``typed`` is no well-formed :data:`TypedValue`, or None (a forged event's check)."""
    if depth > MAX_DEPTH:
        return f"nests deeper than {MAX_DEPTH} levels"
    if not isinstance(typed, dict) or set(typed) != {"type", "value"}:
        return 'is not {"type": ..., "value": ...}'
    kind, value = typed["type"], typed["value"]
    if kind not in _TYPES:
        return f"has the unknown type {kind!r}"
    if kind in _STRINGS:
        if not isinstance(value, str):
            return f"is a {kind} whose value is no string"
        return "contains a NUL character" if "\x00" in value else None
    if kind in (MetadataType.INT, MetadataType.STORAGE_SIZE):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"is an {kind} whose value is no integer"
    if kind == MetadataType.FLOAT:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok or value in _SPECIAL_FLOATS else "is a float whose value is no number"
    if kind == MetadataType.BOOL:
        return None if isinstance(value, bool) else "is a bool whose value is not true or false"
    if kind == MetadataType.NONE:
        return None if value is None else "is None whose value is not null"
    if kind in _SEQUENCES:
        if not isinstance(value, list):
            return f"is a {kind} whose value is no array"
        items: Any = value
    else:  # DICT
        if not isinstance(value, dict):
            return "is a dict whose value is no object"
        if any("\x00" in k for k in value):
            return "has a key containing a NUL character"
        items = value.values()
    for item in items:
        if (problem := typed_value_problem(item, depth + 1)) is not None:
            return problem
    return None


def float_of(value: Any) -> float:
    """A recorded float's value: a number, or "nan", "inf", "-inf"."""
    return _SPECIAL_FLOATS[value] if isinstance(value, str) else float(value)


def float_recorded(value: float) -> float | str:
    """How a float is recorded: itself if finite, else "nan", "inf" or "-inf"."""
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


_encoder = msgspec.json.Encoder()


def encoded_size(typed: TypedValue) -> int:
    """The size of ``typed`` as JSON, in bytes (what :data:`MAX_VALUE_BYTES` limits)."""
    return len(_encoder.encode(typed))
