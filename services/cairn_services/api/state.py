"""What the endpoints share for the app's lifetime."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from .checkpoint import CheckpointWatcher


@dataclass(frozen=True)
class ApiState:
    """The pool over the read models, the projector's checkpoint, and the read-your-writes bound."""

    pool: asyncpg.Pool
    watcher: CheckpointWatcher
    min_seq_timeout: float
