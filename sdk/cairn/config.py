"""User-facing configuration objects for artifacts."""

from __future__ import annotations

import msgspec


class ArtifactConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How a step output is stored: its name (a template), version and tags.

    Use it as ``Annotated[T, ArtifactConfig(name="model_{date}")]``. ``version``
    is taken once per name, as in ZenML: a number (``44`` or ``"44"``) claims that
    version number, other text (``"golden"``) is a label. Left out, the output gets
    one more than the name's highest number so far (45 after 44).
    """

    name: str | None = None
    version: str | int | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    is_model_artifact: bool = False
    artifact_type: str | None = None
