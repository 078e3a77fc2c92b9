"""What a run or a step run was configured with, as its read model's queries return it."""

from __future__ import annotations

from typing import Any

import msgspec


class Config(msgspec.Struct, kw_only=True):
    """Parameters, substitutions and the cache setting of a run or a step run.

    The tables keep them as columns of the run's or step's row; the queries' results
    offer them as ``config`` (the SDK models' shape), built here only.
    """

    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    substitutions: dict[str, str] = msgspec.field(default_factory=dict)
    enable_cache: bool | None = None
