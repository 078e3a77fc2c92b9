"""What the endpoints share for the app's lifetime."""

from __future__ import annotations

from dataclasses import dataclass

from cairn_projections.lineage_index import LineageIndex

from .checkpoint import CheckpointWatcher
from .database import ReadModelPool


@dataclass(frozen=True)
class ApiState:
    """The read models' connections, the projector's checkpoint, the read-your-writes bound,
    and the lineage graph in memory (refreshed as that checkpoint moves)."""

    read_models: ReadModelPool
    watcher: CheckpointWatcher
    min_seq_timeout: float
    lineage: LineageIndex
