"""The ``@step`` decorator: a function whose outputs become tracked artifacts."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from .cache_policy import CachePolicy
from .cache_policy import cache_policy as _cache_policy
from .cache_policy import checked_flag as _checked_flag
from .composition import ExternalInput, OutputHandle, current_composition
from .errors import ParameterError, StepDefinitionError, StepTypeError
from .external_artifact import ExternalArtifact, artifact_id, version_by_id
from .models import ArtifactVersion
from .naming import OutputSpec, parse_outputs
from .validation import (
    ArgumentType,
    argument_types,
    bind_call,
    check_configured,
    json_parameters,
    resolved_hints,
    unresolvable_annotations,
)

F = TypeVar("F", bound=Callable[..., Any])


class Step:
    """A step: call it inside a ``@pipeline`` to add it to the run.

    Called outside a pipeline it runs the function on its arguments, validated and
    coerced as in a run, and returns its value; nothing is tracked. It carries its
    function's name, qualname, module, docstring and signature, and pickles by
    reference.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        enable_cache: bool | None = None,
        substitutions: dict[str, str] | None = None,
        output_materializers: Any = None,
        parameters: dict[str, Any] | None = None,
        cache_policy: CachePolicy | str | None = None,
    ) -> None:
        if not callable(func):
            raise StepDefinitionError(f"@step decorates functions, not {type(func).__name__}")
        functools.update_wrapper(self, func)  # __module__, __name__, __qualname__, __doc__, ...
        self.func = func
        self.name = name or func.__name__
        self.signature = inspect.signature(func)
        _check_signature(self.name, self.signature)
        #: Arguments set by with_options(parameters=...): used where a call leaves them out.
        self.configured_parameters = check_configured(
            f"Step '{self.name}'", self.signature, parameters
        )
        self._outputs: list[OutputSpec] | None = None
        self._arguments: dict[str, ArgumentType] = {}
        self._annotations: dict[str, Any] = {}
        with contextlib.suppress(NameError):  # a name defined later: resolved when composed
            self._declare()
        self.enable_cache = _checked_flag(
            enable_cache, owner=f"Step '{self.name}'", unset="to leave it to the pipeline"
        )
        self.cache_policy = _cache_policy(cache_policy, owner=f"Step '{self.name}'")
        self.substitutions = dict(substitutions or {})
        self.output_materializers = output_materializers
        self._materializers = self._resolve_materializers(output_materializers)

    def _declare(self) -> None:
        """Read outputs and argument types from the annotations; NameError if one is undefined."""
        hints = resolved_hints(self.func, owner=f"step '{self.name}'")
        self._outputs = parse_outputs(self.func, hints, step=self.name)
        self._arguments = argument_types(self.signature, hints)
        self._annotations = hints

    def _ensure_declared(self) -> None:
        if self._outputs is None:
            try:
                self._declare()
            except NameError as exc:
                raise unresolvable_annotations(f"step '{self.name}'", exc) from None

    @property
    def outputs(self) -> list[OutputSpec]:
        """The outputs the return annotation declares."""
        self._ensure_declared()
        assert self._outputs is not None
        return self._outputs

    @property
    def input_annotations(self) -> dict[str, Any]:
        """The annotation of each argument (``inspect.Parameter.empty`` when there is none)."""
        self._ensure_declared()
        return {
            name: self._annotations.get(name, inspect.Parameter.empty)
            for name in self.signature.parameters
        }

    def coerce(self, name: str, value: Any, *, invocation_id: str, what: str) -> Any:
        """``value`` for argument ``name`` as its annotation makes it (pydantic, lax)."""
        self._ensure_declared()
        argument = self._arguments.get(name)
        if argument is None:
            return value
        return argument.coerce(value, step=invocation_id, what=what)

    @functools.cached_property
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
        parameters: dict[str, Any] | None = None,
        cache_policy: CachePolicy | str | None = None,
    ) -> Step:
        """A copy of this step with some options changed; substitutions and parameters are
        merged over ours."""
        return Step(
            self.func,
            name=name or self.name,
            enable_cache=self.enable_cache if enable_cache is None else enable_cache,
            substitutions={**self.substitutions, **(substitutions or {})},
            output_materializers=self._materializers_with(output_materializers),
            parameters={**self.configured_parameters, **(parameters or {})},
            cache_policy=self.cache_policy if cache_policy is None else cache_policy,
        )

    def _materializers_with(self, given: Any) -> Any:
        """Our output_materializers with ``given`` merged over them per output (as in ZenML)."""
        if given is None or self._materializers is None:
            return self.output_materializers if given is None else given
        return self._materializers.updated(self.name, given)

    def _resolve_materializers(self, given: Any) -> Any:
        """``output_materializers`` as classes; StepDefinitionError for bad sources or keys."""
        if given is None:
            return None
        from .materializers.selection import OutputMaterializers

        resolved = OutputMaterializers.resolve(self.name, given)
        if self._outputs is not None:  # else (forward references) checked when composed
            resolved.check_outputs(self.name, [spec.key for spec in self._outputs])
        return resolved

    def check_output_materializers(self) -> None:
        """Refuse output_materializers keyed by outputs this step does not have."""
        if self._materializers is not None and self._materializers.by_output:
            self._materializers.check_outputs(self.name, [spec.key for spec in self.outputs])

    def materializer_for_output(self, key: str) -> tuple[type, ...]:
        """The materializer classes given for output ``key`` (or for all outputs); () if none."""
        return () if self._materializers is None else self._materializers.given_for(key)

    def __call__(self, *args: Any, id: str | None = None, after: Any = None, **kwargs: Any) -> Any:
        """Inside a pipeline: add an invocation and return handles to its future outputs.

        Outside: run the function on the arguments, validated and coerced as in a run.
        """
        bound = bind_call(
            f"Step '{self.name}'", self.signature, args, kwargs, self.configured_parameters
        )
        composition = current_composition()
        if composition is None:
            self._ensure_declared()  # annotations that never resolve fail here as in a pipeline
            for name, value in bound.arguments.items():
                bound.arguments[name] = self.coerce(
                    name, value, invocation_id=self.name, what=f"argument '{name}'"
                )
            return self.func(*bound.args, **bound.kwargs)
        self.check_output_materializers()  # outputs deferred by forward refs are known by now
        invocation = composition.add(self, dict(bound.arguments), id)
        invocation.after = _after_ids(after, composition.pipeline_name)
        invocation.parameters = {
            **self._defaults_left_out(invocation.arguments),
            **self._take_parameters(invocation.id, invocation.arguments),
        }
        handles = tuple(OutputHandle(invocation.id, spec.key) for spec in self.outputs)
        if not handles:
            return None
        return handles[0] if len(handles) == 1 else handles

    def _defaults_left_out(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The defaults of the arguments a call leaves out, as the run records them (JSON).

        ZenML records them too: they are parameters of the run and part of the step's
        cache key (a default read from a module constant changes with it). A default with
        no JSON form (an object) is left out: the step's code is what the key has of it.
        """
        defaults = {}
        for name, parameter in self.signature.parameters.items():
            if name in arguments or parameter.default is inspect.Parameter.empty:
                continue
            try:
                defaults.update(json_parameters({name: parameter.default}, owner=self.name))
            except ParameterError:
                continue
        return defaults

    def _take_parameters(self, invocation_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Coerce the parameters (arguments that are not inputs) in ``arguments``.

        Artifacts from outside the pipeline become inputs (an ExternalInput in place of the
        argument, see :mod:`cairn.external_artifact`): a Client artifact version, an
        ExternalArtifact, and a UUID (or a str that is a whole UUID) the annotation cannot
        take as a parameter, read as an artifact version id. Returns the parameters as the
        run records them (JSON); errors come before anything is recorded.
        """
        owner = f"step '{invocation_id}'"
        parameters = {}
        for name, value in arguments.items():
            if isinstance(value, OutputHandle):
                continue
            if isinstance(value, ArtifactVersion):
                arguments[name] = ExternalInput(version=value)
                continue
            if isinstance(value, ExternalArtifact):
                arguments[name] = ExternalInput(artifact=value)
                continue
            try:
                coerced = self.coerce(
                    name, value, invocation_id=invocation_id, what=f"parameter '{name}'"
                )
            except StepTypeError as refused:
                if (version_id := artifact_id(value)) is None:
                    raise
                arguments[name] = ExternalInput(version=version_by_id(version_id, refused))
                continue
            arguments[name] = parameters[name] = coerced
        return json_parameters(parameters, owner=owner)

    def __reduce__(self) -> str:
        """Pickled by reference: a module-level step loads back as the same Step object."""
        return self.func.__qualname__

    def __repr__(self) -> str:
        return f"<step {self.name!r} ({self.source})>"


def _after_ids(after: Any, pipeline_name: str) -> list[str]:
    """The invocation ids a call's ``after=`` names; they may be steps called later."""
    if after is None:
        return []
    ids: list[str] = []
    items = list(after) if isinstance(after, (list, tuple)) else [after]
    while items:
        item = items.pop(0)
        if isinstance(item, (list, tuple)):  # e.g. the outputs of a many-output step
            items[:0] = item
        elif isinstance(item, OutputHandle):
            ids.append(item.invocation_id)
        elif isinstance(item, str):
            ids.append(item)
        else:
            raise StepDefinitionError(
                f"after= in pipeline '{pipeline_name}' holds {_described(item)}; it "
                "takes step invocation ids (after='train'), step outputs (after=model), or a "
                "list of them. A step with no outputs returns None: name it by its id."
            )
    return ids


def _described(item: Any) -> str:
    if isinstance(item, Step):
        return f"the step {item.name!r} itself rather than an invocation id"
    return "None" if item is None else f"a {type(item).__qualname__} ({item!r:.60})"


def _check_signature(name: str, signature: inspect.Signature) -> None:
    """Refuse what ZenML refuses in a step's signature: ``*args``, ``**kwargs``, ``id``, ``after``."""
    for parameter in signature.parameters.values():
        if parameter.name in ("id", "after"):
            raise StepDefinitionError(
                f"Step '{name}' has an argument named '{parameter.name}', which step calls "
                f"reserve (a call's {parameter.name}= says how the pipeline runs it); rename "
                "the argument."
            )
        if parameter.kind is parameter.VAR_POSITIONAL or parameter.kind is parameter.VAR_KEYWORD:
            stars = "*" if parameter.kind is parameter.VAR_POSITIONAL else "**"
            raise StepDefinitionError(
                f"Step '{name}' takes {stars}{parameter.name}; a step's arguments must be named "
                "one by one (each becomes a parameter or an input). Replace "
                f"{stars}{parameter.name} with named arguments, or take a list or dict argument."
            )


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
    cache_policy: CachePolicy | str | None = None,
) -> Callable[[F], Step]: ...
def step(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    enable_cache: bool | None = None,
    substitutions: dict[str, str] | None = None,
    output_materializers: Any = None,
    cache_policy: CachePolicy | str | None = None,
) -> Any:
    """Mark a function as a pipeline step; usable as ``@step`` or ``@step(...)``.

    ``enable_cache`` and ``cache_policy`` set here or in ``with_options`` win over the
    pipeline's (see :mod:`cairn.caching`).
    """

    def wrap(f: Callable[..., Any]) -> Step:
        return Step(
            f,
            name=name,
            enable_cache=enable_cache,
            substitutions=substitutions,
            output_materializers=output_materializers,
            cache_policy=cache_policy,
        )

    return wrap(func) if func is not None else wrap
