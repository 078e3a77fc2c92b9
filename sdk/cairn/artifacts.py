"""Reading artifact versions back: materializer and data type from the record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import ArtifactVersion


def load_artifact_version(version: ArtifactVersion) -> Any:
    """The value stored for ``version``, read by the materializer that wrote it.

    The store is the one holding its uri (the configured one, or found by the uri's scheme).
    """
    from .artifact_stores.location import store_holding
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
