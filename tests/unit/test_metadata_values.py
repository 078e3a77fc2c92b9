"""Metadata values: typed encoding round trips, and the fold's checks of forged values."""

from __future__ import annotations

import math
from typing import Any

import pytest
from cairn.metadata import DType, Path, StorageSize, Uri
from cairn.metadata.values import MetadataValueError, decode_value, encode_metadata
from cairn_events import EntityKind, MetadataLogged, decode, encode
from cairn_projections import fold
from cairn_projections.read_model import FoldError

ROUND_TRIPS: list[Any] = [
    "text",
    "",
    0,
    -(2**70),
    1.5,
    True,
    None,
    Uri("s3://b/k"),
    Path("/p"),
    DType("float32"),
    StorageSize(10),
    [1, "a", [2.5]],
    (1, (2, 3)),
    {1, 2, 3},
    {"a": {"b": StorageSize(1)}},
    [math.inf, -math.inf],
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=repr)
def test_a_value_reads_back_as_itself_through_an_event(value: Any) -> None:
    event = MetadataLogged(
        entity_kind=EntityKind.RUN, entity_id="r", values=encode_metadata({"k": value})
    )
    again = decode(encode(event))
    assert isinstance(again, MetadataLogged)
    typed = again.values["k"]
    back = decode_value(typed["type"], typed["value"])
    assert back == value and type(back) is type(value)
    fold(again)  # and the projector takes it


def test_nan_survives() -> None:
    typed = encode_metadata({"k": math.nan})["k"]
    assert math.isnan(decode_value(typed["type"], typed["value"]))


def test_dtype_takes_numpy_dtypes_and_types() -> None:
    import numpy as np

    assert DType(np.dtype("int64")) == "int64" and DType(int) == "int"


def test_a_subclass_of_a_json_type_is_refused_not_changed() -> None:
    class Score(float):
        pass

    with pytest.raises(MetadataValueError, match="a subclass of float"):
        encode_metadata({"k": Score(1.0)})


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ({"type": "bogus", "value": 1}, "unknown type"),
        ({"type": "int", "value": "1"}, "no integer"),
        ({"type": "int", "value": True}, "no integer"),
        ({"type": "float", "value": "NaN!"}, "no number"),
        ({"type": "str", "value": "a\x00b"}, "NUL"),
        ({"type": "list", "value": [{"type": "int"}]}, 'not {"type"'),
        ({"type": "dict", "value": []}, "no object"),
        ({"value": 1}, 'not {"type"'),
        ({"type": "StorageSize", "value": 1.5}, "no integer"),
    ],
)
def test_a_forged_value_cannot_be_folded(typed: Any, problem: str) -> None:
    event = MetadataLogged(entity_kind=EntityKind.RUN, entity_id="r", values={"k": typed})
    with pytest.raises(FoldError, match=problem):
        fold(event)


def test_a_forged_key_or_empty_entity_cannot_be_folded() -> None:
    good = {"type": "int", "value": 1}
    with pytest.raises(FoldError, match="control character"):
        fold(MetadataLogged(entity_kind=EntityKind.RUN, entity_id="r", values={"a\nb": good}))
    with pytest.raises(FoldError, match="empty entity_id"):
        fold(MetadataLogged(entity_kind=EntityKind.RUN, entity_id="", values={"a": good}))
    huge = {"type": "str", "value": "x" * 70_000}
    with pytest.raises(FoldError, match="over 65536 bytes"):
        fold(MetadataLogged(entity_kind=EntityKind.RUN, entity_id="r", values={"a": huge}))
