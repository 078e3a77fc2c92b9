"""The projectors' own bookkeeping: a checkpoint per projector name, and dead letters.

A projector commits its checkpoint (the last stream sequence it applied) in the same
transaction as its rows, and notifies :data:`CHECKPOINT_CHANNEL`, so readers waiting
for a sequence (read-your-writes) wake up. What it cannot project is kept in
``dead_letters`` with the reason.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from .connection import Queryable
from .read_model import Migration, ReadModel, record_to

_V1 = """
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
"""

#: No rows of its own to fold: the projector writes these tables itself (SQL below).
BOOKKEEPING = ReadModel("bookkeeping", migrations=[Migration(1, "read models", _V1)])

#: The channel the projector notifies on commit; payload ``<schema>:<projector>:<seq>``.
CHECKPOINT_CHANNEL = "cairn_checkpoint"

#: $1 projector name, $2 stream seq; moves the checkpoint forward only and notifies listeners.
CHECKPOINT_SQL = f"""
WITH saved AS (
    INSERT INTO projector_checkpoints AS c (name, last_seq, updated_at)
    VALUES ($1, $2, now())
    ON CONFLICT (name) DO UPDATE
        SET last_seq = GREATEST(c.last_seq, EXCLUDED.last_seq), updated_at = now()
    RETURNING last_seq
)
SELECT pg_notify('{CHECKPOINT_CHANNEL}', current_schema() || ':' || $1 || ':' || last_seq)
FROM saved
"""

#: $1 projector, $2 seq, $3 subject, $4 raw data, $5 reason.
DEAD_LETTER_SQL = """
INSERT INTO dead_letters (projector, seq, subject, data, reason)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (projector, seq) DO NOTHING
"""


class RecordedDeadLetter(msgspec.Struct, kw_only=True):
    """A message a projector could not project: where it was in the stream, and why."""

    seq: int
    subject: str
    data: bytes
    reason: str
    at: datetime


async def get_checkpoint(conn: Queryable, projector: str) -> int:
    """The last stream sequence ``projector`` committed, 0 if it has committed nothing."""
    seq = await conn.fetchval(
        "SELECT last_seq FROM projector_checkpoints WHERE name = $1", projector
    )
    return int(seq or 0)


async def list_dead_letters(conn: Queryable, projector: str) -> list[RecordedDeadLetter]:
    """What ``projector`` could not project, by stream sequence."""
    rows = await conn.fetch(
        "SELECT seq, subject, data, reason, at FROM dead_letters WHERE projector = $1 ORDER BY seq",
        projector,
    )
    return [record_to(RecordedDeadLetter, row) for row in rows]
