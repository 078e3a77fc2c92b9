"""Checks of step parameters, inputs and outputs against their annotations.

Arguments a step (or a pipeline) receives are validated as ZenML validates them: by
pydantic in lax mode, so ``"42"`` for an ``int`` becomes ``42`` and ``"abc"`` is an
error. Parameters are recorded as JSON; outputs are checked strictly.
"""

from __future__ import annotations

import enum
import inspect
import math
import sys
from datetime import date, time, timedelta
from pathlib import PurePath
from typing import Any, get_type_hints
from uuid import UUID

import msgspec

from .errors import CallError, ParameterError, StepDefinitionError, StepTypeError

_JSON_SCALARS = (str, int, float, bool, type(None))
_JSON_SCALAR_TYPES = frozenset(_JSON_SCALARS)
#: Values recorded as the text pydantic gives them (datetime covers date).
_TEXT_LIKE = (UUID, date, time, timedelta, PurePath)
#: The most JSON a step's (or a pipeline's) parameters may take: they travel in one event.
MAX_PARAMETERS_BYTES = 256 * 1024
_validators: dict[Any, Any] = {}
_UNBUILT: Any = object()


def resolved_hints(func: Any, *, owner: str) -> dict[str, Any]:
    """The annotations of ``func``, evaluated (``Annotated`` kept).

    A NameError (a name not defined yet) propagates so the caller can try again later;
    any other failure is a StepDefinitionError saying how to fix the annotation.
    """
    try:
        return get_type_hints(func, include_extras=True)
    except NameError:
        raise
    except Exception as exc:
        raise unresolvable_annotations(owner, exc) from None


def unresolvable_annotations(owner: str, exc: BaseException) -> StepDefinitionError:
    return StepDefinitionError(
        f"The annotations of {owner} cannot be resolved ({type(exc).__name__}: {exc}). Under "
        "`from __future__ import annotations` they are evaluated later, in the module's "
        "namespace: use module-level names in them (not a function's locals)."
    )


def bind_call(
    owner: str,
    signature: inspect.Signature,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    configured: dict[str, Any] | None = None,
) -> inspect.BoundArguments:
    """``args`` and ``kwargs`` bound to ``signature``; CallError naming what does not fit.

    ``owner`` is "Step 'x'" or "Pipeline 'p'". ``configured`` (from
    ``with_options(parameters=...)``) fills the arguments the call leaves out. A keyword
    the function does not take is named with the arguments it does take (a typo is the
    usual cause).
    """
    takes = ", ".join(map(repr, signature.parameters)) or "none"
    try:
        bound = (
            signature.bind_partial(*args, **kwargs)
            if configured
            else signature.bind(*args, **kwargs)
        )
    except TypeError as exc:
        unexpected = [key for key in kwargs if key not in signature.parameters]
        if unexpected and not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            raise CallError(
                f"{owner} was called with {', '.join(map(repr, unexpected))}, which it does not "
                f"take; its arguments are {takes}"
            ) from None
        raise CallError(f"{owner} was called wrongly: {exc}; its arguments are {takes}") from None
    if configured:
        _apply_configured(owner, bound, configured)
        missing = [
            p.name
            for p in signature.parameters.values()
            if p.name not in bound.arguments
            and p.default is p.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if missing:
            raise CallError(
                f"{owner} was called wrongly: missing a required argument: {missing[0]!r}; "
                f"its arguments are {takes}"
            )
    return bound


def check_configured(
    owner: str, signature: inspect.Signature, parameters: dict[str, Any] | None
) -> dict[str, Any]:
    """``with_options(parameters=...)`` checked against the function; a copy of it.

    StepDefinitionError naming a key the function does not take, and the ones it does.
    """
    configured = dict(parameters or {})
    unknown = [key for key in configured if key not in signature.parameters]
    if unknown:
        takes = ", ".join(map(repr, signature.parameters)) or "none"
        raise StepDefinitionError(
            f"{owner} is configured with parameters {', '.join(map(repr, unknown))}, which its "
            f"function does not take; its arguments are {takes}"
        )
    return configured


def _apply_configured(
    owner: str, bound: inspect.BoundArguments, configured: dict[str, Any]
) -> None:
    """Fill arguments the call left out from ``configured``; CallError when both give one.

    As in ZenML, a parameter set both in the call and in the configuration must agree.
    """
    for key, value in configured.items():
        if key not in bound.arguments:
            bound.arguments[key] = value
        elif bound.arguments[key] is not value and bound.arguments[key] != value:
            raise CallError(
                f"{owner} is called with {key}={bound.arguments[key]!r} but configured with "
                f"parameters={{{key!r}: {value!r}}}; set it in one place (the call, or "
                "with_options(parameters=...))"
            )


class ArgumentType:
    """One argument's annotation, and the pydantic adapter that coerces values to it.

    The adapter is built on the first value that is not exactly of the annotated class,
    once; values of exactly that class pass untouched without pydantic.
    """

    __slots__ = ("_adapter", "annotation")

    def __init__(self, annotation: Any) -> None:
        self.annotation = annotation
        self._adapter: Any = _UNBUILT

    def coerce(self, value: Any, *, step: str, what: str) -> Any:
        """``value`` as pydantic (lax) makes it fit; StepTypeError naming step and argument."""
        if type(value) is self.annotation:
            return value
        adapter = self._adapter
        if adapter is _UNBUILT:
            adapter = self._adapter = _validator(self.annotation)
        if adapter is None:
            return value
        try:
            return adapter.validate_python(value)
        except Exception as exc:
            from pydantic import ValidationError

            if not isinstance(exc, ValidationError):
                raise
            detail = f"{_first_error(exc)}; given {_shown_value(value)}"
            raise StepTypeError(
                step, what, _type_label(self.annotation), _type_name(value), detail
            ) from None


def argument_types(signature: inspect.Signature, hints: dict[str, Any]) -> dict[str, ArgumentType]:
    """An ArgumentType for each annotated argument (none for unannotated or ``Any`` ones)."""
    return {
        name: ArgumentType(hints[name])
        for name in signature.parameters
        if name in hints and hints[name] is not Any
    }


def refuse_artifact_version(value: Any, *, name: str, owner: str) -> None:
    """ParameterError when ``value`` is an artifact (a Client version or an ExternalArtifact)
    where only a parameter can be: a step argument makes one an input, but a pipeline's
    parameters and values inside lists or dicts are recorded as JSON.
    """
    from .external_artifact import ExternalArtifact
    from .models import ArtifactVersion

    if isinstance(value, ArtifactVersion):
        what = f"the artifact version {value.name!r} (version {value.version}) from the Client"
        lookup = (
            f"or pass its name and call Client().get_artifact_version({value.name!r}, "
            f"{value.version!r}) there, or load_artifact({value.name!r}) inside the step"
        )
    elif isinstance(value, ExternalArtifact):
        what = "an ExternalArtifact"
        lookup = "or save it first with save_artifact(value, name) and pass that version"
    else:
        return
    raise ParameterError(
        f"Parameter '{name}' of {owner} holds {what}. An artifact is an input of a step when "
        "it is a whole argument of a step call (train(data=version)); parameters are recorded "
        "as JSON, so a pipeline's parameters and values inside lists or dicts cannot hold "
        f"one. Pass it straight to the step call inside the pipeline function, {lookup}."
    )


def json_parameter(value: Any, *, name: str, owner: str) -> Any:
    """``value`` as plain JSON; ParameterError if it cannot be recorded as a parameter.

    JSON values pass (tuples become lists); pydantic models, enums, UUIDs, datetimes,
    paths and dataclasses of such values become the JSON pydantic gives them.
    """
    kind = type(value)
    if kind is str:
        if "\x00" in value:
            raise ParameterError(
                f"Parameter '{name}' of {owner} holds a NUL character (\\x00), which Cairn cannot "
                "record; remove it, or pass the value as an artifact (return it from a step)."
            )
        return value
    if kind is float and not math.isfinite(value):
        raise ParameterError(
            f"Parameter '{name}' of {owner} is {value}, which JSON cannot hold, so the run "
            "could not record what the step received; pass it as a string (e.g. 'nan') and "
            "convert it in the step, or pass the value as an artifact (return it from a step)."
        )
    if kind in _JSON_SCALAR_TYPES:
        return value
    if isinstance(value, (list, tuple)):
        return [json_parameter(item, name=name, owner=owner) for item in value]
    if isinstance(value, dict):
        for key in value:
            if isinstance(key, str) and "\x00" in key:
                raise ParameterError(
                    f"Parameter '{name}' of {owner} has a dict key holding a NUL character "
                    "(\\x00), which Cairn cannot record; rename the key."
                )
            if not isinstance(key, str):
                raise ParameterError(
                    f"Parameter '{name}' of {owner} is a dict with {_a(type(key).__name__)} key "
                    f"({key!r}); parameters must be JSON, so dict keys must be strings"
                )
        return {k: json_parameter(v, name=name, owner=owner) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return json_parameter(value.value, name=name, owner=owner)
    for scalar in (str, int, float):  # a subclass of one, recorded as the plain value
        if isinstance(value, scalar):
            return json_parameter(scalar(value), name=name, owner=owner)
    if isinstance(value, _TEXT_LIKE):
        from pydantic_core import to_jsonable_python

        return to_jsonable_python(value)
    if hasattr(kind, "__dataclass_fields__"):  # a dataclass instance
        import dataclasses

        return {
            field.name: json_parameter(getattr(value, field.name), name=name, owner=owner)
            for field in dataclasses.fields(value)
        }
    if _is_pydantic_model(value):
        from pydantic_core import PydanticSerializationError

        try:
            dumped = value.model_dump(mode="json")
        except (PydanticSerializationError, ValueError, TypeError) as exc:
            raise ParameterError(
                f"Parameter '{name}' of {owner} is {_a(_type_name(value))} model that pydantic "
                f"cannot turn into JSON ({exc}); pass it as an artifact: return it from a step "
                "and hand that output on."
            ) from None
        return json_parameter(dumped, name=name, owner=owner)
    refuse_artifact_version(value, name=name, owner=owner)
    raise ParameterError(
        f"Parameter '{name}' of {owner} is {_a(_type_name(value))}, which is not JSON-serializable; "
        "parameters must be numbers, strings, booleans, None, lists/dicts of them, or pydantic "
        "models, enums, UUIDs, datetimes, paths or dataclasses of such values. "
        "Pass other objects as artifacts: return them from a step and hand that output on."
    )


def json_parameters(values: dict[str, Any], *, owner: str) -> dict[str, Any]:
    """Each value as plain JSON (see :func:`json_parameter`), at most MAX_PARAMETERS_BYTES in all."""
    converted = {
        name: json_parameter(value, name=name, owner=owner) for name, value in values.items()
    }
    size = len(msgspec.json.encode(converted))
    if size > MAX_PARAMETERS_BYTES:
        sizes = {name: len(msgspec.json.encode(v)) for name, v in converted.items()}
        biggest = max(sizes, key=sizes.__getitem__)
        raise ParameterError(
            f"The parameters of {owner} are {size:,} bytes as JSON; the limit is "
            f"{MAX_PARAMETERS_BYTES:,} (the largest is '{biggest}', {sizes[biggest]:,} bytes). "
            "Pass large values as artifacts: return them from a step and hand that output on."
        )
    return converted


def check_type(value: Any, annotation: Any, *, step: str, what: str) -> None:
    """Raise StepTypeError when ``value`` does not fit ``annotation`` (Any fits all)."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return
    if isinstance(annotation, type) and not hasattr(annotation, "__origin__"):
        if isinstance(value, annotation) or (annotation is float and type(value) is int):
            return
        raise StepTypeError(step, what, _type_label(annotation), _type_name(value))
    validator = _validator(annotation)
    if validator is None:
        return  # an annotation pydantic cannot check (e.g. a bare TypeVar) is documentation only
    from pydantic import ValidationError

    try:
        validator.validate_python(value, strict=True)
    except ValidationError as exc:
        raise StepTypeError(
            step, what, _type_label(annotation), _type_name(value), _first_error(exc)
        ) from None


def _validator(annotation: Any) -> Any:
    try:
        return _validators[annotation]
    except KeyError:
        pass
    except TypeError:  # unhashable annotation: build each time
        return _build_validator(annotation)
    validator = _validators[annotation] = _build_validator(annotation)
    return validator


def _build_validator(annotation: Any) -> Any:
    from pydantic import ConfigDict, PydanticSchemaGenerationError, PydanticUserError, TypeAdapter

    try:
        try:
            return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
        except PydanticUserError:  # a model, dataclass or TypedDict brings its own config
            return TypeAdapter(annotation)
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError):
        return None


def _type_name(value: Any) -> str:
    return type(value).__qualname__


def _a(noun: str) -> str:
    """``noun`` with its indefinite article: "an int", "a str"."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _first_error(exc: Any) -> str:
    first = exc.errors()[0]
    if first["loc"]:
        return f"{first['msg']} at {'.'.join(map(str, first['loc']))}"
    return str(first["msg"])


def _shown_value(value: Any) -> str:
    import reprlib

    return reprlib.repr(value)


def _is_pydantic_model(value: Any) -> bool:
    pydantic = sys.modules.get("pydantic")  # not imported: no value can be a pydantic model
    return pydantic is not None and isinstance(value, pydantic.BaseModel)


def _type_label(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")
