"""The ``@pipeline`` decorator: calling a pipeline runs it and returns the run.

A pipeline runs on its runner (``@pipeline(runner=...)``, ``.with_options(runner=...)``),
by default the in-process one (:class:`cairn.orchestrator.InProcessRunner`). A runner is
checked when it is given, and what it returns when the pipeline is called
(:mod:`cairn.runner`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from .cache_policy import CachePolicy, checked_flag
from .cache_policy import cache_policy as cache_policy_of
from .errors import ParameterError, StepDefinitionError, StepTypeError
from .naming import shown
from .runner import Runner, checked_runner, finished_run
from .validation import (
    ArgumentType,
    argument_types,
    bind_call,
    check_configured,
    refuse_artifact_version,
    resolved_hints,
    unresolvable_annotations,
)

if TYPE_CHECKING:
    from .models import PipelineRun


class Pipeline:
    """A pipeline: its function wires steps together; calling it runs them."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        enable_cache: bool | None = None,
        substitutions: dict[str, str] | None = None,
        run_name: str | None = None,
        parameters: dict[str, Any] | None = None,
        runner: Runner | None = None,
        cache_policy: CachePolicy | str | None = None,
    ) -> None:
        if not callable(func):
            raise StepDefinitionError(f"@pipeline decorates functions, not {type(func).__name__}")
        self.func = func
        self.name = name or func.__name__
        from cairn_events import label_problem  # lazy: import cairn stays light

        if (problem := label_problem(self.name)) is not None:
            raise StepDefinitionError(
                f"Pipeline name {shown(self.name)} {problem}; give the pipeline another name="
            )
        self.enable_cache = checked_flag(
            enable_cache, owner=f"Pipeline '{self.name}'", unset="for the default, on"
        )
        self.cache_policy = cache_policy_of(cache_policy, owner=f"Pipeline '{self.name}'")
        self.substitutions = dict(substitutions or {})
        self.run_name = run_name
        self._runner = None if runner is None else checked_runner(runner, pipeline=self.name)
        #: Arguments set by with_options(parameters=...): used where a call leaves them out.
        self.configured_parameters = check_configured(
            f"Pipeline '{self.name}'", inspect.signature(func), parameters
        )
        self.__doc__ = func.__doc__
        self.__wrapped__ = func
        self._types: dict[str, ArgumentType] | None = None  # resolved on the first call

    def with_options(
        self,
        *,
        name: str | None = None,
        enable_cache: bool | None = None,
        substitutions: dict[str, str] | None = None,
        run_name: str | None = None,
        parameters: dict[str, Any] | None = None,
        runner: Runner | None = None,
        cache_policy: CachePolicy | str | None = None,
    ) -> Pipeline:
        """A copy of this pipeline with some options changed; substitutions and parameters
        are merged over ours."""
        return Pipeline(
            self.func,
            name=name or self.name,
            enable_cache=self.enable_cache if enable_cache is None else enable_cache,
            substitutions={**self.substitutions, **(substitutions or {})},
            run_name=run_name or self.run_name,
            parameters={**self.configured_parameters, **(parameters or {})},
            runner=self._runner if runner is None else runner,
            cache_policy=self.cache_policy if cache_policy is None else cache_policy,
        )

    def parameters(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by name, defaults included (the runner checks they are JSON).

        As in ZenML, given values are validated against their annotations by pydantic (lax)
        and the pipeline function receives them coerced: ``"5"`` for an ``int`` becomes ``5``.
        """
        signature = inspect.signature(self.func)
        bound = bind_call(
            f"Pipeline '{self.name}'", signature, args, kwargs, self.configured_parameters
        )
        types = self._argument_types(signature)
        for name, value in bound.arguments.items():
            if name not in types:
                continue
            refuse_artifact_version(value, name=name, owner=f"pipeline '{self.name}'")
            try:
                bound.arguments[name] = types[name].coerce(value, step=self.name, what=name)
            except StepTypeError as exc:
                raise ParameterError(
                    f"Parameter '{name}' of pipeline '{self.name}': expected {exc.expected}, got "
                    f"{exc.actual} ({exc.detail}). Pass a {exc.expected} (or a value pydantic "
                    "converts to one)."
                ) from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def _argument_types(self, signature: inspect.Signature) -> dict[str, ArgumentType]:
        if self._types is None:
            owner = f"pipeline '{self.name}'"
            try:
                hints = resolved_hints(self.func, owner=owner)
            except NameError as exc:
                raise unresolvable_annotations(owner, exc) from None
            self._types = argument_types(signature, hints)
        return self._types

    @property
    def runner(self) -> Runner:
        """What runs this pipeline: the one given, else the in-process runner."""
        if self._runner is None:
            from .orchestrator import InProcessRunner  # lazy: import cairn stays light

            self._runner = InProcessRunner()
        return self._runner

    def __call__(self, *args: Any, **kwargs: Any) -> PipelineRun:
        """Run the pipeline on its runner with these arguments; the finished run."""
        runner = self.runner
        run = runner.run(self, self.parameters(args, kwargs))
        return finished_run(run, runner=runner, pipeline=self.name)

    def __repr__(self) -> str:
        return f"<pipeline {self.name!r}>"


@overload
def pipeline(func: Callable[..., Any]) -> Pipeline: ...
@overload
def pipeline(
    func: None = None,
    *,
    name: str | None = None,
    enable_cache: bool | None = None,
    substitutions: dict[str, str] | None = None,
    run_name: str | None = None,
    runner: Runner | None = None,
    cache_policy: CachePolicy | str | None = None,
) -> Callable[[Callable[..., Any]], Pipeline]: ...
def pipeline(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    enable_cache: bool | None = None,
    substitutions: dict[str, str] | None = None,
    run_name: str | None = None,
    runner: Runner | None = None,
    cache_policy: CachePolicy | str | None = None,
) -> Any:
    """Mark a function as a pipeline; usable as ``@pipeline`` or ``@pipeline(...)``.

    ``runner`` says where its steps run (see :class:`cairn.runner.Runner`); in this
    process by default.
    """

    def wrap(f: Callable[..., Any]) -> Pipeline:
        return Pipeline(
            f,
            name=name,
            enable_cache=enable_cache,
            substitutions=substitutions,
            run_name=run_name,
            runner=runner,
            cache_policy=cache_policy,
        )

    return wrap(func) if func is not None else wrap
