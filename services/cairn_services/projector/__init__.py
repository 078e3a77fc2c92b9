"""The projector: folds the event stream into the Postgres read models.

``Projector(nats_url, database_url, name=..., schema=..., read_models=..., stream=...,
subject_filter=...)`` with ``start()``, ``stop()`` and ``run_until(seq)``; see
:mod:`.projector` for its guarantees.
"""

from __future__ import annotations

from .errors import (
    ProjectorBusyError,
    ProjectorError,
    ProjectorStoppedError,
    ProjectorTimeoutError,
)
from .projector import Projector
from .streams import consumer_name

__all__ = [
    "Projector",
    "ProjectorBusyError",
    "ProjectorError",
    "ProjectorStoppedError",
    "ProjectorTimeoutError",
    "consumer_name",
]
