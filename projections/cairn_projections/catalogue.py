"""The catalogue: every read model, registered once.

:data:`ALL_READ_MODELS` is the one list a new read model is added to (its module holds
everything else). Its order is the order their migration pieces apply within one
version, so it only ever grows at the end.
"""

from __future__ import annotations

from collections.abc import Iterable

from cairn_events import AnyEvent

from .artifact_versions import ARTIFACT_VERSIONS
from .bookkeeping import BOOKKEEPING
from .cache_entries import CACHE_ENTRIES
from .metadata import METADATA
from .read_model import Folds, ReadModel, Row
from .runs import RUNS
from .steps import STEPS

ALL_READ_MODELS: tuple[ReadModel, ...] = (
    RUNS,
    STEPS,
    ARTIFACT_VERSIONS,
    CACHE_ENTRIES,
    METADATA,
)

#: What a schema holds, in migration order: the read models, then the projectors' bookkeeping.
SCHEMA: tuple[ReadModel, ...] = (*ALL_READ_MODELS, BOOKKEEPING)

#: The folds of every read model: what the default projector applies.
ALL_FOLDS = Folds(ALL_READ_MODELS)


def fold(event: AnyEvent) -> list[Row]:
    """The rows ``event`` writes to every read model; FoldError if it cannot be projected."""
    return ALL_FOLDS(event)


def fold_all(events: Iterable[AnyEvent]) -> list[Row]:
    """The rows of several events in order (raises on the first that can't fold)."""
    return [row for event in events for row in ALL_FOLDS(event)]
