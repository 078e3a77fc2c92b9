"""Which materializer handles which type.

Materializer classes register themselves when they are defined (see
BaseMaterializer.__init_subclass__). Lookup walks the MRO of the value's type;
at the first class in the MRO that has registrations, a user's materializer
wins over a built-in one, and among those the most recently defined wins.
Types nobody else registered go to the cloudpickle fallback, which registers
itself for ``object``, the end of every MRO.

This module imports nothing heavy: built-ins for optional libraries are
registered under "module.QualName" strings and matched by name.
"""

from __future__ import annotations

import importlib
import itertools
import typing
from typing import TYPE_CHECKING, Any

from cairn.materializers.errors import MaterializerNotFoundError

if TYPE_CHECKING:
    from cairn.materializers.base import BaseMaterializer

__all__ = [
    "materializer_by_name",
    "materializer_for",
    "qualified_name",
    "register",
    "unregister",
]

_BUILTIN_PREFIX = "cairn.materializers."
_registrations: dict[type | str, list[type[BaseMaterializer]]] = {}
_definition_order: dict[type[BaseMaterializer], int] = {}
_by_name: dict[str, type[BaseMaterializer]] = {}
# Every materializer class defined in this process (each registers when defined), kept
# after unregister(): what a name recorded at save time may be loaded with.
_defined: set[type[BaseMaterializer]] = set()
_counter = itertools.count()
# Runs once per output per step, so answers are cached per type; cleared on (un)registration.
_cache: dict[Any, type[BaseMaterializer]] = {}


def qualified_name(cls_or_type: type) -> str:
    """Return "module.QualName" of a class, the form used in ASSOCIATED_TYPES and in records."""
    if not isinstance(cls_or_type, type):
        raise TypeError(
            f"qualified_name() takes a class, got {type(cls_or_type).__name__} "
            f"{cls_or_type!r}; pass type(value) for a value."
        )
    return f"{cls_or_type.__module__}.{cls_or_type.__qualname__}"


def register(
    materializer: type[BaseMaterializer], associated_types: tuple[type | str, ...]
) -> None:
    """Make materializer the choice for associated_types (called by BaseMaterializer subclasses)."""
    _defined.add(materializer)
    _definition_order[materializer] = next(_counter)
    _by_name[qualified_name(materializer)] = materializer
    for associated in associated_types:
        _registrations.setdefault(associated, []).append(materializer)
    _cache.clear()


def unregister(materializer: type[BaseMaterializer]) -> None:
    """Undo register(): lookup no longer returns materializer (mainly for tests and plugins)."""
    for registered in _registrations.values():
        while materializer in registered:
            registered.remove(materializer)
    if _by_name.get(qualified_name(materializer)) is materializer:
        del _by_name[qualified_name(materializer)]
    _definition_order.pop(materializer, None)
    _cache.clear()


def materializer_for(data_type: type) -> type[BaseMaterializer]:
    """Return the materializer class for values of data_type; never raises for a type.

    Generic aliases (list[int]) are looked up by their origin. Types with no other
    registered materializer in their MRO get CloudpickleMaterializer (registered for
    ``object``).
    """
    try:
        return _cache[data_type]
    except KeyError:
        found = _cache[data_type] = _lookup(data_type)
        return found
    except TypeError:  # unhashable "type" (exotic typing constructs): answer without caching
        return _lookup(data_type)


def _lookup(data_type: Any) -> type[BaseMaterializer]:
    if not isinstance(data_type, type):
        origin = typing.get_origin(data_type)
        data_type = origin if isinstance(origin, type) else object
    for klass in data_type.__mro__:
        candidates = _registrations.get(klass, []) + _registrations.get(
            f"{klass.__module__}.{klass.__qualname__}", []
        )
        if candidates:
            return _preferred(candidates)
    raise MaterializerNotFoundError(  # only if the fallback for object was unregistered
        f"no materializer is registered for {data_type.__qualname__} or object; define one "
        "(subclass cairn.materializers.BaseMaterializer) or register CloudpickleMaterializer."
    )


def _preferred(candidates: list[type[BaseMaterializer]]) -> type[BaseMaterializer]:
    users = [c for c in candidates if not c.__module__.startswith(_BUILTIN_PREFIX)]
    return max(users or candidates, key=_definition_order.__getitem__)


def materializer_by_name(qualified_name: str) -> type[BaseMaterializer]:
    """Return the materializer class recorded as "module.QualName" when an artifact was saved.

    Classes already defined in this process are returned directly; others are
    imported. Raises MaterializerNotFoundError saying what could not be found.
    """
    known = _by_name.get(qualified_name)
    if known is not None:
        return known
    if qualified_name.startswith("__main__."):
        raise MaterializerNotFoundError(
            f"materializer {qualified_name!r} was defined in a script run as __main__ (e.g. "
            "`python script.py`), so only that script's own process could import it. Move the "
            "class into an importable module, import it from the script and run the step again; "
            "to read this artifact now, define the class in this process's __main__ first."
        )
    if "<locals>" in qualified_name:
        raise MaterializerNotFoundError(
            f"materializer {qualified_name!r} was defined inside a function and is not defined "
            "in this process; define materializers at module level so they can be imported."
        )
    found = import_qualified(qualified_name)
    if not isinstance(found, type) or found not in _defined:  # subclasses register
        raise MaterializerNotFoundError(
            f"{qualified_name!r} is {found!r}, not a BaseMaterializer subclass; "
            "pass the qualified name of a materializer class."
        )
    return found


def import_qualified(dotted: str) -> Any:
    """Import "package.module.Outer.Inner": the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            missing = error.name or ""
            if module_name == missing or module_name.startswith(missing + "."):
                continue  # this prefix is not a module; the rest may be nested attributes
            raise MaterializerNotFoundError(
                f"importing {module_name!r} for materializer {dotted!r} failed because module "
                f"{missing!r} is not installed; install it in this environment."
            ) from error
        except Exception as error:
            raise MaterializerNotFoundError(
                f"importing {module_name!r} for materializer {dotted!r} raised "
                f"{type(error).__name__}: {error}; fix that module or its dependencies."
            ) from error
        found: Any = module
        for attribute in parts[split:]:
            try:
                found = getattr(found, attribute)
            except AttributeError:
                raise MaterializerNotFoundError(
                    f"module {module_name!r} has no {'.'.join(parts[split:])!r}, so "
                    f"{dotted!r} cannot be imported; check the spelling, and whether the class "
                    "was renamed or moved."
                ) from None
        return found
    raise MaterializerNotFoundError(
        f"no module of {dotted!r} can be imported; pass a 'module.QualName' of a materializer "
        "class importable in this environment."
    )
