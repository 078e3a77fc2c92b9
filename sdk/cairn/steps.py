"""The ``@step`` decorator: a function whose outputs become tracked artifacts."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar, get_type_hints, overload

from .composition import OutputHandle, current_composition
from .errors import StepDefinitionError
from .naming import OutputSpec, parse_outputs

F = TypeVar("F", bound=Callable[..., Any])


class Step:
    """A step: call it inside a ``@pipeline`` to add it to the run.

    Called outside a pipeline it is the plain function.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        enable_cache: bool | None = None,
        substitutions: dict[str, str] | None = None,
        output_materializers: Any = None,
    ) -> None:
        if not callable(func):
            raise StepDefinitionError(f"@step decorates functions, not {type(func).__name__}")
        self.func = func
        self.name = name or func.__name__
        self.enable_cache = enable_cache
        self.substitutions = dict(substitutions or {})
        self.output_materializers = output_materializers
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    @cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.func)

    @cached_property
    def outputs(self) -> list[OutputSpec]:
        return parse_outputs(self.func)

    @cached_property
    def input_annotations(self) -> dict[str, Any]:
        """The annotation of each argument (``inspect.Parameter.empty`` when there is none)."""
        try:
            hints = get_type_hints(self.func)
        except Exception:  # unresolvable forward refs: check nothing rather than fail
            hints = {}
        return {
            name: hints.get(name, inspect.Parameter.empty) for name in self.signature.parameters
        }

    @cached_property
    def source(self) -> str:
        """Where the function lives, as ``module:qualname``."""
        return f"{self.func.__module__}:{self.func.__qualname__}"

    def with_options(
        self,
        *,
        name: str | None = None,
        enable_cache: bool | None = None,
        substitutions: dict[str, str] | None = None,
        output_materializers: Any = None,
    ) -> Step:
        """A copy of this step with some options changed; substitutions are merged over ours."""
        return Step(
            self.func,
            name=name or self.name,
            enable_cache=self.enable_cache if enable_cache is None else enable_cache,
            substitutions={**self.substitutions, **(substitutions or {})},
            output_materializers=output_materializers or self.output_materializers,
        )

    def materializer_for_output(self, key: str) -> Any:
        """The materializer class given for output ``key`` (or for all outputs), if any."""
        given = self.output_materializers
        if given is None:
            return None
        if isinstance(given, dict):
            return given.get(key)
        return given

    def __call__(self, *args: Any, id: str | None = None, after: Any = None, **kwargs: Any) -> Any:
        composition = current_composition()
        if composition is None:
            return self.func(*args, **kwargs)
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise StepDefinitionError(f"Step '{self.name}' was called wrongly: {exc}") from None
        invocation = composition.add(self, dict(bound.arguments), id, after)
        handles = tuple(OutputHandle(invocation.id, spec.key) for spec in self.outputs)
        if not handles:
            return None
        return handles[0] if len(handles) == 1 else handles

    def __repr__(self) -> str:
        return f"<step {self.name!r} ({self.source})>"


@overload
def step(func: F) -> Step: ...
@overload
def step(
    func: None = None,
    *,
    name: str | None = None,
    enable_cache: bool | None = None,
    substitutions: dict[str, str] | None = None,
    output_materializers: Any = None,
) -> Callable[[F], Step]: ...
def step(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    enable_cache: bool | None = None,
    substitutions: dict[str, str] | None = None,
    output_materializers: Any = None,
) -> Any:
    """Mark a function as a pipeline step; usable as ``@step`` or ``@step(...)``."""

    def wrap(f: Callable[..., Any]) -> Step:
        return Step(
            f,
            name=name,
            enable_cache=enable_cache,
            substitutions=substitutions,
            output_materializers=output_materializers,
        )

    return wrap(func) if func is not None else wrap
