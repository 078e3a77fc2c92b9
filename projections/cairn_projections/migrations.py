"""The read-model schema as an ordered list of migrations.

``migrate(conn, schema)`` creates ``schema`` if needed and applies the
migrations it has not seen yet, in one transaction, under an advisory lock, so
several processes may call it at once. Applied versions are recorded in
``<schema>.schema_migrations``. A migration, once released, is never edited:
changes are new migrations appended to ``MIGRATIONS``.

The tables hold only what the events say (plus the projector's own
bookkeeping: checkpoints and dead letters), so a replay rebuilds them exactly.
There are no foreign keys: events may arrive in any order (a step's outputs
before the versions they name), and every write is an upsert.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from .connection import Migratable, quote_ident


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "read models",
        """
CREATE TABLE pipeline_runs (
    id            text PRIMARY KEY,
    name          text,
    pipeline_name text,
    parameters    jsonb NOT NULL DEFAULT '{}',
    substitutions jsonb NOT NULL DEFAULT '{}',
    enable_cache  boolean,
    step_names    jsonb NOT NULL DEFAULT '[]',
    started_at    timestamptz,
    outcome       text,
    finished_at   timestamptz,
    duration_s    double precision,
    error         text,
    failed_step   text,
    status        text GENERATED ALWAYS AS (COALESCE(outcome, 'running')) STORED
) WITH (fillfactor = 70);
CREATE INDEX pipeline_runs_newest ON pipeline_runs (started_at DESC NULLS LAST, id DESC);
CREATE INDEX pipeline_runs_by_pipeline
    ON pipeline_runs (pipeline_name, started_at DESC NULLS LAST, id DESC);
CREATE INDEX pipeline_runs_by_name ON pipeline_runs (name);

CREATE TABLE step_runs (
    id             text PRIMARY KEY,
    run_id         text NOT NULL,
    name           text NOT NULL,
    function       text,
    parameters     jsonb NOT NULL DEFAULT '{}',
    substitutions  jsonb NOT NULL DEFAULT '{}',
    enable_cache   boolean,
    upstream_steps jsonb NOT NULL DEFAULT '[]',
    started_at     timestamptz,
    outcome        text,
    finished_at    timestamptz,
    duration_s     double precision,
    error_type     text,
    error_message  text,
    traceback      text,
    status         text GENERATED ALWAYS AS (COALESCE(outcome, 'running')) STORED
) WITH (fillfactor = 70);
CREATE INDEX step_runs_by_run ON step_runs (run_id);

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

CREATE TABLE step_inputs (
    step_run_id         text NOT NULL,
    key                 text NOT NULL,
    artifact_version_id text NOT NULL,
    position            integer NOT NULL DEFAULT 0,
    PRIMARY KEY (step_run_id, key)
);
CREATE INDEX step_inputs_by_artifact ON step_inputs (artifact_version_id);

CREATE TABLE step_outputs (
    step_run_id         text NOT NULL,
    key                 text NOT NULL,
    artifact_version_id text NOT NULL,
    position            integer NOT NULL DEFAULT 0,
    PRIMARY KEY (step_run_id, key)
);
CREATE INDEX step_outputs_by_artifact ON step_outputs (artifact_version_id);

CREATE TABLE projector_checkpoints (
    name       text PRIMARY KEY,
    last_seq   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dead_letters (
    projector text NOT NULL,
    seq       bigint NOT NULL,
    subject   text NOT NULL,
    data      bytea NOT NULL,
    reason    text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projector, seq)
);
""",
    ),
    Migration(
        2,
        "latest is the newest claim",
        """
ALTER TABLE artifact_versions ADD COLUMN claim_order bigint NOT NULL DEFAULT 0;
DROP INDEX artifact_versions_latest;
-- "latest" = the newest claim (older rows: 0, then the highest number): one index probe.
CREATE INDEX artifact_versions_latest ON artifact_versions
    (name, claim_order DESC, numeric_version DESC NULLS LAST, created_at DESC, id DESC);
""",
    ),
]


class MigrationError(RuntimeError):
    """The database holds migrations this code does not know (it is older than the schema)."""


def _lock_key(schema: str) -> int:
    digest = hashlib.blake2b(f"cairn.migrate:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def migrate(conn: Migratable, schema: str = "public") -> list[int]:
    """Bring ``schema`` up to date; returns the versions applied now (empty if none).

    Safe to call from several processes at once: they serialise on an advisory
    lock and all but the first find nothing to do.
    """
    qschema = quote_ident(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(schema))
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {qschema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {qschema}.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch(f"SELECT version FROM {qschema}.schema_migrations")
        done = {int(row["version"]) for row in rows}
        known = {m.version for m in MIGRATIONS}
        if unknown := sorted(done - known):
            raise MigrationError(
                f"schema {schema!r} has migrations {unknown} that this version of cairn "
                f"does not know; upgrade cairn or use a fresh schema"
            )
        # SET LOCAL: the migration SQL is unqualified; the setting ends with the transaction.
        await conn.execute(f"SET LOCAL search_path TO {qschema}")
        applied = []
        for migration in sorted(MIGRATIONS):
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                f"INSERT INTO {qschema}.schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
        return applied
