"""The artifact versions read model: one immutable row per claimed version of a name.

"Latest" is the newest claim (as in ZenML): the highest ``claim_order``; versions
recorded before claim_order existed carry 0 and fall back to the highest number.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import msgspec
from cairn_events import ArtifactMaterialized, ArtifactVersionRecord, is_numeric_version

from .connection import Queryable
from .ids import artifact_id, by_id_prefix
from .read_model import FoldError, Migration, ReadModel, Row, record_to, require


class ArtifactVersionRow(ArtifactVersionRecord, Row, kw_only=True):
    """A version as its row holds it: the record's fields plus how it was numbered.

    ``numeric_version`` is the version as a number (None for a label), ``numeric_count``
    the highest number of the name when it was claimed, ``claim_order`` its place among
    the name's claims.
    """

    TABLE: ClassVar[str] = "artifact_versions"
    IMMUTABLE: ClassVar[bool] = True

    numeric_version: int | None
    numeric_count: int
    claim_order: int


_V1 = """
CREATE TABLE artifact_versions (
    id                   text PRIMARY KEY,
    name                 text NOT NULL,
    version              text NOT NULL,
    numeric_version      bigint,
    numeric_count        bigint NOT NULL,
    uri                  text NOT NULL,
    type                 text NOT NULL,
    data_type            text NOT NULL,
    materializer         text NOT NULL,
    content_hash         text NOT NULL,
    size                 bigint NOT NULL,
    created_at           timestamptz NOT NULL,
    tags                 jsonb NOT NULL DEFAULT '[]',
    producer_run_id      text,
    producer_step_run_id text,
    output_name          text,
    visualizations       jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT artifact_versions_name_version UNIQUE (name, version)
);
-- "latest" = highest numbered version, else the newest: one index probe.
CREATE INDEX artifact_versions_latest
    ON artifact_versions (name, numeric_version DESC NULLS LAST, created_at DESC, id DESC);
"""

_V2 = """
ALTER TABLE artifact_versions ADD COLUMN claim_order bigint NOT NULL DEFAULT 0;
DROP INDEX artifact_versions_latest;
-- "latest" = the newest claim (older rows: 0, then the highest number): one index probe.
CREATE INDEX artifact_versions_latest ON artifact_versions
    (name, claim_order DESC, numeric_version DESC NULLS LAST, created_at DESC, id DESC);
"""

# The lineage index's change cursor, as on the step runs' tables (see runs._V3, applied
# before this piece): versions are immutable, so the insert's default is all it takes.
_V3 = """
ALTER TABLE artifact_versions
    ADD COLUMN row_xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint;
CREATE INDEX artifact_versions_by_row_xid ON artifact_versions (row_xid);
"""

ARTIFACT_VERSIONS = ReadModel(
    "artifact_versions",
    rows=[ArtifactVersionRow],
    migrations=[
        Migration(1, "read models", _V1),
        Migration(2, "latest is the newest claim", _V2),
        Migration(3, "caching and the lineage index", _V3),
    ],
)

#: Postgres bigint: larger version numbers or sizes cannot be stored.
_BIGINT_MAX = 2**63 - 1


@ARTIFACT_VERSIONS.folds(ArtifactMaterialized)
def fold_artifact_materialized(event: ArtifactMaterialized) -> list[Row]:
    require(event, ("artifact_version_id", "name", "version"))
    numeric_version = None
    if is_numeric_version(event.version):
        # the length first: int() of thousands of digits is slow, and refused by Python
        if len(event.version) > len(str(_BIGINT_MAX)) or int(event.version) > _BIGINT_MAX:
            raise FoldError(
                f"artifact.materialized {event.event_id}: version {event.version[:40]} too large"
            )
        numeric_version = int(event.version)
    if numeric_version is not None and numeric_version > event.numeric_count:
        raise FoldError(
            f"artifact.materialized {event.event_id}: version {event.version} of "
            f"{event.name!r} exceeds its numeric_count {event.numeric_count}, which "
            f"is the highest version number of the name including this one"
        )
    counts = (event.size, event.numeric_count, event.claim_order)
    if not all(0 <= count <= _BIGINT_MAX for count in counts):
        raise FoldError(
            f"artifact.materialized {event.event_id}: size {event.size}, numeric_count "
            f"{event.numeric_count} or claim_order {event.claim_order} out of range"
        )
    return [
        ArtifactVersionRow(
            **event.record(),
            numeric_version=numeric_version,
            numeric_count=event.numeric_count,
            claim_order=event.claim_order,
        )
    ]


# -- queries ----------------------------------------------------------------------------

#: The columns of a version, qualified by ``av``: for the queries of other read models too.
VERSION_COLUMNS = ", ".join(f"av.{c}" for c in ArtifactVersionRow.__struct_fields__)
# the newest claim (as in ZenML); versions recorded before claim_order: the highest number
_LATEST_ORDER = (
    "av.claim_order DESC, av.numeric_version DESC NULLS LAST, av.created_at DESC, av.id DESC"
)


class ArtifactSummary(msgspec.Struct, kw_only=True):
    """One artifact name: how many versions it has and its latest."""

    name: str
    version_count: int
    latest: ArtifactVersionRow

    @property
    def id(self) -> str:
        return artifact_id(self.name)

    @property
    def latest_version(self) -> str:
        return self.latest.version


class ArtifactWithVersions(msgspec.Struct, kw_only=True):
    """An artifact name with every version, keyed by version, oldest claim first."""

    name: str
    versions: dict[str, ArtifactVersionRow]
    latest: ArtifactVersionRow

    @property
    def id(self) -> str:
        return artifact_id(self.name)

    @property
    def version_count(self) -> int:
        return len(self.versions)

    @property
    def created_at(self) -> datetime:
        """When its first version was stored."""
        return next(iter(self.versions.values())).created_at

    @property
    def updated_at(self) -> datetime:
        """When its newest version was stored."""
        return max(v.created_at for v in self.versions.values())


class VersionMatch(msgspec.Struct, kw_only=True):
    """A version whose id matched a prefix: enough to name it in a message."""

    id: str
    name: str
    version: str


async def get_artifact_version(
    conn: Queryable, artifact_version_id: str
) -> ArtifactVersionRow | None:
    row = await conn.fetchrow(
        f"SELECT {VERSION_COLUMNS} FROM artifact_versions av WHERE av.id = $1", artifact_version_id
    )
    return None if row is None else record_to(ArtifactVersionRow, row)


async def get_artifact_version_by_name(
    conn: Queryable, name: str, version: str
) -> ArtifactVersionRow | None:
    row = await conn.fetchrow(
        f"SELECT {VERSION_COLUMNS} FROM artifact_versions av "
        "WHERE av.name = $1 AND av.version = $2",
        name,
        version,
    )
    return None if row is None else record_to(ArtifactVersionRow, row)


async def get_latest_artifact_version(conn: Queryable, name: str) -> ArtifactVersionRow | None:
    """The newest claimed version of ``name`` (as in ZenML); one index probe."""
    row = await conn.fetchrow(
        f"SELECT {VERSION_COLUMNS} FROM artifact_versions av WHERE av.name = $1 "
        f"ORDER BY {_LATEST_ORDER} LIMIT 1",
        name,
    )
    return None if row is None else record_to(ArtifactVersionRow, row)


async def list_artifact_versions(
    conn: Queryable, name: str, *, limit: int | None = None, offset: int = 0
) -> list[ArtifactVersionRow]:
    """The versions of ``name`` oldest claim first (empty if there is no such name)."""
    rows = await conn.fetch(
        f"SELECT {VERSION_COLUMNS} FROM artifact_versions av WHERE av.name = $1 "
        "ORDER BY av.claim_order, av.created_at, av.id LIMIT $2 OFFSET $3",
        name,
        limit,
        offset,
    )
    return [record_to(ArtifactVersionRow, row) for row in rows]


async def list_artifact_names(conn: Queryable) -> list[str]:
    """Every artifact name, sorted."""
    rows = await conn.fetch("SELECT DISTINCT name FROM artifact_versions ORDER BY name")
    return [str(row["name"]) for row in rows]


async def list_artifacts(
    conn: Queryable, *, limit: int | None = None, offset: int = 0
) -> list[ArtifactSummary]:
    """Artifact names sorted, each with its version count and latest version."""
    rows = await conn.fetch(
        f"""
        SELECT n.version_count, {VERSION_COLUMNS}
        FROM (SELECT name, count(*) AS version_count FROM artifact_versions
              GROUP BY name ORDER BY name LIMIT $1 OFFSET $2) n
        CROSS JOIN LATERAL (SELECT * FROM artifact_versions av WHERE av.name = n.name
                            ORDER BY {_LATEST_ORDER} LIMIT 1) av
        ORDER BY n.name
        """,
        limit,
        offset,
    )
    return [
        ArtifactSummary(
            name=row["name"],
            version_count=int(row["version_count"]),
            latest=record_to(ArtifactVersionRow, row),
        )
        for row in rows
    ]


async def get_artifact(conn: Queryable, name: str) -> ArtifactWithVersions | None:
    """The artifact ``name`` with every version; or None."""
    versions = await list_artifact_versions(conn, name)
    latest = await get_latest_artifact_version(conn, name) if versions else None
    if latest is None:
        return None
    return ArtifactWithVersions(name=name, versions={v.version: v for v in versions}, latest=latest)


async def find_artifact_versions_by_id_prefix(
    conn: Queryable, prefix: str, *, limit: int = 10
) -> tuple[int, list[VersionMatch]]:
    """How many versions have an id starting with ``prefix``, and the first ``limit``."""
    return await by_id_prefix(
        conn, VersionMatch, "SELECT id, name, version", "artifact_versions", prefix, limit
    )
