"""Artifact events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import msgspec

from ._envelope import Event
from ._subjects import MAX_VERSION_NUMBER, artifact_version_path


class ArtifactVersionRecord(msgspec.Struct, kw_only=True):
    """An artifact version as everything that reads one names its fields (ZenML's names).

    The read model's row and the SDK's ``ArtifactVersion`` both extend it, and
    :meth:`ArtifactMaterialized.record` is the one place an event's fields are renamed
    to these, so a new field is declared once here and once on the event.
    """

    id: str
    name: str
    version: str
    uri: str
    type: str
    data_type: str
    materializer: str
    content_hash: str
    size: int
    created_at: datetime
    tags: list[str] = msgspec.field(default_factory=list)
    producer_run_id: str | None = None
    producer_step_run_id: str | None = None
    output_name: str | None = None
    visualizations: dict[str, str] = msgspec.field(default_factory=dict)


class ArtifactMaterialized(Event, frozen=True, kw_only=True, tag="artifact.materialized"):
    """A new version of an artifact name was stored and its version claimed.

    ``version`` is a number (``"44"``, canonical decimal, see ``is_numeric_version``)
    or a label (``"golden"``). ``numeric_count`` is the highest version number the
    name has, this event's included (0 while it has none): an unnumbered version
    takes ``numeric_count + 1``, and an explicit number below the highest (10 when
    44 exists) leaves it at 44. A numbered version never exceeds its
    ``numeric_count``. It is carried on every version so the latest event of a name
    is enough to claim the next.

    ``claim_order`` is the version's place among all of its name's versions in the
    order they were claimed (1 for the first; labels and explicit numbers count too),
    so "latest" is the newest claim, as in ZenML, on every replay. Events from before
    it was recorded carry 0.
    """

    #: The highest version number a version may have (see MAX_VERSION_NUMBER).
    MAX_NUMBER: ClassVar[int] = MAX_VERSION_NUMBER

    artifact_version_id: str
    name: str
    version: str
    numeric_count: int
    claim_order: int = 0
    uri: str
    artifact_type: str
    data_type: str
    materializer: str
    content_hash: str
    size: int
    producer_run_id: str | None = None
    producer_step_run_id: str | None = None
    output_name: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    visualizations: dict[str, str] = msgspec.field(default_factory=dict)
    #: What the materializer extracted on save (storage size, shape, ...), as typed
    #: values (see ``cairn_events.metadata``): recorded as the version's first metadata.
    run_metadata: dict[str, Any] = msgspec.field(default_factory=dict)

    def subject_path(self) -> str:
        return artifact_version_path(self.name, self.version)

    def record(self) -> dict[str, Any]:
        """The fields of the version this event records, by :class:`ArtifactVersionRecord` name."""
        return {
            "id": self.artifact_version_id,
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "type": self.artifact_type,
            "data_type": self.data_type,
            "materializer": self.materializer,
            "content_hash": self.content_hash,
            "size": self.size,
            "created_at": self.occurred_at,
            "tags": list(self.tags),
            "producer_run_id": self.producer_run_id,
            "producer_step_run_id": self.producer_step_run_id,
            "output_name": self.output_name,
            "visualizations": dict(self.visualizations),
        }
