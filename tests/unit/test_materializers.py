"""Materializers: round trips, lookup, the pickle fallback and import hygiene."""

from __future__ import annotations

import collections
import enum
import math
import subprocess
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydantic
import pytest
from cairn.artifact_stores import LocalArtifactStore
from cairn.materializers import (
    BaseMaterializer,
    BuiltInContainerMaterializer,
    BuiltInMaterializer,
    BytesMaterializer,
    CloudpickleMaterializer,
    MaterializerError,
    MaterializerNotFoundError,
    NumpyMaterializer,
    PandasMaterializer,
    PickleFallbackWarning,
    PydanticMaterializer,
    materializer_by_name,
    materializer_for,
    qualified_name,
    registry,
)


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def round_trip(store: LocalArtifactStore, value: Any) -> tuple[Any, list[str]]:
    """Save value with the materializer lookup picks, load it back; return (value, files)."""
    data_type = type(value)
    uri = store.artifact_uri("output", str(uuid.uuid4()))
    materializer_for(data_type)(uri, store).save(value)
    return materializer_for(data_type)(uri, store).load(data_type), store.listdir(uri)


def assert_identical(loaded: Any, original: Any) -> None:
    assert type(loaded) is type(original)
    assert loaded == original
    if isinstance(original, (list, tuple)):
        for a, b in zip(loaded, original, strict=True):
            assert_identical(a, b)
    elif isinstance(original, dict):
        assert list(loaded) == list(original)  # key order and key types
        for key in original:
            assert_identical(loaded[key], original[key])


class Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "filename"),
    [
        (0, "data.json"),
        (-(2**80), "data.json"),
        (True, "data.json"),
        (False, "data.json"),
        (1.5, "data.json"),
        (-0.0, "data.json"),
        (float("inf"), "data.pkl"),
        ("", "data.json"),
        ("héllo wörld ✓ 🪨\n\x00", "data.json"),
        (None, "data.json"),
        (Color.RED, "data.pkl"),
        (b"", "data.bin"),
        (bytes(range(256)) * 4096, "data.bin"),
        (bytearray(b"abc"), "data.bin"),
        ({}, "data.json"),
        ([], "data.json"),
        ((), "data.json"),
        (set(), "data.json"),
        (frozenset(), "data.json"),
        ({"a": [1, 2.5, None, True], "b": {"c": {"d": []}}}, "data.json"),
        ([1, True, 1.0, "1", None], "data.json"),
        ((1, "a", [2, 3]), "data.json"),
        ({"b", "a", "c"}, "data.json"),
        ({1, "a", None}, "data.json"),
        (frozenset({3, 1}), "data.json"),
        ({1: "int key", "s": 2}, "data.pkl"),
        ([(1, 2), [3, 4]], "data.pkl"),
        (((1, 2), (3,)), "data.pkl"),
        ({(1, 2), (3, 4)}, "data.pkl"),
        ({"x": {1, 2}}, "data.pkl"),
        (collections.OrderedDict(a=1), "data.pkl"),
        (collections.defaultdict(list, a=[1]), "data.pkl"),
        ({"arr": [Color.RED]}, "data.pkl"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_builtin_round_trip(store: LocalArtifactStore, value: Any, filename: str) -> None:
    loaded, files = round_trip(store, value)
    assert files == [filename]
    assert_identical(loaded, value)


def test_nan_round_trips_through_pickle(store: LocalArtifactStore) -> None:
    loaded, files = round_trip(store, float("nan"))
    assert files == ["data.pkl"] and math.isnan(loaded)


def test_nan_inside_container_round_trips(store: LocalArtifactStore) -> None:
    loaded, files = round_trip(store, [float("nan")])
    assert files == ["data.pkl"] and type(loaded) is list and math.isnan(loaded[0])


def test_nested_numpy_inside_dict_falls_back_to_pickle(store: LocalArtifactStore) -> None:
    value = {"weights": np.arange(4.0), "name": "m"}
    loaded, files = round_trip(store, value)
    assert files == ["data.pkl"]
    np.testing.assert_array_equal(loaded["weights"], value["weights"])
    assert loaded["name"] == "m"


def test_self_referencing_list_round_trips(store: LocalArtifactStore) -> None:
    value: list[Any] = [1]
    value.append(value)
    loaded, files = round_trip(store, value)
    assert files == ["data.pkl"] and loaded[1] is loaded


def test_bool_is_not_confused_with_int(store: LocalArtifactStore) -> None:
    for value in (True, 1, [True, 1], {"t": True, "o": 1}):
        loaded, _ = round_trip(store, value)
        assert_identical(loaded, value)


def test_equal_sets_give_equal_digests(store: LocalArtifactStore) -> None:
    digests = set()
    for value in ({"b", "a", "c"}, {"c", "a", "b"}):
        uri = store.artifact_uri("s", str(uuid.uuid4()))
        BuiltInContainerMaterializer(uri, store).save(value)
        digests.add(store.digest(uri))
    assert len(digests) == 1


def test_builtin_metadata() -> None:
    assert BuiltInMaterializer("u", None).extract_metadata("héllo") == {"length": 5}  # type: ignore[arg-type]
    assert BuiltInMaterializer("u", None).extract_metadata(3) == {}  # type: ignore[arg-type]
    assert BytesMaterializer("u", None).extract_metadata(b"ab") == {"length": 2}  # type: ignore[arg-type]
    container = BuiltInContainerMaterializer("u", None)  # type: ignore[arg-type]
    assert container.extract_metadata({1: 2, 3: 4}) == {"length": 2}
    assert container.extract_metadata(set()) == {"length": 0}


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.int64).reshape(3, 4),
        np.linspace(0, 1, 7, dtype=np.float32),
        np.array([True, False]),
        np.array([1 + 2j], dtype=np.complex128),
        np.array(["a", "bcd"]),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
        np.zeros((0, 3), dtype=np.uint8),
        np.asfortranarray(np.arange(6).reshape(2, 3)),
        np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
    ],
    ids=lambda a: f"{a.dtype}-{a.shape}",
)
def test_numpy_round_trip(store: LocalArtifactStore, array: np.ndarray) -> None:
    assert materializer_for(type(array)) is NumpyMaterializer
    loaded, files = round_trip(store, array)
    assert files == ["array.npy"]
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)


def test_numpy_object_array_and_scalar(store: LocalArtifactStore) -> None:
    objects = np.array([{"a": 1}, None], dtype=object)
    loaded, files = round_trip(store, objects)
    assert files == ["array.pkl"] and loaded.dtype == object and list(loaded) == list(objects)
    scalar = np.float32(2.5)
    assert materializer_for(np.float32) is NumpyMaterializer  # before float in the MRO
    loaded, files = round_trip(store, scalar)
    assert files == ["array.npy"] and type(loaded) is np.float32 and loaded == scalar


def test_numpy_metadata() -> None:
    metadata = NumpyMaterializer("u", None).extract_metadata(np.zeros((2, 3), "f4"))  # type: ignore[arg-type]
    assert metadata == {"shape": (2, 3), "dtype": "float32"}
    assert type(metadata["dtype"]).__name__ == "DType"


def mixed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [1.5, np.nan, 3.0],
            "s": ["x", None, "z"],
            "b": [True, False, True],
            "cat": pd.Categorical(["u", "v", "u"]),
            "when": pd.to_datetime(["2020-01-01", None, "2021-06-01"]).tz_localize("UTC"),
            "nullable": pd.array([1, None, 3], dtype="Int64"),
        },
        index=pd.Index(["r1", "r2", "r3"], name="row"),
    )


@pytest.mark.parametrize(
    "frame",
    [
        mixed_frame(),
        pd.DataFrame({"a": [1, 2]}, index=pd.RangeIndex(10, 14, 2)),
        pd.DataFrame(np.arange(6).reshape(3, 2)),  # RangeIndex columns
        pd.DataFrame(
            {"v": [1, 2]}, index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", "n"])
        ),
        pd.DataFrame(),
    ],
    ids=["mixed", "range-index", "int-columns", "multiindex", "empty"],
)
def test_pandas_frame_round_trip(store: LocalArtifactStore, frame: pd.DataFrame) -> None:
    assert materializer_for(pd.DataFrame) is PandasMaterializer
    loaded, files = round_trip(store, frame)
    assert files == ["data.parquet"]
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)


@pytest.mark.parametrize(
    "series",
    [
        pd.Series([1, 2, 3], name="count"),
        pd.Series([1.0, None], name=None),
        pd.Series(["a", "b"], index=pd.Index([10, 20], name="id"), name=7),
    ],
    ids=["named", "unnamed", "int-name"],
)
def test_pandas_series_round_trip(store: LocalArtifactStore, series: pd.Series) -> None:
    assert materializer_for(pd.Series) is PandasMaterializer
    loaded, files = round_trip(store, series)
    assert files == ["data.parquet"]
    pd.testing.assert_series_equal(loaded, series, check_exact=True)


def test_pandas_unparquetable_frame_is_pickled(store: LocalArtifactStore) -> None:
    for frame in (pd.DataFrame({"a": [1, "x"]}), pd.DataFrame([[1, 2]], columns=["a", "a"])):
        loaded, files = round_trip(store, frame)
        assert files == ["data.pkl"]
        pd.testing.assert_frame_equal(loaded, frame)


def test_pandas_metadata() -> None:
    metadata = PandasMaterializer("u", None).extract_metadata(mixed_frame())  # type: ignore[arg-type]
    assert metadata["shape"] == (3, 7)
    assert metadata["columns"][:2] == ["i", "f"]
    assert metadata["dtype"]["i"] == "int64" and metadata["dtype"]["cat"] == "category"
    assert type(metadata["dtype"]["i"]).__name__ == "DType" and metadata["memory_size"] > 0


class Run(pydantic.BaseModel):
    name: str
    scores: list[float]
    tags: tuple[str, ...] = ()


def test_pydantic_round_trip(store: LocalArtifactStore) -> None:
    run = Run(name="r", scores=[0.5, 1.0], tags=("a",))
    assert materializer_for(Run) is PydanticMaterializer
    loaded, files = round_trip(store, run)
    assert files == ["data.json"] and loaded == run and type(loaded) is Run


def test_pydantic_load_without_the_model_class_says_so(store: LocalArtifactStore) -> None:
    uri = store.artifact_uri("run", str(uuid.uuid4()))
    PydanticMaterializer(uri, store).save(Run(name="r", scores=[]))
    with pytest.raises(MaterializerError, match="needs the pydantic model class"):
        PydanticMaterializer(uri, store).load(object)


class Opaque:
    def __init__(self, payload: Any) -> None:
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.payload == self.payload


def test_pickle_fallback_warns_once_per_type_and_round_trips(store: LocalArtifactStore) -> None:
    CloudpickleMaterializer._warned.discard(Opaque)
    assert materializer_for(Opaque) is CloudpickleMaterializer
    with pytest.warns(PickleFallbackWarning, match="Opaque") as record:
        loaded, files = round_trip(store, Opaque({1: 2}))
    assert files == ["artifact.pkl"] and loaded == Opaque({1: 2})
    message = str(record[0].message)
    assert "output_materializers" in message and "versions" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", PickleFallbackWarning)
        round_trip(store, Opaque(2))  # second value of the same type: no warning


def test_pickle_fallback_handles_local_classes(store: LocalArtifactStore) -> None:
    class Local:
        value = 3

    with pytest.warns(PickleFallbackWarning):
        loaded, _ = round_trip(store, Local())
    assert loaded.value == 3


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


def test_user_materializer_takes_over_its_type(store: LocalArtifactStore) -> None:
    class PointMaterializer(BaseMaterializer):
        ASSOCIATED_TYPES = (Point,)

        def save(self, data: Point) -> None:
            with self.artifact_store.open(self.path("point.txt"), "w") as file:
                file.write(f"{data.x},{data.y}")

        def load(self, data_type: type) -> Point:
            with self.artifact_store.open(self.path("point.txt"), "r") as file:
                return Point(*map(int, file.read().split(",")))

    try:
        assert materializer_for(Point) is PointMaterializer
        uri = store.artifact_uri("p", str(uuid.uuid4()))
        PointMaterializer(uri, store).save(Point(1, 2))
        assert store.listdir(uri) == ["point.txt"]
        loaded = PointMaterializer(uri, store).load(Point)
        assert (loaded.x, loaded.y) == (1, 2)
        assert materializer_by_name(qualified_name(PointMaterializer)) is PointMaterializer
    finally:
        registry.unregister(PointMaterializer)
    assert materializer_for(Point) is CloudpickleMaterializer


def test_user_materializer_beats_builtin_for_same_type() -> None:
    class MyDictMaterializer(BuiltInContainerMaterializer):
        ASSOCIATED_TYPES = (dict,)

    class MyFrameMaterializer(PandasMaterializer):
        ASSOCIATED_TYPES = (pd.DataFrame,)  # a real type against the built-in's dotted name

    try:
        assert materializer_for(dict) is MyDictMaterializer
        assert materializer_for(collections.OrderedDict) is MyDictMaterializer
        assert materializer_for(list) is BuiltInContainerMaterializer
        assert materializer_for(pd.DataFrame) is MyFrameMaterializer
    finally:
        registry.unregister(MyDictMaterializer)
        registry.unregister(MyFrameMaterializer)
    assert materializer_for(dict) is BuiltInContainerMaterializer
    assert materializer_for(pd.DataFrame) is PandasMaterializer


def test_inherited_associated_types_do_not_register() -> None:
    class Tweaked(PandasMaterializer):
        pass

    try:
        assert materializer_for(pd.DataFrame) is PandasMaterializer
    finally:
        registry.unregister(Tweaked)


class MyDict(dict[str, int]):
    pass


class MyFrame(pd.DataFrame):
    pass


@pytest.mark.parametrize(
    ("data_type", "expected"),
    [
        (MyDict, BuiltInContainerMaterializer),
        (collections.Counter, BuiltInContainerMaterializer),
        (MyFrame, PandasMaterializer),
        (bool, BuiltInMaterializer),
        (Color, BuiltInMaterializer),
        (type(None), BuiltInMaterializer),
        (bytearray, BytesMaterializer),
        (np.ndarray, NumpyMaterializer),
        (np.ma.MaskedArray, NumpyMaterializer),
        (list[int], BuiltInContainerMaterializer),
        (complex, CloudpickleMaterializer),
        (object, CloudpickleMaterializer),
    ],
    ids=lambda t: getattr(t, "__name__", repr(t)),
)
def test_materializer_for_walks_the_mro(data_type: type, expected: type) -> None:
    assert materializer_for(data_type) is expected
    assert materializer_for(data_type) is expected  # cached answer is the same


def test_subclass_values_round_trip_exactly(store: LocalArtifactStore) -> None:
    loaded, files = round_trip(store, MyDict(a=1))
    assert files == ["data.pkl"] and type(loaded) is MyDict and loaded == {"a": 1}
    masked = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])
    loaded, files = round_trip(store, masked)
    assert files == ["array.pkl"] and loaded.mask.tolist() == [False, True, False]


def test_materializer_by_name_imports_builtins() -> None:
    for cls in (BuiltInMaterializer, PandasMaterializer, CloudpickleMaterializer):
        assert materializer_by_name(qualified_name(cls)) is cls
    assert qualified_name(PandasMaterializer) == (
        "cairn.materializers.pandas_materializer.PandasMaterializer"
    )


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("no_such_package_xyz.Materializer", "no module"),
        ("cairn.materializers.builtin.NoSuchMaterializer", "has no 'NoSuchMaterializer'"),
        ("collections.OrderedDict", "not a BaseMaterializer subclass"),
        ("tests.unit.test_x.<locals>.M", "defined inside a function"),
        ("Materializer", "no module"),
    ],
)
def test_materializer_by_name_errors(name: str, match: str) -> None:
    with pytest.raises(MaterializerNotFoundError, match=match):
        materializer_by_name(name)


def test_qualified_name_rejects_instances() -> None:
    assert qualified_name(int) == "builtins.int"
    with pytest.raises(TypeError, match="takes a class"):
        qualified_name(3)  # type: ignore[arg-type]


def test_bad_materializer_definitions_are_rejected() -> None:
    with pytest.raises(MaterializerError, match="ASSOCIATED_ARTIFACT_TYPE"):

        class WrongKind(BaseMaterializer):
            ASSOCIATED_ARTIFACT_TYPE = "blob"

    with pytest.raises(MaterializerError, match="must be a tuple"):

        class NotATuple(BaseMaterializer):
            ASSOCIATED_TYPES = Point  # type: ignore[assignment]

    with pytest.raises(MaterializerError, match="dotted"):

        class Undotted(BaseMaterializer):
            ASSOCIATED_TYPES = ("DataFrame",)


def test_import_does_not_pull_heavy_libraries() -> None:
    code = (
        "import sys, cairn.materializers, cairn.artifact_stores\n"
        "heavy = ['numpy', 'pandas', 'pyarrow', 'pydantic', 'cloudpickle']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
