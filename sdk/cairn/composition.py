"""Composing a pipeline: calling its function records step invocations, not results.

Inside a pipeline function a step call returns :class:`OutputHandle` objects
standing for outputs that do not exist yet; the runner later executes the
recorded invocations in dependency order.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import msgspec

from .errors import StepDefinitionError
from .naming import shown

if TYPE_CHECKING:
    from .steps import Step


class OutputHandle(msgspec.Struct, frozen=True):
    """A future output of a step invocation, passed to downstream steps."""

    invocation_id: str
    key: str

    def __repr__(self) -> str:
        return f"<output {self.key!r} of step {self.invocation_id!r}>"


class Invocation(msgspec.Struct, kw_only=True):
    """One call of a step inside a pipeline, with its arguments and ordering constraints."""

    id: str
    step: Step
    arguments: dict[str, Any]
    after: list[str]
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)  # JSON form, set once

    @property
    def upstream(self) -> list[str]:
        """Invocation ids this one depends on, by data or by ``after=``, in first-seen order."""
        seen: dict[str, None] = {}
        for value in self.arguments.values():
            if isinstance(value, OutputHandle):
                seen[value.invocation_id] = None
        for name in self.after:
            seen[name] = None
        return list(seen)


class Composition:
    """The invocations a pipeline function made, in call order."""

    def __init__(self, pipeline_name: str) -> None:
        self.pipeline_name = pipeline_name
        self.invocations: dict[str, Invocation] = {}
        self._calls: dict[str, int] = {}

    def add(self, step: Step, arguments: dict[str, Any], id: str | None, after: Any) -> Invocation:
        invocation_id = id or self._next_id(step.name)
        from cairn_events import label_problem  # lazy: import cairn stays light

        if (problem := label_problem(invocation_id)) is not None:
            raise StepDefinitionError(
                f"Pipeline '{self.pipeline_name}' calls a step with the id {shown(invocation_id)}, "
                f"which {problem}; give it another id= (or name=)"
            )
        if invocation_id in self.invocations:
            raise StepDefinitionError(
                f"Pipeline '{self.pipeline_name}' already has a step with id '{invocation_id}'; "
                "give each call of a step a different id="
            )
        invocation = Invocation(
            id=invocation_id, step=step, arguments=arguments, after=self._after_ids(after)
        )
        self.invocations[invocation_id] = invocation
        return invocation

    def _next_id(self, name: str) -> str:
        count = self._calls.get(name, 0) + 1
        self._calls[name] = count
        candidate = name if count == 1 else f"{name}_{count}"
        while candidate in self.invocations:  # an explicit id= took it
            count += 1
            self._calls[name] = count
            candidate = f"{name}_{count}"
        return candidate

    def _after_ids(self, after: Any) -> list[str]:
        if after is None:
            return []
        items = after if isinstance(after, (list, tuple)) else [after]
        ids = []
        for item in items:
            ident = item.invocation_id if isinstance(item, OutputHandle) else item
            if ident not in self.invocations:
                known = ", ".join(self.invocations) or "none yet"
                raise StepDefinitionError(
                    f"after={ident!r} names no step called earlier in pipeline "
                    f"'{self.pipeline_name}' (steps so far: {known})"
                )
            ids.append(ident)
        return ids

    def order(self) -> list[Invocation]:
        """Invocations in dependency order.

        A step can only consume outputs of, or run ``after=``, steps called
        before it, so call order is already a dependency order.
        """
        return list(self.invocations.values())


_composing: ContextVar[Composition | None] = ContextVar("cairn_composing", default=None)


def current_composition() -> Composition | None:
    return _composing.get()


def composing(composition: Composition) -> Any:
    """Set ``composition`` as the one step calls record into; returns the reset token."""
    return _composing.set(composition)


def end_composing(token: Any) -> None:
    _composing.reset(token)
