"""Step outputs and their artifact names: parsing annotations, resolving templates.

Rules (ZenML's): an unannotated single output is ``output``; the outputs of a
step returning a tuple literal under a ``Tuple[...]`` annotation are
``output_0``, ``output_1``, ...; ``Annotated[T, "name"]`` or
``Annotated[T, ArtifactConfig(name=...)]`` names an output. Unnamed outputs
are stored as ``{pipeline}::{step}::{output}``. Names are templates over
``{date}``, ``{time}`` and custom substitutions.
"""

from __future__ import annotations

import ast
import inspect
import string
import textwrap
from datetime import datetime
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import msgspec

from .config import ArtifactConfig
from .errors import ArtifactNameError, ArtifactVersionError, StepDefinitionError

_FORMATTER = string.Formatter()


class OutputSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One declared output of a step."""

    key: str  # output_N / output when unnamed, else the name template
    annotation: Any
    name_template: str | None = None
    config: ArtifactConfig | None = None

    @property
    def is_named(self) -> bool:
        return self.name_template is not None


def standard_substitutions(moment: datetime) -> dict[str, str]:
    """``date`` and ``time`` of a run's start, in UTC, as names use them."""
    return {"date": moment.strftime("%Y_%m_%d"), "time": moment.strftime("%H_%M_%S_%f")}


def placeholders(template: str) -> list[str]:
    try:
        return [field for _, field, _, _ in _FORMATTER.parse(template) if field is not None]
    except ValueError as exc:
        raise ArtifactNameError(
            f"Artifact name template {template!r} is malformed: {exc}"
        ) from None


def resolve_name(template: str, substitutions: dict[str, str], *, step: str, output: str) -> str:
    """The artifact name ``template`` gives under ``substitutions``."""
    fields = placeholders(template)
    if not fields:
        return template
    for field in fields:
        if field == "" or not field.isidentifier():
            raise ArtifactNameError(
                f"Artifact name template {shown(template)} of output {shown(output)} in step '{step}' "
                f"has the placeholder {shown('{' + field + '}')}; placeholders must be names "
                "like {stage}"
            )
        if field not in substitutions:
            known = ", ".join(sorted(substitutions)) or "none"
            raise ArtifactNameError(
                f"Artifact name template {shown(template)} of output {shown(output)} in step '{step}' "
                f"uses '{{{field}}}' but no substitution '{field}' is set (known: {known}); "
                f"set it with @step(substitutions={{'{field}': ...}}), @pipeline(substitutions=...) "
                f"or .with_options(substitutions=...)"
            )
    return template.format_map(substitutions)


def shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters (names may be huge)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def check_artifact_name(name: str, *, step: str, output: str) -> str:
    """``name`` if it can name an artifact; ArtifactNameError naming the step, output and rule."""
    from cairn_events import (  # lazy: import cairn stays light
        MAX_LABEL_BYTES,
        label_problem,
    )

    problem = label_problem(name)
    if problem is not None:
        raise ArtifactNameError(
            f"Artifact name {shown(name)} of output {shown(output)} in step '{step}' {problem}. "
            f"Artifact names need a visible character, no control characters, not '.' or '..', "
            f"and at most {MAX_LABEL_BYTES} bytes; slashes, spaces and any other Unicode are fine."
        )
    return name


def check_run_name(name: str, *, pipeline: str) -> str:
    """``name`` if it can name a run of ``pipeline``; ArtifactNameError saying the rule."""
    from cairn_events import (  # lazy: import cairn stays light
        MAX_LABEL_BYTES,
        label_problem,
    )

    problem = label_problem(name)
    if problem is not None:
        raise ArtifactNameError(
            f"Run name {shown(name)} of pipeline '{pipeline}' {problem}. Give the run another "
            f"name with @pipeline(run_name=...) or .with_options(run_name=...): at most "
            f"{MAX_LABEL_BYTES} bytes, no control characters."
        )
    return name


def parse_outputs(func: Any) -> list[OutputSpec]:
    """The outputs ``func`` declares through its return annotation."""
    try:
        hints = get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise StepDefinitionError(
            f"The annotations of step '{func.__name__}' cannot be resolved ({type(exc).__name__}: "
            f"{exc}). Under `from __future__ import annotations` they are evaluated later, in the "
            "module's namespace: use module-level names in them (not a function's locals)."
        ) from None
    if (
        "return" not in hints
        and inspect.signature(func).return_annotation is inspect.Signature.empty
    ):
        return [OutputSpec(key="output", annotation=Any)]
    annotation = hints.get("return", Any)
    if annotation is None or annotation is type(None):
        return []
    base, name, config = _split_annotated(annotation)
    if name is None and get_origin(base) is tuple and _returns_tuple_literal(func):
        args = get_args(base)
        if not args or args[-1] is Ellipsis:
            raise StepDefinitionError(
                f"Step '{func.__name__}' returns a tuple literal but its annotation {annotation!r} "
                "does not say how many outputs; annotate each: Tuple[int, str]"
            )
        return [_spec(arg, f"output_{i}") for i, arg in enumerate(args)]
    return [OutputSpec(key=name or "output", annotation=base, name_template=name, config=config)]


def _spec(annotation: Any, default_key: str) -> OutputSpec:
    base, name, config = _split_annotated(annotation)
    return OutputSpec(key=name or default_key, annotation=base, name_template=name, config=config)


def _split_annotated(annotation: Any) -> tuple[Any, str | None, ArtifactConfig | None]:
    if get_origin(annotation) is not Annotated:
        return annotation, None, None
    base, *extras = get_args(annotation)
    for extra in extras:
        if isinstance(extra, str):
            return base, extra, None
        if isinstance(extra, ArtifactConfig):
            return base, extra.name, extra
    return base, None, None


def _returns_tuple_literal(func: Any) -> bool:
    """Whether ``func`` returns ``a, b`` (many outputs) rather than a tuple value (one)."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return True  # no source (e.g. exec'd code): a Tuple[...] annotation means many outputs
    definition = tree.body[0]
    returns = [
        node
        for node in _walk_own_body(definition)
        if isinstance(node, ast.Return) and node.value is not None
    ]
    return bool(returns) and all(isinstance(node.value, ast.Tuple) for node in returns)


def _walk_own_body(definition: ast.AST) -> list[ast.AST]:
    """Nodes of a function body, not descending into nested functions or classes."""
    found: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(definition))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def requested_version(version: str | int | None, name: str) -> str | None:
    """The explicit version asked for an output named ``name``, checked; None for numbered."""
    from cairn_events import (  # lazy: import cairn stays light
        MAX_LABEL_BYTES,
        is_numeric_version,
        label_problem,
    )

    if version is None:
        return None
    text = str(version)
    if is_numeric_version(text):
        raise ArtifactVersionError(
            f"Artifact '{name}' was given the version {version!r}; numbered versions are "
            "assigned by Cairn. Use a label such as 'v3-final' or 'prod', or leave version out."
        )
    if (problem := label_problem(text)) is not None:
        raise ArtifactVersionError(
            f"Artifact '{name}' was given the version {shown(text)}, which {problem}. Use a label "
            f"such as 'v3-final' or 'prod' (at most {MAX_LABEL_BYTES} bytes, no control "
            "characters), or leave version out to get the next number."
        )
    return text
