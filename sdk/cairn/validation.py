"""Run-time checks of step parameters, inputs and outputs against their annotations."""

from __future__ import annotations

import inspect
from typing import Any

from .errors import ParameterError, StepTypeError

_JSON_SCALARS = (str, int, float, bool, type(None))
_validators: dict[Any, Any] = {}


def json_parameter(value: Any, *, name: str, owner: str) -> Any:
    """``value`` as plain JSON (tuples become lists); ParameterError if it is not JSON."""
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return [json_parameter(item, name=name, owner=owner) for item in value]
    if isinstance(value, dict):
        for key in value:
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
