"""The special metadata types (ZenML's ``zenml.metadata.metadata_types``).

Each is its base type (a ``str`` or an ``int``) with a name that says what it holds, so
it is used like one and reads back as itself: ``run_metadata["size"].value`` is a
``StorageSize`` again.
"""

from __future__ import annotations

from typing import Any, Union

from cairn_events import MetadataType as MetadataTypeEnum

__all__ = ["DType", "MetadataType", "MetadataTypeEnum", "Path", "StorageSize", "Uri"]


class Uri(str):
    """A URI, e.g. ``Uri("s3://bucket/data.csv")``."""

    __slots__ = ()


class Path(str):
    """A filesystem path, e.g. ``Path("/scripts/preprocess.py")`` (a ``str``, not pathlib's)."""

    __slots__ = ()


class DType(str):
    """A data type's name: ``DType("int64")``, ``DType(numpy.dtype("float32"))``, ``DType(int)``."""

    __slots__ = ()

    def __new__(cls, value: Any = "") -> DType:
        if isinstance(value, type):
            value = value.__name__
        return super().__new__(cls, value if isinstance(value, str) else str(value))


class StorageSize(int):
    """A size in bytes, e.g. ``StorageSize(2_500_000)``."""

    __slots__ = ()


#: What a metadata value may be (nested lists, tuples, sets and dicts of these too).
MetadataType = Union[  # noqa: UP007
    str,
    int,
    float,
    bool,
    None,
    list[Any],
    tuple[Any, ...],
    set[Any],
    dict[str, Any],
    Uri,
    Path,
    DType,
    StorageSize,
]
