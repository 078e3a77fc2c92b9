"""Composing a pipeline: calling its function records step invocations, not results.

Inside a pipeline function a step call returns :class:`OutputHandle` objects
standing for outputs that do not exist yet; once the function returns, the
runner executes the recorded invocations in dependency order (``after=`` may
name a step called later, as in ZenML).
"""

from __future__ import annotations

import heapq
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import msgspec

from .errors import StepDefinitionError
from .naming import shown

if TYPE_CHECKING:
    from .external_artifact import ExternalArtifact
    from .models import ArtifactVersion
    from .steps import Step


class OutputHandle(msgspec.Struct, frozen=True):
    """A future output of a step invocation, passed to downstream steps."""

    invocation_id: str
    key: str

    def __repr__(self) -> str:
        return f"<output {self.key!r} of step {self.invocation_id!r}>"


class ExternalInput(msgspec.Struct, frozen=True, kw_only=True):
    """A step argument that is an artifact from outside the pipeline: an input, not a parameter.

    Either ``version``, an artifact version from the Client (given as it, or named by its
    id), or ``artifact``, an ExternalArtifact, saved the first time a run needs it.
    """

    version: ArtifactVersion | None = None
    artifact: ExternalArtifact | None = None

    def __repr__(self) -> str:
        if self.version is not None:
            return f"<input artifact {self.version.name!r} version {self.version.version!r}>"
        return f"<input {self.artifact!r}>"


class Invocation(msgspec.Struct, kw_only=True):
    """One call of a step inside a pipeline, with its arguments and ordering constraints."""

    id: str
    step: Step
    arguments: dict[str, Any]
    #: Ids of the invocations this one runs after with no data between them (``after=``).
    after: list[str] = msgspec.field(default_factory=list)
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
        self._order: list[Invocation] | None = None

    def add(self, step: Step, arguments: dict[str, Any], id: str | None) -> Invocation:
        """Record a call of ``step`` under ``id`` (else ``name``, ``name_2``, ...).

        The caller fills in what it waits for (``after``): ids of steps that may be called
        later, checked when the pipeline is ordered.
        """
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
        invocation = Invocation(id=invocation_id, step=step, arguments=arguments)
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

    def order(self) -> list[Invocation]:
        """Invocations in dependency order (data and ``after=`` edges), once composed.

        Among steps free to run, the one called first goes first. StepDefinitionError for
        ``after=`` naming no step, or making steps wait for each other in a cycle.
        """
        if self._order is None:
            self._check_after()
            self._order = self._topological()
        return self._order

    def _check_after(self) -> None:
        for invocation in self.invocations.values():
            unknown = [name for name in invocation.after if name not in self.invocations]
            if unknown:
                known = ", ".join(self.invocations)
                raise StepDefinitionError(
                    f"after={', '.join(map(repr, unknown))} names no step in pipeline "
                    f"'{self.pipeline_name}' (step '{invocation.id}' waits for it; the steps "
                    f"are: {known}). Use the id of a step the pipeline calls."
                )

    def _topological(self) -> list[Invocation]:
        position = {ident: i for i, ident in enumerate(self.invocations)}
        waiting = {ident: set(inv.upstream) for ident, inv in self.invocations.items()}
        downstream: dict[str, list[str]] = {ident: [] for ident in self.invocations}
        for ident, upstream in waiting.items():
            for name in upstream:
                downstream[name].append(ident)
        ready = [position[ident] for ident, upstream in waiting.items() if not upstream]
        heapq.heapify(ready)
        ids = list(self.invocations)
        order: list[Invocation] = []
        while ready:
            ident = ids[heapq.heappop(ready)]
            order.append(self.invocations[ident])
            for name in downstream[ident]:
                waiting[name].discard(ident)
                if not waiting[name]:
                    heapq.heappush(ready, position[name])
        if len(order) < len(ids):
            cycle = _cycle({ident: up for ident, up in waiting.items() if up})
            raise StepDefinitionError(
                f"Pipeline '{self.pipeline_name}' cannot run: its steps wait for each other in "
                f"a cycle ({' -> '.join(cycle)}, where a -> b means a runs after b). Remove one "
                "of these after= links."
            )
        return order


def _cycle(waiting: dict[str, set[str]]) -> list[str]:
    """A cycle among ``waiting`` (each step and the steps it still waits for), as a path."""
    path: list[str] = []
    ident = next(iter(waiting))
    while ident not in path:
        path.append(ident)
        ident = min(waiting[ident])  # each waits for another step still waiting
    return [*path[path.index(ident) :], ident]


_composing: ContextVar[Composition | None] = ContextVar("cairn_composing", default=None)


def current_composition() -> Composition | None:
    return _composing.get()


def composing(composition: Composition) -> Any:
    """Set ``composition`` as the one step calls record into; returns the reset token."""
    return _composing.set(composition)


def end_composing(token: Any) -> None:
    _composing.reset(token)
