"""What a running step can ask about itself: ``get_step_context()``."""

from __future__ import annotations

from contextvars import ContextVar

import msgspec

from .errors import CairnError


class StepContext(msgspec.Struct, frozen=True, kw_only=True):
    """The run and step a piece of code is executing in."""

    pipeline_name: str
    run_id: str
    run_name: str
    step_name: str
    step_run_id: str
    substitutions: dict[str, str]


_current: ContextVar[StepContext | None] = ContextVar("cairn_step_context", default=None)


def get_step_context() -> StepContext:
    """The context of the step being executed; an error outside a step."""
    context = _current.get()
    if context is None:
        raise CairnError(
            "get_step_context() was called outside a running step; call it inside a @step function"
        )
    return context


def set_step_context(context: StepContext | None) -> object:
    return _current.set(context)


def reset_step_context(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
