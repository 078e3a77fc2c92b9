"""Reading artifact versions back: materializer and data type from the record."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .artifact_stores import ArtifactStore
    from .models import ArtifactVersion


def load_artifact_version(version: ArtifactVersion) -> Any:
    """The value stored for ``version``, read by the materializer that wrote it."""
    from .materializers import materializer_by_name
    from .materializers.registry import import_qualified

    materializer = materializer_by_name(version.materializer)(
        version.uri, store_holding(version.uri)
    )
    try:
        data_type = import_qualified(version.data_type)
    except Exception:  # e.g. a class defined in a function: materializers that need it say so
        data_type = object
    return materializer.load(data_type)


def store_holding(uri: str) -> ArtifactStore:
    """The artifact store ``uri`` lies in: the configured one if it holds it, else uri's own root."""
    from .artifact_stores.location import store_for_uri

    return store_for_uri(uri, os.environ.get("CAIRN_ARTIFACT_STORE") or _configured_store())


def _configured_store() -> str | None:
    from .settings import cairn_home, read_stack

    record = read_stack(cairn_home())
    return record.artifact_store if record else None
