"""BaseMaterializer: how one Python type is written to and read from an artifact store.

Subclass it, set ASSOCIATED_TYPES and implement load/save. Defining the class
registers it (see cairn.materializers.registry): it is then chosen for values of
those types, ahead of any built-in materializer for the same type.

As in ZenML, a materializer only saves values of its ASSOCIATED_TYPES (or of
their subclasses) and only loads artifacts as such a type, a base or a subclass
of one: anything else raises MaterializerTypeError (a TypeError). The check
wraps each subclass's own load/save when the class is defined, so a
materializer gets it without calling super().
"""

from __future__ import annotations

import abc
import functools
import sys
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from cairn.materializers import registry
from cairn.materializers.errors import (
    MaterializerError,
    MaterializerNotFoundError,
    MaterializerTypeError,
)

if TYPE_CHECKING:
    from cairn.artifact_stores.base import ArtifactStore

__all__ = [
    "ARTIFACT_TYPES",
    "BaseMaterializer",
    "MaterializerError",
    "MaterializerNotFoundError",
    "MaterializerTypeError",
]

ARTIFACT_TYPES: frozenset[str] = frozenset(
    {"data", "model", "schema", "statistics", "service", "data_analysis"}
)


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
    # Classes this class was found to save / load, per class (set in __init_subclass__).
    _saves: ClassVar[set[type]] = set()
    _loads: ClassVar[set[type]] = set()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.ASSOCIATED_ARTIFACT_TYPE not in ARTIFACT_TYPES:
            raise MaterializerError(
                f"{cls.__qualname__}.ASSOCIATED_ARTIFACT_TYPE is "
                f"{cls.ASSOCIATED_ARTIFACT_TYPE!r}; use one of {sorted(ARTIFACT_TYPES)}."
            )
        own_types = cls.__dict__.get("ASSOCIATED_TYPES", ())
        if isinstance(own_types, list):  # ZenML accepts a list too
            own_types = cls.ASSOCIATED_TYPES = tuple(own_types)
        if not isinstance(own_types, tuple):
            raise MaterializerError(
                f"{cls.__qualname__}.ASSOCIATED_TYPES must be a tuple (or list) of types or "
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
        cls._saves, cls._loads = set(), set()
        for name, wrap in (("save", _checking_save), ("load", _checking_load)):
            method = cls.__dict__.get(name)
            if isinstance(method, types.FunctionType) and not hasattr(method, "_cairn_checks_type"):
                setattr(cls, name, wrap(method))
        registry.register(cls, own_types)  # also makes the class findable by qualified name

    def __init__(self, uri: str, artifact_store: ArtifactStore | None = None) -> None:
        """As in ZenML, artifact_store may be left out: then it is the store holding uri."""
        self.uri = uri
        self._artifact_store = artifact_store

    @property
    def artifact_store(self) -> ArtifactStore:
        """The store this artifact lives in (found from uri on first use if none was given)."""
        store = getattr(self, "_artifact_store", None)
        if store is None:
            from cairn.artifact_stores.location import store_holding

            store = self._artifact_store = store_holding(self.uri)
        return store

    @artifact_store.setter
    def artifact_store(self, store: ArtifactStore) -> None:
        self._artifact_store = store

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(uri={self.uri!r})"

    def path(self, filename: str) -> str:
        """Return the uri of one file of this artifact: uri and filename joined by its store.

        The store joins (a local store with the OS's separator, an object store with "/").
        """
        return self.artifact_store.join(self.uri, filename)

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

    # -- which types this materializer handles (ZenML's names) --------------------------

    @classmethod
    def can_save_type(cls, data_type: Any) -> bool:
        """Whether values of data_type can be saved: it is, or derives from, an associated type.

        "module.QualName" entries match any class of data_type's MRO of that name.
        """
        klass = _as_class(data_type)
        if klass is None:
            return True  # typing constructs (Any, unions, TypeVars) name no class to check
        if klass in cls._saves:
            return True
        names = {t for t in cls.ASSOCIATED_TYPES if isinstance(t, str)}
        found = any(f"{k.__module__}.{k.__qualname__}" in names for k in klass.__mro__) or any(
            isinstance(t, type) and issubclass(klass, t) for t in cls.ASSOCIATED_TYPES
        )
        if found:  # only yes is kept: a "module.QualName" entry may match once it is imported
            cls._saves.add(klass)
        return found

    @classmethod
    def can_load_type(cls, data_type: Any) -> bool:
        """Whether an artifact can be loaded as data_type: an associated type, a base or a subclass.

        Like ZenML's, this accepts loading as a base class (object included).
        """
        klass = _as_class(data_type)
        if klass is None or klass in cls._loads:
            return True
        found = (
            klass is object
            or cls.can_save_type(klass)
            or any(issubclass(t, klass) for t in _imported_classes(cls.ASSOCIATED_TYPES))
        )
        if found:
            cls._loads.add(klass)
        return found

    @classmethod
    def can_handle_type(cls, data_type: Any) -> bool:
        """ZenML's older name for can_save_type."""
        return cls.can_save_type(data_type)

    def validate_save_type_compatibility(self, data_type: Any) -> None:
        """Raise MaterializerTypeError unless values of data_type can be saved."""
        if not self.can_save_type(data_type):
            raise _refusal(type(self), "save a value of type", data_type)

    def validate_load_type_compatibility(self, data_type: Any) -> None:
        """Raise MaterializerTypeError unless the artifact can be loaded as data_type."""
        if not self.can_load_type(data_type):
            raise _refusal(type(self), "load an artifact as", data_type)

    def validate_type_compatibility(self, data_type: Any) -> None:
        """ZenML's older name for validate_save_type_compatibility."""
        self.validate_save_type_compatibility(data_type)


def _checking_save(save: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """save, refusing values whose type the materializer's ASSOCIATED_TYPES do not cover."""

    @functools.wraps(save)
    def checked_save(self: BaseMaterializer, data: Any) -> None:
        data_type = type(data)
        if data_type not in type(self)._saves and not self.can_save_type(data_type):
            raise _refusal(type(self), "save a value of type", data_type)
        return save(self, data)

    checked_save._cairn_checks_type = True  # type: ignore[attr-defined]
    return checked_save


def _checking_load(load: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """load, refusing data types the materializer's ASSOCIATED_TYPES do not cover."""

    @functools.wraps(load)
    def checked_load(self: BaseMaterializer, data_type: Any) -> Any:
        if not self.can_load_type(data_type):
            raise _refusal(type(self), "load an artifact as", data_type)
        return load(self, data_type)

    checked_load._cairn_checks_type = True  # type: ignore[attr-defined]
    return checked_load


def _refusal(cls: type[BaseMaterializer], action: str, data_type: Any) -> MaterializerTypeError:
    return MaterializerTypeError(
        f"{cls.__qualname__} cannot {action} {type_label(data_type)}: its ASSOCIATED_TYPES "
        f"({associated_label(cls)}) do not cover it. Use a materializer for that type, or add "
        f"the type to {cls.__qualname__}.ASSOCIATED_TYPES."
    )


def type_label(data_type: Any) -> str:
    """data_type as "module.QualName" for messages (builtins by their bare name)."""
    if not isinstance(data_type, type):
        return repr(data_type)
    if data_type.__module__ == "builtins":
        return data_type.__qualname__
    return f"{data_type.__module__}.{data_type.__qualname__}"


def associated_label(cls: type[BaseMaterializer]) -> str:
    """The ASSOCIATED_TYPES of cls for messages, e.g. "Point, 'pandas.DataFrame'"."""
    shown = [t if isinstance(t, str) else type_label(t) for t in cls.ASSOCIATED_TYPES]
    return ", ".join(shown) or "none"


def _as_class(data_type: Any) -> type | None:
    """The class data_type names: itself, the origin of a generic alias, or None."""
    if data_type is Any:  # a class itself since Python 3.11
        return None
    if isinstance(data_type, type):
        return data_type
    origin = typing.get_origin(data_type)
    return origin if isinstance(origin, type) else None


def _imported_classes(associated: tuple[type | str, ...]) -> list[type]:
    """The associated types as classes; "module.QualName" entries only if already imported."""
    classes = []
    for entry in associated:
        if isinstance(entry, type):
            classes.append(entry)
            continue
        parts = entry.split(".")
        for split in range(len(parts) - 1, 0, -1):
            found: Any = sys.modules.get(".".join(parts[:split]))
            if found is None:
                continue
            for attribute in parts[split:]:
                found = getattr(found, attribute, None)
            if isinstance(found, type):
                classes.append(found)
            break
    return classes
