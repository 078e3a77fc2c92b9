"""What the endpoints share for the app's lifetime."""

from __future__ import annotations

from dataclasses import dataclass

from .checkpoint import CheckpointWatcher
from .database import ReadModelPool


@dataclass(frozen=True)
class ApiState:
    """The read models' connections, the projector's checkpoint, and the read-your-writes bound."""

    read_models: ReadModelPool
    watcher: CheckpointWatcher
    min_seq_timeout: float
