"""Ids the read models derive or match: ids from names, and what may begin an id.

Artifacts and pipelines are names in the events; their ids are derived from the name,
so a replay (or another installation) derives the same ones. A user may give the start
of any id (:func:`id_prefix`), as in ZenML.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, TypeVar

import msgspec

from .connection import Queryable
from .read_model import record_to

#: The fewest hex digits an id prefix needs: shorter strings are names only.
MIN_ID_PREFIX = 4
_UUID_SHAPE = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
_HEX = re.compile(r"[0-9a-f]*")
# These namespaces are fixed forever.
_ARTIFACT_IDS = uuid.UUID("c6a61954-12a0-4105-abd6-616c2f9fbb80")
_PIPELINE_IDS = uuid.UUID("fb3d5d84-be05-4e55-af57-b70cdf927dbb")


def artifact_id(name: str) -> str:
    """The id of the artifact ``name``: the same for every replay of the same events."""
    return str(uuid.uuid5(_ARTIFACT_IDS, name))


def pipeline_id(name: str) -> str:
    """The id of the pipeline ``name``: the same for every replay of the same events."""
    return str(uuid.uuid5(_PIPELINE_IDS, name))


def is_uuid(text: str) -> bool:
    """Whether ``text`` is a whole UUID in its usual 8-4-4-4-12 form (any case)."""
    return len(text) == len(_UUID_SHAPE) and id_prefix(text) is not None


def id_prefix(text: str) -> str | None:
    """``text`` lowercased if it can begin a UUID and has ``MIN_ID_PREFIX`` hex digits; else None.

    Dashes must stand where a UUID has them, as in ``str(uuid)``.
    """
    prefix = text.lower()
    if not MIN_ID_PREFIX <= len(prefix) <= len(_UUID_SHAPE):
        return None
    for char, shape in zip(prefix, _UUID_SHAPE, strict=False):
        if (char == "-") != (shape == "-"):
            return None
    return prefix if _HEX.fullmatch(prefix.replace("-", "")) else None


M = TypeVar("M", bound=msgspec.Struct)


async def by_id_prefix(
    conn: Queryable, match: type[M], select: str, table: str, prefix: str, limit: int
) -> tuple[int, list[M]]:
    """How many rows of ``table`` have an id starting with ``prefix``, and the first ``limit``
    (by id) as ``match`` Structs, from the columns ``select`` names."""
    if id_prefix(prefix) != prefix:
        raise ValueError(f"not an id prefix (see id_prefix): {prefix!r}")
    # LIKE 'p%' is a range scan of the primary key under the C collation (the local stack's).
    rows: list[Any] = await conn.fetch(
        f"{select}, count(*) OVER () AS total FROM {table} WHERE id LIKE $1 ORDER BY id LIMIT $2",
        prefix + "%",
        limit,
    )
    total = int(rows[0]["total"]) if rows else 0
    return total, [record_to(match, row) for row in rows]
