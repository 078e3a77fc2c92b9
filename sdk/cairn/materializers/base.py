"""BaseMaterializer: how one Python type is written to and read from an artifact store.

Subclass it, set ASSOCIATED_TYPES and implement load/save. Defining the class
registers it (see cairn.materializers.registry): it is then chosen for values of
those types, ahead of any built-in materializer for the same type.
"""

from __future__ import annotations

import abc
import os
from typing import TYPE_CHECKING, Any, ClassVar

from cairn.materializers import registry

if TYPE_CHECKING:
    from cairn.artifact_stores.base import ArtifactStore

__all__ = [
    "ARTIFACT_TYPES",
    "BaseMaterializer",
    "MaterializerError",
    "MaterializerNotFoundError",
]

ARTIFACT_TYPES: frozenset[str] = frozenset(
    {"data", "model", "schema", "statistics", "service", "data_analysis"}
)


class MaterializerError(Exception):
    """A materializer is defined wrongly or could not save or load an artifact."""


class MaterializerNotFoundError(MaterializerError, LookupError):
    """A materializer recorded by name could not be imported."""


class BaseMaterializer(abc.ABC):
    """Saves values of ASSOCIATED_TYPES under `uri` in `artifact_store`, and loads them back.

    A caller can rely on: `save(data)` followed by `load(type(data))` on a new
    instance with the same uri and store returns an equal value; files are
    only read and written through `artifact_store.open(self.path(filename))`,
    so the store's path checks apply.

    ASSOCIATED_TYPES holds types, or "module.QualName" strings for types whose
    module should not be imported until a value of that type shows up (e.g.
    "pandas.core.frame.DataFrame"). Only ASSOCIATED_TYPES written in the class
    body itself register the class; a subclass that inherits them does not
    take over lookup (pass it explicitly, or repeat ASSOCIATED_TYPES).
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type | str, ...]] = ()
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[str] = "data"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.ASSOCIATED_ARTIFACT_TYPE not in ARTIFACT_TYPES:
            raise MaterializerError(
                f"{cls.__qualname__}.ASSOCIATED_ARTIFACT_TYPE is "
                f"{cls.ASSOCIATED_ARTIFACT_TYPE!r}; use one of {sorted(ARTIFACT_TYPES)}."
            )
        own_types = cls.__dict__.get("ASSOCIATED_TYPES", ())
        if not isinstance(own_types, tuple):
            raise MaterializerError(
                f"{cls.__qualname__}.ASSOCIATED_TYPES must be a tuple of types or "
                f"'module.QualName' strings, got {type(own_types).__name__}; "
                "write e.g. ASSOCIATED_TYPES = (MyType,)."
            )
        for associated in own_types:
            if not isinstance(associated, type) and not (
                isinstance(associated, str) and "." in associated
            ):
                raise MaterializerError(
                    f"{cls.__qualname__}.ASSOCIATED_TYPES contains {associated!r}; each entry "
                    "must be a type or a dotted 'module.QualName' string."
                )
        registry.register(cls, own_types)  # also makes the class findable by qualified name

    def __init__(self, uri: str, artifact_store: ArtifactStore) -> None:
        self.uri = uri
        self.artifact_store = artifact_store

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(uri={self.uri!r})"

    def path(self, filename: str) -> str:
        """Return the uri of one file of this artifact (uri joined with filename)."""
        return os.path.join(self.uri, filename)

    @abc.abstractmethod
    def load(self, data_type: type) -> Any:
        """Read the artifact back as a value of data_type (the type recorded at save time)."""

    @abc.abstractmethod
    def save(self, data: Any) -> None:
        """Write data under self.uri. Called once per artifact version, on a fresh uri."""

    def save_visualizations(self, data: Any) -> dict[str, str]:
        """Save previews of data; return {uri: kind} with kind "html", "markdown", "csv" or "image"."""
        return {}

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        """Return cheap, JSON-serializable facts about data (shape, length, ...)."""
        return {}
