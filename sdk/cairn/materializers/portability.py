"""Warnings about step outputs that other processes may be unable to load.

Two causes: a value stored with cloudpickle (PickleFallbackWarning), and a
materializer defined in ``__main__`` (MainModuleMaterializerWarning), which no
other process can import. Each warning names the step and output and is
attributed to the step function's file and line, so warning filters and
editors lead to the user's code rather than to Cairn's.
"""

from __future__ import annotations

import inspect
import warnings
from typing import TYPE_CHECKING, Any

from cairn.materializers.base import BaseMaterializer, type_label
from cairn.materializers.cloudpickle_materializer import (
    CloudpickleMaterializer,
    PickleFallbackWarning,
)

if TYPE_CHECKING:
    from cairn.steps import Step

__all__ = ["MainModuleMaterializerWarning", "warn_if_unportable"]


class MainModuleMaterializerWarning(UserWarning):
    """A step output was saved with a materializer defined in __main__ (a script run directly)."""


# Pickled (type, step source, output) and __main__ materializer classes already warned about.
_warned: set[Any] = set()


def warn_if_unportable(
    materializer_cls: type[BaseMaterializer], data_type: type, step: Step, output: str, given: bool
) -> None:
    """Warn if output ``output`` of ``step`` is about to be saved in a way other processes can't load.

    ``given`` says whether the step's output_materializers chose materializer_cls.
    """
    if materializer_cls is CloudpickleMaterializer:
        key = (data_type, step.source, output)
        if key in _warned:
            return
        _warned.add(key)
        CloudpickleMaterializer._warned.add(data_type)  # its save() need not warn again
        how = (
            "CloudpickleMaterializer was given for it"
            if given
            else "no materializer is registered for that type"
        )
        _warn_at_step(
            step,
            f"Step '{step.name}' output '{output}' ({type_label(data_type)}) is stored with "
            f"cloudpickle because {how}. " + CloudpickleMaterializer.fallback_advice(data_type),
            PickleFallbackWarning,
        )
    elif materializer_cls.__module__ == "__main__" and materializer_cls not in _warned:
        _warned.add(materializer_cls)
        name = materializer_cls.__qualname__
        _warn_at_step(
            step,
            f"Step '{step.name}' output '{output}' is saved with materializer {name}, which is "
            "defined in __main__ (the script being run), so no other process can import it "
            f"and load this artifact. Move {name} into a module (e.g. materializers.py) and "
            "import it from the script.",
            MainModuleMaterializerWarning,
        )


def _warn_at_step(step: Step, message: str, category: type[Warning]) -> None:
    """warnings.warn attributed to the first line of the step's function."""
    func = inspect.unwrap(step.func)
    code = getattr(func, "__code__", None)
    if code is None:  # a callable object or a builtin: no file of its own to point at
        warnings.warn(message, category, stacklevel=4)
        return
    warnings.warn_explicit(
        message,
        category,
        code.co_filename,
        code.co_firstlineno,
        module=getattr(func, "__module__", None),
        module_globals=getattr(func, "__globals__", None),
    )
