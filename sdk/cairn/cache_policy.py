"""``CachePolicy``: what a step's cache key is made of, as in ZenML.

``@step(cache_policy=...)``, ``@pipeline(cache_policy=...)`` and both ``with_options``
take one (or ``"default"``); the step's wins over the pipeline's, as ``enable_cache``
does. The key itself is computed in :mod:`cairn.cache_key`.

One difference from ZenML, on purpose: ``include_artifact_ids`` is False by default, so
an upstream step that re-produces identical data (a new version with the same content)
still lets its downstream steps hit; their inputs are compared by content.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import msgspec

from .errors import StepDefinitionError

__all__ = ["CachePolicy"]

#: The longest life an entry may be given: 100 years, in seconds.
MAX_EXPIRES_AFTER = 100 * 365 * 24 * 3600


class CachePolicy(msgspec.Struct, kw_only=True):
    """Which parts make up a step's cache key, and how long its entries live.

    - ``include_step_code``: the source of the step function and of the module-level
      functions and classes of your own files it calls;
    - ``include_step_parameters``: its parameters after validation;
    - ``include_artifact_values``: its input artifacts by content hash;
    - ``include_artifact_ids``: its input artifacts by artifact version id;
    - ``ignored_inputs``: inputs and parameters left out of the key, by argument name;
    - ``file_dependencies``: files whose content joins the key (relative to the working
      directory, or absolute);
    - ``source_dependencies``: functions, classes or modules (or ``"module:attr"`` /
      ``"module.attr"`` strings) whose source joins the key;
    - ``cache_func``: a function of no arguments returning a str that joins the key;
    - ``expires_after``: seconds an entry may be reused for (None: for ever).
    """

    include_step_code: bool = True
    include_step_parameters: bool = True
    include_artifact_values: bool = True
    include_artifact_ids: bool = False
    ignored_inputs: tuple[str, ...] = ()
    file_dependencies: tuple[str, ...] = ()
    source_dependencies: tuple[Any, ...] = ()
    cache_func: Callable[[], str] | str | None = None
    expires_after: float | None = None

    def __post_init__(self) -> None:
        for flag in (
            "include_step_code",
            "include_step_parameters",
            "include_artifact_values",
            "include_artifact_ids",
        ):
            if not isinstance(getattr(self, flag), bool):
                raise StepDefinitionError(
                    f"CachePolicy({flag}=...) takes True or False; got "
                    f"{type(getattr(self, flag)).__name__} {getattr(self, flag)!r}"
                )
        for field in ("ignored_inputs", "file_dependencies"):
            value = getattr(self, field)
            items = [value] if isinstance(value, str) else list(value or ())
            if not all(isinstance(item, str) and item for item in items):
                raise StepDefinitionError(
                    f"CachePolicy({field}=...) takes a list of non-empty str; got {value!r}"
                )
            setattr(self, field, tuple(items))
        sources = self.source_dependencies
        items = [sources] if isinstance(sources, str) or callable(sources) else list(sources or ())
        for item in items:
            if not (isinstance(item, str) and item) and not (
                callable(item) or isinstance(item, types.ModuleType)
            ):
                raise StepDefinitionError(
                    "CachePolicy(source_dependencies=...) takes functions, classes or modules, "
                    f"or their 'module.attribute' sources; got {type(item).__name__} {item!r:.60}"
                )
        self.source_dependencies = tuple(items)
        if self.cache_func is not None and not (
            callable(self.cache_func) or isinstance(self.cache_func, str)
        ):
            raise StepDefinitionError(
                "CachePolicy(cache_func=...) takes a function of no arguments returning a str "
                f"(or its 'module.function' source); got {type(self.cache_func).__name__}"
            )
        expires = self.expires_after
        if expires is not None and (
            isinstance(expires, bool)
            or not isinstance(expires, (int, float))
            or not 0 < expires <= MAX_EXPIRES_AFTER
        ):
            raise StepDefinitionError(
                f"CachePolicy(expires_after=...) takes a number of seconds above 0 and at most "
                f"{MAX_EXPIRES_AFTER:,} (100 years), or None for entries that never expire; "
                f"got {expires!r}"
            )

    @classmethod
    def default(cls) -> CachePolicy:
        return cls()

    @classmethod
    def from_string(cls, value: str) -> CachePolicy:
        if value.lower() == "default":
            return cls.default()
        raise StepDefinitionError(
            f"Unknown cache policy {value!r}; the one named policy is 'default'. Pass "
            "CachePolicy(...) for another."
        )

    def settings(self) -> dict[str, Any]:
        """The settings that shape the key (not ``expires_after``), as the key records them."""
        return {
            "include_step_code": self.include_step_code,
            "include_step_parameters": self.include_step_parameters,
            "include_artifact_values": self.include_artifact_values,
            "include_artifact_ids": self.include_artifact_ids,
            "ignored_inputs": sorted(self.ignored_inputs),
        }


def cache_policy(value: Any, *, owner: str) -> CachePolicy | None:
    """``value`` as given to ``cache_policy=`` (None, "default" or a CachePolicy), checked."""
    if value is None or isinstance(value, CachePolicy):
        return value
    if isinstance(value, str):
        return CachePolicy.from_string(value)
    raise StepDefinitionError(
        f"{owner}: cache_policy= takes a cairn.CachePolicy or 'default'; got "
        f"{type(value).__name__} {value!r:.60}"
    )


def checked_flag(value: Any, *, owner: str, unset: str) -> bool | None:
    """``enable_cache=`` as given: True, False or None (not set here: ``unset`` says what
    that means)."""
    if value is None or isinstance(value, bool):
        return value
    raise StepDefinitionError(
        f"{owner}: enable_cache= takes True or False (or None {unset}); "
        f"got {type(value).__name__} {value!r:.60}"
    )
