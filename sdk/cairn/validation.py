"""Run-time checks of step parameters, inputs and outputs against their annotations."""

from __future__ import annotations

import inspect
from typing import Any

import msgspec

from .errors import ParameterError, StepTypeError

_JSON_SCALARS = (str, int, float, bool, type(None))
#: The most JSON a step's (or a pipeline's) parameters may take: they travel in one event.
MAX_PARAMETERS_BYTES = 256 * 1024
_validators: dict[Any, Any] = {}


def json_parameter(value: Any, *, name: str, owner: str) -> Any:
    """``value`` as plain JSON (tuples become lists); ParameterError if it is not JSON."""
    if isinstance(value, str) and "\x00" in value:
        raise ParameterError(
            f"Parameter '{name}' of {owner} holds a NUL character (\\x00), which Cairn cannot "
            "record; remove it, or pass the value as an artifact (return it from a step)."
        )
    if isinstance(value, _JSON_SCALARS):
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
                    f"Parameter '{name}' of {owner} is a dict with a {type(key).__name__} key "
                    f"({key!r}); parameters must be JSON, so dict keys must be strings"
                )
        return {k: json_parameter(v, name=name, owner=owner) for k, v in value.items()}
    raise ParameterError(
        f"Parameter '{name}' of {owner} is a {_type_name(value)}, which is not JSON-serializable; "
        "parameters must be numbers, strings, booleans, None, or lists/dicts of them. "
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
        first = exc.errors()[0]
        detail = (
            f"{first['msg']} at {'.'.join(map(str, first['loc']))}"
            if first["loc"]
            else first["msg"]
        )
        raise StepTypeError(
            step, what, _type_label(annotation), _type_name(value), detail
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
    from pydantic import ConfigDict, PydanticSchemaGenerationError, TypeAdapter

    try:
        return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
    except (PydanticSchemaGenerationError, TypeError):
        return None


def _type_name(value: Any) -> str:
    return type(value).__qualname__


def _type_label(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")
